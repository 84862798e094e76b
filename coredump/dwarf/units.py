"""
Compile units
=============

Which compile unit holds an address: ``.debug_aranges`` (DWARF 5 §6.1.2) first, read here
with ``struct.unpack_from`` (pyelftools' ``elftools/dwarf/aranges.py`` builds a construct
container per tuple: ~0.3 s for libc's), else the ranges of the CU DIEs that
``.debug_aranges`` does not list (gcc leaves it out for some units; clang by default).
"""

from __future__ import annotations

import bisect
import struct

from coredump.dwarf.ranges import die_ranges

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable, List, Optional, Set, Tuple

__all__ = ("CompileUnitIndex", "read_aranges")

# Address sizes an address-range table may use (DWARF 5 §7.21: the target's).
_ADDRESS_FORMATS = {4: "I", 8: "Q"}


def read_aranges(data, little_endian: bool = True) -> Tuple[List[Tuple[int, int, int]], Set[int]]:
    """(sorted (start, end, CU offset) of every non-empty range, the CU offsets with a range) of
    .debug_aranges' bytes `data` (DWARF 5 §6.1.2, §7.21). ValueError for a malformed set."""
    order = "<" if little_endian else ">"
    out: List[Tuple[int, int, int]] = []
    listed: Set[int] = set()
    pos, end = 0, len(data)
    try:
        while pos < end:
            start = pos
            (length,) = struct.unpack_from(order + "I", data, pos)
            pos += 4
            offset_format = "I"
            if length == 0xFFFFFFFF:  # the 64-bit DWARF format (DWARF 5 §7.4)
                (length,) = struct.unpack_from(order + "Q", data, pos)
                pos += 8
                offset_format = "Q"
            set_end = pos + length
            if length == 0 or set_end > end:
                raise ValueError(f"address range set at {start:#x} runs past the section")
            _version, info_offset, address_size, segment_size = struct.unpack_from(
                order + "H" + offset_format + "BB", data, pos)
            pos += 2 + struct.calcsize(offset_format) + 2
            fmt = _ADDRESS_FORMATS.get(address_size)
            if fmt is None or segment_size:
                pos = set_end  # segmented or odd addresses: not this tool's targets
                continue
            pos = start + -(-(pos - start) // (2 * address_size)) * (2 * address_size)  # tuples aligned (§7.21)
            pair = order + fmt + fmt
            for address, size in struct.iter_unpack(pair, data[pos:set_end - (set_end - pos) % (2 * address_size)]):
                if address == 0 and size == 0:
                    break
                listed.add(info_offset)  # a set with no tuple lists no unit (as pyelftools' entries)
                if size:
                    out.append((address, address + size, info_offset))
            pos = set_end
    except struct.error:
        raise ValueError("address range table runs past the section") from None
    out.sort()
    return out, listed


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
            self._aranges = self._read_aranges()
        if self._aranges:
            table = self._aranges[0]
            i = bisect.bisect_right(table, (address, float("inf"), 0))
            for low, high, offset in reversed(table[max(0, i - 64):i]):
                if low <= address < high:
                    return offset
        return self._cu_from_ranges(address)

    def _read_aranges(self):
        section = self._dwarfinfo.debug_aranges_sec
        if section is None:
            return False
        try:
            return read_aranges(section.stream.getbuffer(), self._dwarfinfo.config.little_endian)
        except ValueError:
            return False  # the CU DIEs' own ranges answer

    def _cu_from_ranges(self, address: int) -> Optional[int]:
        if self._cu_ranges is None:
            self._cu_ranges = self._build_cu_ranges()
        i = bisect.bisect_right(self._cu_ranges, (address, float("inf"), 0))
        for low, high, offset in reversed(self._cu_ranges[max(0, i - 64):i]):
            if low <= address < high:
                return offset
        return None

    def _build_cu_ranges(self) -> List[Tuple[int, int, int]]:
        listed = self._aranges[1] if self._aranges else set()
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
