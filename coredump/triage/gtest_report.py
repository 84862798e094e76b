"""
googletest reports
==================

The verdicts a googletest program wrote of its tests, read to tell whether a death test's
parent passed: the XML or JSON report of ``--gtest_output`` (googletest's "Generating an XML
Report" / "Generating a JSON Report"), named on the program's command line (a fast-style
death test's child is a fork: its argv is its parent's), by ``$GTEST_OUTPUT``, or by
``$XML_OUTPUT_FILE`` (the Bazel test encyclopedia's variable, which googletest honours
when no output flag is given). A relative path is the program's: relative to its working
directory (``death_test`` says how that is known), or found under the step's tree
(``find_in_tree``, bounded).

A report is the step's own output, read as untrusted: a regular file (the last component
no symlink), at most 16 MiB, no older than the step, parsed by expat (which refuses entity
expansion attacks, "billion laughs"); only its verdicts and a failure's first line are kept.
"""

from __future__ import annotations

import functools
import json
import os
import stat

from coredump.patterns import lazy_compile

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, List, Mapping, Optional, Sequence, Tuple
    Verdicts = Dict[str, List[Tuple[str, Optional[str]]]]  # test class -> [(Suite.Name, failure or None)]

__all__ = ("report_paths", "read_verdicts", "test_class", "find_in_tree", "Verdicts", "MAX_SEARCHED")

MAX_REPORT = 16 << 20
# The bound on a search of the step's tree for a report named relative to an unknown cwd:
# directories looked in, their depth below a root, and reports kept.
MAX_SEARCHED, MAX_DEPTH, MAX_FOUND = 20_000, 16, 8
_PRUNED = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__"})
_FLAG = lazy_compile(r"(?:--|-|/)gtest_output=(.*)")
# GTEST_TEST_CLASS_NAME_(suite, name) is suite##_##name##_Test (gtest-internal.h); TestBody
# is the virtual the test's statements are in
_TEST_BODY = lazy_compile(r"(?:.*::)?([A-Za-z_][A-Za-z0-9_]*_Test)(?:<.*>)?::TestBody\b")


def test_class(functions: Sequence[Optional[str]]) -> Optional[str]:
    """The googletest test class whose TestBody is among `functions` (innermost first)."""
    for name in functions:
        match = _TEST_BODY.match(name or "")
        if match:
            return match.group(1)
    return None


def _outputs(argv: Sequence[str], environ: Mapping[str, str]) -> List[str]:
    """The ``--gtest_output`` values in force: the flag (the last one counts), else the
    variables."""
    flags = [m.group(1) for m in map(_FLAG.fullmatch, map(str, argv)) if m]
    if flags:
        return flags[-1:]
    if environ.get("GTEST_OUTPUT"):
        return [environ["GTEST_OUTPUT"]]
    return [f"xml:{environ['XML_OUTPUT_FILE']}"] if environ.get("XML_OUTPUT_FILE") else []


def report_paths(argv: Sequence[str], executable: Optional[str], environ: Mapping[str, str],
                 cwd: str) -> List[Tuple[str, str]]:
    """``(format, path)`` of each report: ``xml`` alone is test_detail.xml in the working
    directory, ``xml:DIR/`` is DIR/<program name>.xml, ``xml:FILE`` is FILE (json alike)."""
    found = []
    for value in _outputs(argv, environ):
        kind, _, path = value.partition(":")
        if kind not in ("xml", "json"):
            continue
        if not path:
            path = f"test_detail.{kind}"
        elif path.endswith(("/", os.sep)):
            program = os.path.basename(executable or (argv[0] if argv else "")) or "test_detail"
            path = os.path.join(path, f"{program}.{kind}")
        found.append((kind, os.path.join(cwd, path)))
    return found


