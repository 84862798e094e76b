"""
DWARF limits
============

The time one analysis may spend reading DWARF, shared by all its images, and the one
warning per image that says a limit cut something off.

The limits (each with its reason beside it):

- ``DWARF_TIME_BUDGET`` (here): seconds of DWARF reading per analysis, across images;
- ``MAX_DIES_PER_WALK`` (``coredump.dwarf.index``): DIEs one walk of a compile unit visits;
- ``MAX_INLINE_DEPTH`` (``coredump.dwarf.inline``): the depth of one inline chain;
- ``MAX_LINE_ROWS`` (``coredump.dwarf.lineprogram``): rows one line program may emit.

A frame a limit cuts off keeps what is known without that DWARF: its name from the
symbol table, no ``file:line`` and no inline frames (a line-table cut keeps the DWARF
names and inline frames, without lines).
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Optional, Set

__all__ = ("DWARF_TIME_BUDGET", "DwarfBudget", "DwarfTooLarge")

# Seconds of DWARF reading per analysis, all images together. A usual crash needs tens of
# milliseconds (one compile unit per frame, tests/test_dwarf.py test_first_lookup_is_fast);
# 5 s is ~500,000 DIEs at pyelftools' ~110,000 DIEs/s here, and keeps a report of a huge
# binary within seconds of gdb's own start-up on it. Past it, frames show symbol names.
DWARF_TIME_BUDGET = 5.0


class DwarfTooLarge(Exception):
    """A limit stopped a walk; ``reason`` names it ("CU at 0x… has more than N DIEs")."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class DwarfBudget:
    """The DWARF time of one analysis (``Target`` makes one, each ``DwarfIndex`` of its
    modules charges it) and the warnings of the limits that cut in, one per image."""

    def __init__(self, seconds: Optional[float] = None):
        self.seconds = DWARF_TIME_BUDGET if seconds is None else seconds
        self.spent = 0.0
        self.warnings: List[str] = []
        self._warned: Set[str] = set()

    def deadline(self) -> float:
        """The ``time.monotonic()`` at which what is left of the budget runs out, if the
        clock is started now."""
        return time.monotonic() + max(0.0, self.seconds - self.spent)

    def charge(self, started: float) -> None:
        """Count the time since `started` (a ``time.monotonic()``) as spent."""
        self.spent += time.monotonic() - started

    def time_reason(self) -> str:
        return f"the analysis' DWARF time budget of {self.seconds:g} s is spent"

    def malformed(self, path: str, reason: str) -> None:
        """The warning for `path` whose DIEs cannot be read (``coredump.dwarf.dies``), once per file."""
        if path in self._warned:
            return
        self._warned.add(path)
        self.warnings.append(f"{path}: malformed DWARF ({reason}); frames there are named from the symbol table")

    def warn(self, path: str, reason: str) -> None:
        """The warning for `path` (the file whose DWARF was cut), once per file."""
        if path in self._warned:
            return
        self._warned.add(path)
        self.warnings.append(f"{path}: DWARF too large to read in full ({reason}); "
                             "some inline frames and lines are missing")
