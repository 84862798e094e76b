"""
Compile units
=============

Which compile unit holds an address: ``.debug_aranges`` (DWARF 5 §6.1.2) first, as
pyelftools' ``elftools/dwarf/aranges.py`` reads it, else the ranges of the CU DIEs that
``.debug_aranges`` does not list (gcc leaves it out for some units; clang by default).
"""

from __future__ import annotations

import bisect
from typing import Callable, List, Optional, Tuple

from coredump.dwarf.ranges import die_ranges

__all__ = ("CompileUnitIndex",)


class CompileUnitIndex:
    """`cu_offset(address)` for one image's DWARF; `visit(count)` is called per CU walked
    (the caller's limits raise from it)."""

    def __init__(self, dwarfinfo, visit: Callable[[int], None]):
        self._dwarfinfo = dwarfinfo
        self._visit = visit
        self._aranges = None
        self._cu_ranges: Optional[List[Tuple[int, int, int]]] = None

    def cu_offset(self, address: int) -> Optional[int]:
        """The CU holding `address`: from .debug_aranges (DWARF 5 §6.1.2), else from CU
        ranges for the units .debug_aranges does not list."""
        if self._aranges is None:
            try:
                self._aranges = self._dwarfinfo.get_aranges() or False
            except Exception:
                self._aranges = False
        if self._aranges:
            try:
                found = self._aranges.cu_offset_at_addr(address)
            except Exception:
                found = None
            if found is not None:
                return found
        return self._cu_from_ranges(address)

    def _cu_from_ranges(self, address: int) -> Optional[int]:
        if self._cu_ranges is None:
            self._cu_ranges = self._build_cu_ranges()
        i = bisect.bisect_right(self._cu_ranges, (address, float("inf"), 0))
        for low, high, offset in reversed(self._cu_ranges[max(0, i - 64):i]):
            if low <= address < high:
                return offset
        return None

    def _build_cu_ranges(self) -> List[Tuple[int, int, int]]:
        listed = set()
        if self._aranges:
            try:
                listed = {e.info_offset for e in self._aranges.entries}
            except Exception:
                listed = set()
        out = []
        for count, cu in enumerate(self._dwarfinfo.iter_CUs()):
            self._visit(count)
            if cu.cu_offset in listed:
                continue
            try:
                for low, high in die_ranges(self._dwarfinfo, cu.get_top_DIE()):
                    out.append((low, high, cu.cu_offset))
            except Exception:
                continue
        out.sort()
        return out
