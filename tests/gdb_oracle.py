"""
gdb as the oracle: run ``gdb -batch`` on a core and parse what it prints.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from typing import List, Optional

__all__ = ("GdbFrame", "GdbThread", "GdbReport", "run_gdb", "parse_gdb")

_THREAD = re.compile(r"^Thread (\d+) \((?:Thread 0x[0-9a-f]+ )?\(?LWP (\d+)\)")
_FRAME = re.compile(
    r"^#(\d+)\s+(?:(0x[0-9a-f]+) in )?(.+?)(?: \(.*?\))?(?: at (\S+):(\d+))?(?: from (\S+))?$")
_CURRENT = re.compile(r"^\*\s+(\d+)\s+")
_SIGNAL = re.compile(r"Program terminated with signal (SIG\w+)")


@dataclass
class GdbFrame:
    index: int
    pc: Optional[int]
    function: str
    file: Optional[str]
    line: Optional[int]
    library: Optional[str]

    @property
    def inline_or_exact(self) -> bool:
        """gdb omits the address for frame 0 and for inline frames (pc is at a line start)."""
        return self.pc is None


@dataclass
class GdbThread:
    number: int
    lwp: int
    frames: List[GdbFrame] = field(default_factory=list)


@dataclass
class GdbReport:
    signal: Optional[str]
    current: Optional[int]
    threads: List[GdbThread]
    raw: str

    def thread_by_lwp(self, lwp: int) -> Optional[GdbThread]:
        return next((t for t in self.threads if t.lwp == lwp), None)


def _strip_args(text: str) -> str:
    """Drop the argument list gdb prints after a name: ``f (a=1, b=...)``."""
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        c = text[i]
        if c == ")":
            depth += 1
        elif c == "(":
            depth -= 1
            if depth == 0 and i > 0 and text[i - 1] == " ":
                return text[:i - 1]
    return text


def parse_frame(line: str) -> Optional[GdbFrame]:
    m = re.match(r"^#(\d+)\s+(?:(0x[0-9a-f]+) in )?(.*)$", line)
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
    function = _strip_args(rest.strip())
    return GdbFrame(int(m.group(1)), int(m.group(2), 16) if m.group(2) else None, function, file,
                    lineno, library)


def parse_gdb(text: str) -> GdbReport:
    signal = None
    current = None
    threads: List[GdbThread] = []
    sm = _SIGNAL.search(text)
    if sm:
        signal = sm.group(1)
    for line in text.splitlines():
        cm = _CURRENT.match(line)
        if cm and current is None:
            current = int(cm.group(1))
        tm = _THREAD.match(line)
        if tm:
            threads.append(GdbThread(int(tm.group(1)), int(tm.group(2))))
            continue
        if threads and line.startswith("#"):
            frame = parse_frame(line.rstrip())
            if frame is not None:
                threads[-1].frames.append(frame)
    return GdbReport(signal, current, threads, text)


def run_gdb(exe: Optional[str], core: str, gdb: str = "gdb", extra=()) -> GdbReport:
    argv = [gdb, "-batch", "-nx", "-iex", "set debuginfod enabled off", *extra,
            "-ex", "info threads", "-ex", "thread apply all bt"]
    argv += [exe, core] if exe else ["-c", core]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    return parse_gdb(out.stdout + out.stderr)
