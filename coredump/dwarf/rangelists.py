"""
Range lists
===========

The range lists DW_AT_ranges names (DWARF 5 §2.17.3): ``.debug_ranges`` pairs before
DWARF 5 (DWARF 4 §2.17.3, a begin of all ones selects a base address), ``.debug_rnglists``
entries from it (DWARF 5 §7.25, DW_RLE_*, indexed addresses from ``.debug_addr``), read
with the entries pyelftools' ``elftools/dwarf/ranges.py`` gives: ``RangeEntry`` (its
offsets relative to the base unless ``is_absolute``) and ``BaseAddressEntry``.

A list is read within its section and at most ``MAX_LIST_ENTRIES`` entries; what runs past
either raises ``DieError``.
"""

from __future__ import annotations

from collections import namedtuple

from coredump.dwarf.dies import DieError
from coredump.dwarf.expr import ExpressionError, read_uleb128

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Union
    Entry = Union["RangeEntry", "BaseAddressEntry"]

__all__ = ("RangeEntry", "BaseAddressEntry", "RangeLists", "MAX_LIST_ENTRIES", "section_for", "read_list", "fixed")

# Entries of one list read; gcc's longest (a function split in many parts) have a few dozen.
MAX_LIST_ENTRIES = 10_000

# DWARF 5 Table 7.30.
(DW_RLE_end_of_list, DW_RLE_base_addressx, DW_RLE_startx_endx, DW_RLE_startx_length, DW_RLE_offset_pair,
 DW_RLE_base_address, DW_RLE_start_end, DW_RLE_start_length) = range(8)


class RangeEntry(namedtuple("RangeEntry", "entry_offset entry_length begin_offset end_offset is_absolute")):
    __slots__ = ()
    entry_offset: int
    entry_length: int
    begin_offset: int
    end_offset: int
    is_absolute: bool


class BaseAddressEntry(namedtuple("BaseAddressEntry", "entry_offset base_address")):
    __slots__ = ()
    entry_offset: int
    base_address: int



def section_for(version: int, v4, v5):
    """The section a unit of DWARF `version` reads its lists from: by version where the file
    has both, else the one it has (as pyelftools' DWARFInfo picks it)."""
    if v4 is not None and v5 is not None:
        return v5 if version >= 5 else v4
    return v5 if v5 is not None else v4


class RangeLists:
    """The range lists of one DWARFInfo (``coredump.dwarf.dwarfinfo``)."""

    def __init__(self, dwarfinfo):
        self._dwarfinfo = dwarfinfo

    def get_range_list_at_offset(self, offset: int, cu) -> List[Entry]:
        """The entries of the list at `offset`, for a DIE of `cu`, its end entry left out."""
        info = self._dwarfinfo
        return read_list(info, cu, offset, (info.debug_ranges_sec, _read_ranges),
                         (info.debug_rnglists_sec, _read_rnglist), "range list")


def read_list(info, cu, offset: int, v4, v5, what: str) -> list:
    """The list at `offset` read by the (section, reader) pair `v4` or `v5` that `cu`'s
    version takes (``section_for``); DieError for a list past its section."""
    section = section_for(cu["version"], v4[0], v5[0])
    if section is None:
        raise DieError(f"a {what} without its section")
    reader = v5[1] if section is v5[0] else v4[1]
    try:
        return reader(info, cu, section.stream.getbuffer(), offset)
    except (IndexError, ExpressionError):
        raise DieError(f"{what} at {offset:#x} runs past {section.name}") from None


def fixed(data, pos: int, size: int, order: str) -> int:
    """The `size`-byte integer at `pos` (an address, a length); IndexError past `data`."""
    if pos + size > len(data):
        raise IndexError(pos)
    return int.from_bytes(data[pos:pos + size], order)


def _read_ranges(info, cu, data, offset: int) -> List[Entry]:
    """DWARF 4 §2.17.3: (begin, end) address pairs; (0, 0) ends the list."""
    size = cu["address_size"]
    order = "little" if info.config.little_endian else "big"
    top = (1 << (8 * size)) - 1
    out: List[Entry] = []
    pos = offset
    while len(out) < MAX_LIST_ENTRIES:
        begin, end = fixed(data, pos, size, order), fixed(data, pos + size, size, order)
        if begin == 0 and end == 0:
            return out
        out.append(BaseAddressEntry(pos, end) if begin == top else RangeEntry(pos, 2 * size, begin, end, False))
        pos += 2 * size
    raise DieError(f"range list at {offset:#x} has more than {MAX_LIST_ENTRIES} entries")


def _read_rnglist(info, cu, data, offset: int) -> List[Entry]:
    """DWARF 5 §2.17.3, §7.25: a kind byte, then its operands."""
    size = cu["address_size"]
    order = "little" if info.config.little_endian else "big"
    out: List[Entry] = []
    pos = offset
    while len(out) < MAX_LIST_ENTRIES:
        start = pos
        kind = data[pos]
        pos += 1
        if kind == DW_RLE_end_of_list:
            return out
        if kind in (DW_RLE_base_address, DW_RLE_start_end, DW_RLE_start_length):
            a, pos = fixed(data, pos, size, order), pos + size
            if kind == DW_RLE_base_address:
                out.append(BaseAddressEntry(start, a))
                continue
            if kind == DW_RLE_start_end:
                b, pos = fixed(data, pos, size, order), pos + size
            else:
                n, pos = read_uleb128(data, pos)
                b = a + n
            out.append(RangeEntry(start, pos - start, a, b, True))
            continue
        if kind > DW_RLE_start_length:
            raise DieError(f"range list entry at {start:#x} has unknown kind {kind:#x}")
        a, pos = read_uleb128(data, pos)
        if kind == DW_RLE_base_addressx:
            out.append(BaseAddressEntry(start, info.get_addr(cu, a)))
            continue
        b, pos = read_uleb128(data, pos)
        if kind == DW_RLE_offset_pair:
            out.append(RangeEntry(start, pos - start, a, b, False))
        else:
            low = info.get_addr(cu, a)
            high = info.get_addr(cu, b) if kind == DW_RLE_startx_endx else low + b
            out.append(RangeEntry(start, pos - start, low, high, True))
    raise DieError(f"range list at {offset:#x} has more than {MAX_LIST_ENTRIES} entries")
