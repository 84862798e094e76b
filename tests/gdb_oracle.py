"""
gdb as the oracle
=================

Run ``gdb -batch`` on a core and read its backtraces back as records: per thread (by LWP),
per frame the address gdb printed, the function name without its argument list, file:line,
the library gdb names, and gdb's own frame type and pc (read through its Python API, so
inline and tail-call frames are known for what they are, not guessed from the text).
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

__all__ = ("GdbFrame", "GdbThread", "GdbReport", "DebugFiles", "SYSTEM", "run_gdb", "run_gdb_deep",
           "parse_gdb", "parse_frame", "strip_params", "system_debug_files", "NORMAL_FRAME",
           "INLINE_FRAME", "TAILCALL_FRAME", "SIGTRAMP_FRAME", "SIGNAL_HANDLER_CALLED")

# gdb.NORMAL_FRAME ... gdb.SIGTRAMP_FRAME (gdb/frame.h enum frame_type).
NORMAL_FRAME, INLINE_FRAME, TAILCALL_FRAME, SIGTRAMP_FRAME = 0, 2, 3, 4
SIGNAL_HANDLER_CALLED = "<signal handler called>"

# -nx: no ~/.gdbinit; no debuginfod (no network here, and it must not change what gdb finds);
# past-main on: our walk goes on to _start as drgn and elfutils do, gdb stops at main by
# default; frame-arguments none: gdb prints `f (...)`, nothing to parse in (or to evaluate:
# entry values make `bt` of a deep -O2 recursion take minutes).
GDB_INIT = ("-batch", "-nx", "-iex", "set debuginfod enabled off", "-iex", "set width 0",
            "-iex", "set height 0", "-iex", "set backtrace past-main on",
            "-iex", "set print frame-arguments none")
MARK = "@@oracle "
# Per thread, per frame: gdb's frame type and pc (inline frames share their caller's pc).
FRAME_TYPES = r"""python
def _oracle_frames(limit):
    for th in sorted(gdb.selected_inferior().threads(), key=lambda t: t.num):
        th.switch()
        f, i = gdb.newest_frame(), 0
        while f is not None and i < limit:
            print("@@oracle frame %d %d %d %#x" % (th.ptid[1], i, f.type(), f.pc()))
            try:
                f, i = f.older(), i + 1
            except gdb.error:
                break
