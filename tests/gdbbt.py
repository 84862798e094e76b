"""
gdb as the oracle
=================

Run ``gdb -batch`` on a core and read its ``bt`` back as records: one per frame, with the
pc gdb used for it (``p/x $pc`` in every frame: inline frames share their physical frame's pc).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from typing import List, Optional

__all__ = ("GdbFrame", "gdb_backtrace", "strip_params")

_BT = re.compile(r"^#(\d+)\s+(?:(0x[0-9a-f]+) in )?(.+?) \(.*?\)(?: at (\S+):(\d+)| from (\S+))?$")
_PC = re.compile(r"^\$\d+ = (0x[0-9a-f]+)$")


@dataclass
class GdbFrame:
    index: int
    pc: int
    function: Optional[str]
    file: Optional[str]
    line: Optional[int]
    shows_address: bool


def gdb_backtrace(gdb: str, exe: str, core: str, limit: int = 64) -> List[GdbFrame]:
    """gdb's frames of the crashing thread (at most `limit`)."""
    out = subprocess.run(
        [gdb, "-batch", "-nx", "-ex", "set width 0", "-ex", f"bt {limit}",
         "-ex", f"frame apply {limit} -q p/x $pc", exe, core],
        capture_output=True, text=True, timeout=120,
    ).stdout.splitlines()
    bt = [m for m in map(_BT.match, out) if m]
    starts = [k for k, m in enumerate(bt) if m.group(1) == "0"]
    bt = bt[starts[-1]:] if starts else []  # gdb also prints frame 0 when it loads the core
    pcs = [int(m.group(1), 16) for m in map(_PC.match, out) if m]
    frames = []
    for m, pc in zip(bt, pcs):
        name = m.group(3)
        frames.append(GdbFrame(
            index=int(m.group(1)), pc=pc, function=None if name == "??" else name,
            file=m.group(4), line=int(m.group(5)) if m.group(5) else None,
            shows_address=m.group(2) is not None,
        ))
    return frames


def strip_params(name: Optional[str]) -> Optional[str]:
    """A demangled name without its parameter list and qualifiers, as gdb's ``bt`` names a
    C++ frame (``store::load_config(store::Config const&)`` -> ``store::load_config``)."""
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
