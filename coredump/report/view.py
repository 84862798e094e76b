"""
View
====

Read-only helpers over the ``coredump.crash/1`` dict shared by the HTML, JUnit and
annotation renderers; every field may be null or absent (docs/json-schema.md).
"""

from __future__ import annotations

import os

from coredump.patterns import lazy_compile
from coredump.report.sanitize import clean_text

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Any, Dict, Iterable, List, Optional, Tuple

__all__ = ("gap_before", "crashing_thread", "frame_name", "frame_location", "frame_line", "frame_args",
           "variable_text", "name_before_args", "start_frame", "repo_file",
           "workspace", "backtrace_lines", "headline", "group_crashes", "LESS_CERTAIN", "JIT_TAG", "SYSTEM_PREFIXES")

# rust-minidump's FrameTrust: scanning guesses return addresses from stack words, a
# frame-pointer chain breaks through code built without one; both may be wrong.
LESS_CERTAIN = ("scan", "fp", "none")
# The tag of a frame in anonymous executable memory (model.Frame.jit).
JIT_TAG = "JIT code"
# Where distributions install libraries and their headers (FHS 3.0 §4.6, §4.4).
SYSTEM_PREFIXES = ("/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/include/", "/usr/local/include/")


def _get(d: Any, key: str, default=None):
    return d.get(key, default) if isinstance(d, dict) else default


def crashing_thread(crash: Dict) -> Optional[Dict]:
    """The thread that took the fatal signal, or the first thread when unknown."""
    threads = [t for t in _get(crash, "threads") or [] if isinstance(t, dict)]
    index = _get(crash, "crashing_thread")
    if isinstance(index, int) and 0 <= index < len(threads):
        return threads[index]
    return threads[0] if threads else None


def frame_name(frame: Dict) -> str:
    """Function name, else ``module+offset``, else the pc, else ``??`` (drgn's fallback order)."""
    if _get(frame, "function"):
        return str(frame["function"])
    module = _get(frame, "module")
    if module and _get(frame, "module_offset"):
        return f"{os.path.basename(str(module))}+{frame['module_offset']}"
    return str(_get(frame, "pc") or "??")


def frame_location(frame: Dict) -> str:
    """``file:line`` (or just the file), empty when unknown."""
    file, line = _get(frame, "file"), _get(frame, "line")
    if not file:
        return ""
    return f"{file}:{line}" if line else str(file)


# What may follow a C++ function's parameter list in its demangled name (Itanium ABI
# 5.1.5: CV-qualifiers and ref-qualifiers of a member function).
_QUALIFIERS = lazy_compile(r"(?:\s*(?:const|volatile|&&|&))*\s*$")