end"""

_THREAD = re.compile(r"^Thread (\d+) \(.*?\bLWP (\d+)\)")
_CURRENT = re.compile(r"^\*\s+(\d+)\s+.*?\bLWP (\d+)\b")
_FRAME = re.compile(r"^#(\d+)\s+(?:(0x[0-9a-f]+) in )?(.*)$")
_ARGS = re.compile(r" \([^()]*\)$")
_SIGNAL = re.compile(r"Program terminated with signal (SIG\w+)")
_SHLIB = re.compile(r"^(?:0x[0-9a-f]+\s+0x[0-9a-f]+)?\s+(?:Yes|No)(?: \(\*\))?\s+(/\S.*)$")


@dataclass(frozen=True)
class DebugFiles:
    """The separate debug files both sides of a comparison may use (issue #15's two modes).

    ``system``: the machine's own (``/usr/lib/debug``: Debian's libc6-dbg, -dbg and dbgsym
    packages where installed), each tool's default. ``hidden``: none, on both sides: ours
    with `directory` (an empty one) as the only debug dir, gdb with ``debug-file-directory``
    set to it by ``-iex``, before the file is loaded (gdb manual, "Separate Debug Files": the
    build-id and debuglink lookups under the global directory then find nothing). That is a
    machine without distribution debug files, as far as these lookups go. Files beside the
    binary (``.gnu_debuglink`` in its own and its ``.debug/`` directory) stay visible to both.
    Neither side asks debuginfod: gdb's is off (GDB_INIT), and the fixture unsets
    DEBUGINFOD_URLS for ours."""

    mode: str
    directory: Optional[str] = None

    @property
    def gdb_args(self) -> Tuple[str, ...]:
        return ("-iex", f"set debug-file-directory {self.directory}") if self.directory else ()

    @property
    def cli_args(self) -> Tuple[str, ...]:
        """For ``coredump analyze``."""
        return ("--debug-dir", self.directory) if self.directory else ()

    def finder_options(self, **kw):
        from coredump.symbols.finder import FinderOptions

        return FinderOptions(**self._dirs(), **kw)

    def analyze_options(self, **kw):
        from coredump.analysis import AnalyzeOptions

        return AnalyzeOptions(**self._dirs(), **kw)

    def _dirs(self):
        return {"debug_dirs": (self.directory,)} if self.directory else {}


SYSTEM = DebugFiles("system")


def system_debug_files() -> bool:
    """Whether the machine has separate debug files where both tools look by default."""
    from coredump.symbols.finder import DEFAULT_DEBUG_DIRS

    return any(os.path.isdir(os.path.join(d, ".build-id")) and os.listdir(os.path.join(d, ".build-id"))
               for d in DEFAULT_DEBUG_DIRS)


@dataclass
class GdbFrame:
    index: int
    pc: Optional[int]  # the address gdb printed; None for a frame 0 at a line's start and inline callers
    function: Optional[str]  # None where gdb prints ??
    file: Optional[str]
    line: Optional[int]
    library: Optional[str]  # gdb's `from LIB` (frames without debug info in a shared object)
    type: Optional[int] = None  # gdb.*_FRAME, where the Python pass reached this frame
    frame_pc: Optional[int] = None  # gdb's frame.pc(): set for every frame the Python pass reached

    @property
    def shows_address(self) -> bool:
        return self.pc is not None

    @property
    def is_inline(self) -> bool:
        return self.type == INLINE_FRAME

    @property
    def is_tailcall(self) -> bool:
        return self.type == TAILCALL_FRAME

    @property
    def is_signal(self) -> bool:
        return self.type == SIGTRAMP_FRAME or self.function == SIGNAL_HANDLER_CALLED


@dataclass
class GdbThread:
    number: int
    lwp: int
    frames: List[GdbFrame] = field(default_factory=list)
    total: Optional[int] = None  # frame count where only the top and bottom were printed

    def physical_frames(self) -> List[GdbFrame]:
        """Frames without the tail-call frames gdb rebuilds from DW_TAG_call_site: they have no
        stack frame of their own, so no physical unwinder (ours, elfutils, drgn) sees them. For
        the tests of the walk and of symbolization; the frames we put back after those
        (unwind/tailcall.py) are compared in test_tailcall.py and test_gdb_oracle.py."""
        return [f for f in self.frames if not f.is_tailcall]


@dataclass
class GdbReport:
    signal: Optional[str]
    current: Optional[int]  # gdb's selected thread number (the one that took the signal)
    current_lwp: Optional[int]
    threads: List[GdbThread]
    raw: str
    libraries: List[str] = field(default_factory=list)  # `info sharedlibrary`: the link map's names

    def thread_by_lwp(self, lwp: int) -> Optional[GdbThread]:
        return next((t for t in self.threads if t.lwp == lwp), None)

    @property
    def crashing(self) -> Optional[GdbThread]:
        return next((t for t in self.threads if t.number == self.current), None)


def strip_params(name: Optional[str]) -> Optional[str]:
    """A demangled name without its parameter list and qualifiers, as gdb's ``bt`` names a
    C++ frame with DWARF (``store::load_config(store::Config const&)`` -> ``store::load_config``)."""
    if name is None:
        return None
    end = name
    for suffix in (" const", " volatile", " &", " &&"):
        if end.endswith(suffix):
            end = end[: -len(suffix)]
    if not end.endswith(")"):
        return name
    depth = 0
    for i in range(len(end) - 1, -1, -1):
        if end[i] == ")":
            depth += 1
        elif end[i] == "(":
            depth -= 1
            if depth == 0:
                return end[:i]
    return name


def _strip_balanced_args(text: str) -> str:
    """Drop a printed argument list ``f (a=1, b=g(2))``: the last balanced group after a space."""
    depth, quoted = 0, False
    for i in range(len(text) - 1, -1, -1):
        if text[i] == '"' and text[i - 1:i] != "\\":
            quoted = not quoted  # a string value: its parentheses are text
        elif quoted:
            continue
        elif text[i] == ")":
            depth += 1
        elif text[i] == "(":
            depth -= 1
            if depth == 0:
                return text[:i - 1] if i > 0 and text[i - 1] == " " else text
    return text


def parse_frame(line: str) -> Optional[GdbFrame]:
    """One ``#N ...`` line of ``bt`` printed with ``set print frame-arguments none``."""
    m = _FRAME.match(line)
    if not m:
        return None
    rest = m.group(3)
    library = file = lineno = None
    lm = re.search(r" from (\S+)$", rest)
    if lm:
        library, rest = lm.group(1), rest[:lm.start()]
    fm = re.search(r" at (\S+):(\d+)$", rest)
    if fm:
        file, lineno, rest = fm.group(1), int(fm.group(2)), rest[:fm.start()]
    # With frame-arguments none the argument list is `(a=..., b=...)` (debug info) or `()`:
    # no parentheses inside it. Text printed with values (other tests' `bt`) may have some.
    rest = _ARGS.sub("", rest) if _ARGS.search(rest) else _strip_balanced_args(rest)
    function = None if rest == "??" else rest
    return GdbFrame(int(m.group(1)), int(m.group(2), 16) if m.group(2) else None, function, file,
                    lineno, library)