def find_in_tree(roots: Sequence[str], relative: str) -> Tuple[List[str], bool]:
    """Each ``DIR/relative`` that is a file, DIR anywhere under `roots` (symlinks not
    followed, VCS and cache directories skipped), and whether the search was cut by its
    bounds (MAX_SEARCHED directories, MAX_DEPTH deep, MAX_FOUND found). One harvest asks
    once per tree and name: a step's death-test children share their report."""
    found, cut = _find_in_tree(tuple(roots), relative)
    return list(found), cut


@functools.lru_cache(maxsize=64)
def _find_in_tree(roots: Tuple[str, ...], relative: str) -> Tuple[Tuple[str, ...], bool]:
    found: List[str] = []
    searched, cut = 0, False
    for root in roots:
        stack = [(os.path.abspath(root), 0)]
        while stack:
            directory, depth = stack.pop()
            searched += 1
            if searched > MAX_SEARCHED or len(found) >= MAX_FOUND:
                return tuple(found), True
            candidate = os.path.join(directory, relative)
            if os.path.isfile(candidate) and not os.path.islink(candidate) and candidate not in found:
                found.append(candidate)
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            subdirs = [e.path for e in entries if e.name not in _PRUNED and e.is_dir(follow_symlinks=False)]
            cut = cut or (depth >= MAX_DEPTH and bool(subdirs))
            stack += [(d, depth + 1) for d in sorted(subdirs, reverse=True)] if depth < MAX_DEPTH else []
    return tuple(found), cut


def _read(path: str, since: Optional[float]) -> Optional[bytes]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_REPORT or (since and st.st_mtime < since):
            return None
        return f.read(MAX_REPORT + 1)[:MAX_REPORT]


def _first_line(text: Optional[str]) -> str:
    """A failure's telling line: a death test's "Result: died but not with expected exit
    code" (the line after FILE:LINE and the statement), else the first."""
    lines = [s.strip() for s in (text or "").splitlines() if s.strip()]
    line = next((s for s in lines if s.startswith("Result:")), lines[0] if lines else "failed")
    return line[:200]


def _cases_xml(data: bytes):
    import xml.etree.ElementTree as ET

    for case in ET.fromstring(data).iter("testcase"):
        failure = case.find("failure")
        yield case.get("classname") or "", case.get("name") or "", (
            None if failure is None else _first_line(failure.get("message") or failure.text))


def _cases_json(data: bytes):
    for suite in json.loads(data).get("testsuites") or []:
        for case in (suite.get("testsuite") or []) if isinstance(suite, dict) else []:
            if isinstance(case, dict):
                failures = case.get("failures") or []
                first = failures[0].get("failure") if failures and isinstance(failures[0], dict) else None
                yield str(case.get("classname") or ""), str(case.get("name") or ""), (
                    _first_line(str(first)) if failures else None)


def _class_of(suite: str, name: str) -> str:
    """The test class of a report's testcase: a value-parameterized test is reported as
    ``Prefix/Suite`` ``Name/N``, a typed test as ``Suite/N`` ``Name``; the class is
    Suite_Name_Test either way."""
    parts = suite.split("/")
    if len(parts) > 1 and parts[-1].isdigit():
        parts.pop()
    return f"{parts[-1]}_{name.split('/')[0]}_Test"


def read_verdicts(paths: Sequence[Tuple[str, str]], since: Optional[float] = None) -> Tuple[Verdicts, List[str]]:
    """Each test class's verdicts in the reports at `paths`, and the reports read."""
    verdicts: Verdicts = {}
    read = []
    for kind, path in paths:
        data = _read(path, since)
        if data is None:
            continue
        try:
            cases = list(_cases_xml(data) if kind == "xml" else _cases_json(data))
        except (ValueError, SyntaxError, AttributeError, TypeError):  # ET.ParseError is a SyntaxError
            continue
        read.append(path)
        for suite, name, failure in cases:
            verdicts.setdefault(_class_of(suite, name), []).append((f"{suite}.{name}", failure))
    return verdicts, read