def name_before_args(name: str) -> str:
    """A demangled C++ name without its parameter list, as gdb's bt names a frame whose
    arguments it prints (``cxxfunc (i=1)``, not ``cxxfunc(int) (i=1)``): the last top-level
    ``(…)`` and the qualifiers after it go; templates, ``operator()`` and a Go method's
    receiver (``main.(*T).M``, which ends in no ``)``) stay.

    >>> name_before_args("std::vector<int>::at(unsigned long) const")
    'std::vector<int>::at'
    >>> name_before_args("Foo::operator()(int)")
    'Foo::operator()'
    """
    tail = _QUALIFIERS.search(name)
    end = tail.start() if tail else len(name)
    if end == 0 or name[end - 1] != ")":
        return name
    depth = 0
    for i in range(end - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(name[i], 0)
        if depth == 0:
            return name[:i].rstrip() or name
    return name


def variable_text(name, value, entry=None) -> str:
    """One argument as gdb's ``bt`` prints it (``print entry-values default``): ``v=6``,
    ``v=v@entry=6`` where the value at entry is the same, ``v=7, v@entry=6`` where not."""
    if entry is None:
        return f"{name}={value}"
    if entry == value:
        return f"{name}={name}@entry={value}"
    return f"{name}={value}, {name}@entry={entry}"


def frame_args(frame: Dict) -> Optional[str]:
    """``total=100, count=0`` from a frame's ``args`` in crash.json (hostile input: any
    shape), None where there are none."""
    items = _get(frame, "args")
    if not isinstance(items, list):
        return None
    return ", ".join(variable_text(str(v.get("name") or "?"), str(v.get("value") or ""),
                                   None if v.get("entry") is None else str(v["entry"]))
                     for v in items[:256] if isinstance(v, dict))


def frame_line(frame: Dict) -> str:
    """One gdb-style line: ``#0  0x… in fn (file:line) [found by scan]``, or with the
    arguments ``#0  0x… in fn (a=1) at file:line``."""
    index = _get(frame, "index")
    index = "?" if index is None else str(index)  # null, or any type in a hostile crash.json
    pc = "" if _get(frame, "inline") else f"{_get(frame, 'pc') or '?'} in "
    where = frame_location(frame) or (os.path.basename(str(frame["module"])) if _get(frame, "module") else "")
    args = frame_args(frame)
    if args is not None:
        name = name_before_args(str(_get(frame, 'function') or '??'))
        text = f"#{index:<3} {pc}{name} ({args})" + (f" at {where}" if where else "")
    else:
        text = f"#{index:<3} {pc}{_get(frame, 'function') or '??'}" + (f" ({where})" if where else "")
    tailcall = bool(_get(frame, "tailcall"))  # says how it was found: no "found by none"
    tags = (["inlined"] if _get(frame, "inline") else []) + (["tail call"] if tailcall else []) + (
        [JIT_TAG] if _get(frame, "jit") else []) + (
        [f"found by {frame['trust']}"] if _get(frame, "trust") in LESS_CERTAIN and not tailcall else [])
    return text + (f" [{', '.join(tags)}]" if tags else "")


def _is_system(path) -> bool:
    return bool(path) and str(path).startswith(SYSTEM_PREFIXES)


def start_frame(crash: Dict) -> Optional[Dict]:
    """Where a reader starts: the innermost frame of the crashing thread with a source file
    and line in the program's own code (not a system library's, such as libc's abort());
    failing that, the innermost frame in a module that is not a system library (a stripped
    executable's frame, without file or line). Never a system library's frame: None when
    every frame is one."""
    thread = crashing_thread(crash)
    frames = [f for f in _get(thread, "frames") or [] if isinstance(f, dict)]
    own = [f for f in frames if _get(f, "module") and not _is_system(_get(f, "module"))
           and not _is_system(_get(f, "file"))]
    sourced = [f for f in own if _get(f, "file") and _get(f, "line")]
    return (sourced or own or [None])[0]


def backtrace_lines(crash: Dict) -> List[str]:
    thread = crashing_thread(crash)
    omitted = _get(thread, "frames_omitted")
    lines, placed = [], False
    for f in [f for f in _get(thread, "frames") or [] if isinstance(f, dict)]:
        if omitted and gap_before(f, lines and lines[-1][1]):
            lines.append((f"... {omitted} frames omitted", None))
            placed = True
        lines.append((frame_line(f), f))
    if omitted and not placed:
        lines.append((f"... {omitted} frames omitted", None))
    return [text for text, _ in lines]


def gap_before(frame: Dict, previous: Optional[Dict]) -> bool:
    """True when frames were omitted between `previous` and `frame` (their numbers jump)."""
    try:
        return previous is not None and int(frame["index"]) > int(previous["index"]) + 1
    except (KeyError, TypeError, ValueError):
        return False


def headline(crash: Dict) -> str:
    """``SIGSEGV (SEGV_MAPERR) at 0x0``: what a reader sees first."""
    sig = _get(crash, "signal") or {}
    text = str(_get(sig, "name") or "no signal")
    if _get(sig, "code_name"):
        text += f" ({sig['code_name']})"
    if _get(sig, "address") is not None and _get(sig, "number") in (4, 7, 8, 11):
        text += f" at {sig['address']}"
    return text


def group_crashes(entries: Iterable[Tuple[Dict, Optional[Dict]]]) -> List[Dict]:
    """Group (summary entry, crash dict) pairs by signature, most frequent first, then
    newest (later in the summary) first; each group keeps its entries in job order."""
    groups: Dict[str, Dict] = {}
    for order, (entry, crash) in enumerate(entries):
        signature = _get(crash, "signature") or _get(entry, "signature") or "(no signature)"
        group = groups.setdefault(signature, {"signature": signature, "members": [], "last": 0})
        group["members"].append((entry, crash))
        group["last"] = order
    return sorted(groups.values(), key=lambda g: (-len(g["members"]), -g["last"]))


# The checkout's root as each CI names it (GitHub Actions, GitLab CI, CircleCI; CircleCI's
# may start with "~").
_WORKSPACE_VARIABLES = ("GITHUB_WORKSPACE", "CI_PROJECT_DIR", "CIRCLE_WORKING_DIRECTORY")


def workspace(environ=None) -> Optional[str]:
    """The repository root of this CI job, or None outside CI (then the current directory)."""
    env = os.environ if environ is None else environ
    for name in _WORKSPACE_VARIABLES:
        if env.get(name):
            return os.path.expanduser(env[name])
    return None


def _relative(path: str, workspace: Optional[str]) -> str:
    """CI tools resolve a file against the repository root (GitHub's ``file=``: GITHUB_WORKSPACE)."""
    if workspace and os.path.isabs(path):
        rel = os.path.relpath(path, workspace)
        if not rel.startswith(".."):
            return rel
    return path


def _inside(path: str, root: str) -> Optional[str]:
    """`path` relative to `root` when it lies under it, else None; compared as written and
    then with symlinks resolved (a compiler records $PWD, which may go through a link)."""
    if not os.path.isabs(path):
        return None
    for resolve in (os.path.abspath, os.path.realpath):
        rel = os.path.relpath(resolve(path), resolve(root))
        if rel != os.curdir and rel != os.pardir and not rel.startswith(os.pardir + os.sep):
            return rel
    return None


def repo_file(frame: Dict, workspace: Optional[str]) -> str:
    """The ``file=`` of `frame`: its ``source_path`` (the absolute path DWARF names) relative
    to the workspace (GITHUB_WORKSPACE, else the current directory) when it lies inside;
    else its ``file``, made relative only when absolute."""
    path = frame.get("source_path")
    # A relative source_path (gdb's full name under a relative DW_AT_comp_dir, as Debian's
    # libc6-dbg has: ./nptl/./nptl/pthread_kill.c) is not relative to this directory.
    if isinstance(path, str) and path.startswith("/"):
        try:
            rel = _inside(clean_text(path), workspace or os.getcwd())
        except (OSError, ValueError):  # no current directory, a NUL in the path
            rel = None
        if rel is not None:
            return rel
    return _relative(clean_text(frame["file"]), workspace)
