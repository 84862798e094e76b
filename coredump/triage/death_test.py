"""
Death tests
===========

Whether the crashed process is the child a test framework forked to die on purpose: a
googletest death test (``EXPECT_DEATH``/``ASSERT_DEATH``) runs its statement in a child and
passes when that child dies. Such a crash is the test working, not a bug.

googletest (src/gtest-death-test.cc) marks the child two ways:
- "threadsafe" style re-executes the test binary with ``--gtest_internal_run_death_test=…``;
- "fast" style (the default on Linux) forks and sets the file-static
  ``testing::internal::g_in_fast_death_test_child`` to true before running the statement,
  so the core's copy of that bool says so (the symbol is local: the program's ``.symtab``).

That the child died does not make the test pass: googletest's parent then checks how it
died (``KilledBySignal``, ``ExitedWithCode``) and the stderr matcher, and fails the test
otherwise. So a death test's child is expected only on evidence that its parent's test
passed: that test's verdict in the googletest report (``gtest_report``), else the step's
exit status 0 (a googletest program exits 1 when any test failed).
"""

from __future__ import annotations

import os

from coredump.errors import MemoryFault
from coredump.symbols.symtab import find_module_symbol

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Mapping, Optional, Sequence, Tuple

__all__ = ("find_death_test", "judge_death_test", "GTEST_FAST_CHILD", "GTEST_THREADSAFE_FLAG")

GTEST_FAST_CHILD = "_ZN7testing8internalL26g_in_fast_death_test_childE"
GTEST_THREADSAFE_FLAG = "--gtest_internal_run_death_test"


def find_death_test(target, argv: Sequence[str]) -> Optional[str]:
    """Why the process is a death test's child, or None."""
    if any(str(a).startswith(GTEST_THREADSAFE_FLAG) for a in argv):
        return f"a googletest death test's child ({GTEST_THREADSAFE_FLAG})"
    for mod in target.modules:
        # The flag is local (in .symtab): a stripped file's debug file has it.
        found = find_module_symbol(mod, GTEST_FAST_CHILD)
        if found is None:
            continue
        addr = found[0]
        try:
            value = target.memory.read(addr + mod.bias, 1)
        except MemoryFault:
            return None
        if value == b"\x01":
            return "a googletest death test's child (testing::internal::g_in_fast_death_test_child)"
        return None
    return None


def _frames(crash):
    if not crash.threads:
        return ()
    index = crash.crashing_thread if crash.crashing_thread is not None else 0
    return crash.threads[min(index, len(crash.threads) - 1)].frames


def judge_death_test(crash, step_status: Optional[int], since: Optional[float] = None,
                     environ: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
                     search: Sequence[str] = ()) -> Tuple[Optional[str], List[str]]:
    """For a death test's child (``crash.death_test``): why it is expected, or None; and
    notes saying why not, or how its report was found. `step_status`: the exit status of the
    step that ran the test program (None when unknown); `since`: reports older than this are
    another run's; `cwd`: the crashed process's working directory where the core's location
    proves it, else a report named relative to it is looked for in the wrapper's working
    directory, then in the trees `search` (the step's), and the notes say so."""
    # The report reader (XML, JSON) is for a death test's child only: imported here.
    from coredump.triage.gtest_report import test_class

    marker = crash.death_test
    cls = test_class([f.function for f in _frames(crash)])
    verdicts, read, notes = _find_verdicts(crash, cls, since, os.environ if environ is None else environ,
                                           cwd, search) if cls else ({}, [], [])
    found = verdicts.get(cls or "")
    if found:
        report = os.path.basename(read[0]) if len(read) == 1 else "the googletest reports"
        failed = [(name, why) for name, why in found if why]
        if failed:
            return None, notes + [f"{marker}, but its test {failed[0][0]} failed ({report}: {failed[0][1]})"]
        return f"{marker}; its test {found[0][0]} passed ({report})", notes
    if step_status == 0:
        return f"{marker}; the step passed", notes
    why = f"the step failed (exit status {step_status})" if step_status is not None else \
        "the step's exit status is unknown"
    return None, notes + [f"{marker}, but {why} and no googletest report (--gtest_output=xml, $GTEST_OUTPUT) "
                          "says its test passed: not taken as expected"]


def _wrapper_cwd() -> str:
    try:
        return os.getcwd()
    except OSError:  # the working directory is gone: no relative report to read
        return "/nonexistent"


def _find_verdicts(crash, cls: str, since, environ, cwd: Optional[str], search: Sequence[str]):
    """The verdicts of the reports the crashed process was told to write: relative to its
    proved `cwd`, else to ours; failing both, a report path with no ``..`` looked for under
    `search` (bounded: gtest_report.find_in_tree)."""
    from coredump.triage.gtest_report import find_in_tree, read_verdicts, report_paths

    argv, exe = crash.process.argv, crash.process.executable
    for base in dict.fromkeys(d for d in (cwd, _wrapper_cwd()) if d):
        verdicts, read = read_verdicts(report_paths(argv, exe, environ, base), since)
        if cls in verdicts:
            return verdicts, read, []
    relative = [(kind, path) for kind, path in report_paths(argv, exe, environ, "") if not os.path.isabs(path)
                and ".." not in path.split(os.sep)]
    if not relative or not search:
        return {}, [], []
    paths, cut = [], False
    for kind, path in relative:
        found, was_cut = find_in_tree(search, path)
        paths += [(kind, p) for p in found]
        cut = cut or was_cut
    verdicts, read = read_verdicts(paths, since)
    if cls not in verdicts:
        return {}, [], ([f"{crash.death_test}: no googletest report {relative[0][1]} under "
                         f"{', '.join(search)} (the search was cut at its bounds)"] if cut else [])
    where = "the crashed process's working directory is not known from its core"
    note = (f"{crash.death_test}: the googletest report {relative[0][1]} was taken from "
            f"{', '.join(read)}, found by searching {', '.join(search)} ({where})")
    return verdicts, read, [note + ("; the search was cut at its bounds" if cut else "")]