def _sections(text: str) -> Dict[str, List[str]]:
    """gdb's output split at the ``echo`` markers run_gdb puts before each command; text
    without them is taken as the output of ``thread apply all bt``."""
    lines = text.splitlines()
    if not any(line.startswith(MARK) for line in lines):
        return {"bt all": lines, "info threads": lines}  # plain `bt` text, from another test
    out: Dict[str, List[str]] = {"load": []}
    current = "load"
    for line in lines:
        if line.startswith(MARK) and not line.startswith(MARK + "frame "):
            current = line[len(MARK):].strip()
            out[current] = []
        else:
            out[current].append(line)
    return out


def _frame_types(lines: List[str]) -> Dict[Tuple[int, int], Tuple[int, int]]:
    types = {}
    for line in lines:
        if line.startswith(MARK + "frame "):
            lwp, index, kind, pc = line.split()[2:]
            types[(int(lwp), int(index))] = (int(kind), int(pc, 16))
    return types


def parse_gdb(text: str) -> GdbReport:
    """Read what run_gdb or run_gdb_deep made gdb print."""
    sections = _sections(text)
    sm = _SIGNAL.search(text)
    current = current_lwp = None
    for line in sections.get("info threads", []):
        cm = _CURRENT.match(line)
        if cm:
            current, current_lwp = int(cm.group(1)), int(cm.group(2))
    threads: List[GdbThread] = []
    for line in sections.get("bt all", []):
        tm = _THREAD.match(line)
        if tm:
            threads.append(GdbThread(int(tm.group(1)), int(tm.group(2))))
        elif threads and (frame := parse_frame(line.rstrip())) is not None:
            threads[-1].frames.append(frame)
    if "bt top" in sections and current is not None:  # run_gdb_deep: the selected thread only
        top = [f for f in map(parse_frame, sections["bt top"]) if f]
        bottom = [f for f in map(parse_frame, sections["bt bottom"]) if f]
        total = bottom[-1].index + 1 if bottom else len(top)
        seen = {f.index for f in top}
        threads.append(GdbThread(current, current_lwp, top + [f for f in bottom if f.index not in seen],
                                 total))
    types = _frame_types(text.splitlines())
    for t in threads:
        for f in t.frames:
            f.type, f.frame_pc = types.get((t.lwp, f.index), (None, None))
    libraries = [m.group(1) for m in map(_SHLIB.match, sections.get("shlibs", [])) if m]
    return GdbReport(sm.group(1) if sm else None, current, current_lwp, threads, text, libraries)


def _argv(gdb: str, exe: Optional[str], core: str, commands: List[Tuple[str, str]], extra) -> List[str]:
    argv = [gdb, *GDB_INIT, *extra]
    for name, command in commands:
        argv += ["-ex", f"echo {MARK}{name}\\n", "-ex", command]
    return argv + ([exe, core] if exe else ["-c", core])


@functools.cache
def _run(argv: Tuple[str, ...]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "DEBUGINFOD_URLS"}
    out = subprocess.run(list(argv), capture_output=True, text=True, timeout=600,
                         stdin=subprocess.DEVNULL, env=env)
    return out.stdout + out.stderr


def run_gdb(exe: Optional[str], core: str, gdb: str = "gdb", extra=(), types_limit: int = 4096,
            debug: DebugFiles = SYSTEM) -> GdbReport:
    """``thread apply all bt`` of every thread, with frame types and pcs of the first
    `types_limit` frames of each, and ``info sharedlibrary``; gdb sees the debug files of
    `debug`. Cached per process: the tests of one session share a run."""
    commands = [("info threads", "info threads"), ("shlibs", "info sharedlibrary"),
                ("bt all", "thread apply all bt"),
                ("types", FRAME_TYPES), ("types run", f"python _oracle_frames({types_limit})")]
    return parse_gdb(_run(tuple(_argv(gdb, str(exe) if exe else None, str(core), commands,
                                      (*debug.gdb_args, *extra)))))


def run_gdb_deep(exe: Optional[str], core: str, gdb: str = "gdb", top: int = 64, bottom: int = 16,
                 extra=(), debug: DebugFiles = SYSTEM) -> GdbReport:
    """The selected thread's top `top` and bottom `bottom` frames (``bt N``, ``bt -N``) and its
    frame count, for stacks too deep to print whole (a stack overflow has ~10^5 frames)."""
    commands = [("info threads", "info threads"), ("bt top", f"bt {top}"),
                ("bt bottom", f"bt -{bottom}"), ("types", FRAME_TYPES),
                ("types run", f"python _oracle_frames({top})")]
    return parse_gdb(_run(tuple(_argv(gdb, str(exe) if exe else None, str(core), commands,
                                      (*debug.gdb_args, *extra)))))
