"""
Location lists
==============

The location lists a location attribute names (DWARF 5 §2.6.2): ``.debug_loc`` before
DWARF 5 (DWARF 4 §2.6.2: address pairs, a 2-byte expression length, a begin of all ones
selects a base address), ``.debug_loclists`` from it (DWARF 5 §7.7.3, DW_LLE_*, indexed
addresses from ``.debug_addr``), read with the entries pyelftools'
``elftools/dwarf/locationlists.py`` gives: ``LocationEntry`` (a DW_LLE_default_location has
begin and end -1) and ``BaseAddressEntry``. gcc's DW_LLE_GNU_view_pair (0x09, the views of
the next entry; gdb skips it) is stepped over.

A list is read within its section and at most ``MAX_LIST_ENTRIES`` entries; what runs past
either raises ``DieError``.
"""

from __future__ import annotations

from collections import namedtuple

from coredump.dwarf.dies import DieError
from coredump.dwarf.expr import read_uleb128
from coredump.dwarf.rangelists import fixed, read_list

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Union
    Entry = Union["LocationEntry", "BaseAddressEntry"]

__all__ = ("LocationEntry", "BaseAddressEntry", "LocationLists", "MAX_LIST_ENTRIES")

# Entries of one list read; gcc's longest are a few hundred.
MAX_LIST_ENTRIES = 10_000

# DWARF 5 Table 7.10, and gcc's DW_LLE_GNU_view_pair.
(DW_LLE_end_of_list, DW_LLE_base_addressx, DW_LLE_startx_endx, DW_LLE_startx_length, DW_LLE_offset_pair,
 DW_LLE_default_location, DW_LLE_base_address, DW_LLE_start_end, DW_LLE_start_length,
 DW_LLE_GNU_view_pair) = range(10)


class LocationEntry(namedtuple("LocationEntry",
                               "entry_offset entry_length begin_offset end_offset loc_expr is_absolute")):
    __slots__ = ()
    entry_offset: int
    entry_length: int
    begin_offset: int
    end_offset: int
    loc_expr: list
    is_absolute: bool


class BaseAddressEntry(namedtuple("BaseAddressEntry", "entry_offset entry_length base_address")):
    __slots__ = ()
    entry_offset: int
    entry_length: int
    base_address: int



class LocationLists:
    """The location lists of one DWARFInfo (``coredump.dwarf.dwarfinfo``)."""

    def __init__(self, dwarfinfo):
        self._dwarfinfo = dwarfinfo

    def get_location_list_at_offset(self, offset: int, die) -> List[Entry]:
        """The entries of the list at `offset`, for an attribute of `die`, its end entry left out."""
        info = self._dwarfinfo
        return read_list(info, die.cu, offset, (info.debug_loc_sec, _read_loc),
                         (info.debug_loclists_sec, _read_loclist), "location list")


def _expr(data, pos: int, n: int):
    if pos + n > len(data):
        raise IndexError(pos)
    return list(data[pos:pos + n]), pos + n


def _read_loc(info, cu, data, offset: int) -> List[Entry]:
    """DWARF 4 §2.6.2, §7.7.3."""
    size = cu["address_size"]
    order = "little" if info.config.little_endian else "big"
    top = (1 << (8 * size)) - 1
    out: List[Entry] = []
    pos = offset
    while len(out) < MAX_LIST_ENTRIES:
        start = pos
        begin, end = fixed(data, pos, size, order), fixed(data, pos + size, size, order)
        pos += 2 * size
        if begin == 0 and end == 0:
            return out
        if begin == top:
            out.append(BaseAddressEntry(start, pos - start, end))
            continue
        expr, pos = _expr(data, pos + 2, fixed(data, pos, 2, order))
        out.append(LocationEntry(start, pos - start, begin, end, expr, False))
    raise DieError(f"location list at {offset:#x} has more than {MAX_LIST_ENTRIES} entries")


def _read_loclist(info, cu, data, offset: int) -> List[Entry]:
    """DWARF 5 §2.6.2, §7.7.3: a kind byte, its operands, then (but for the base address
    entries) a counted location description."""
    size = cu["address_size"]
    order = "little" if info.config.little_endian else "big"
    out: List[Entry] = []
    pos = offset
    for _ in range(2 * MAX_LIST_ENTRIES):  # view pairs count too
        start = pos
        kind = data[pos]
        pos += 1
        if kind == DW_LLE_end_of_list:
            return out
        if kind == DW_LLE_GNU_view_pair:
            pos = read_uleb128(data, read_uleb128(data, pos)[1])[1]
            continue
        if kind == DW_LLE_base_address:
            out.append(BaseAddressEntry(start, 1 + size, fixed(data, pos, size, order)))
            pos += size
            continue
        if kind == DW_LLE_base_addressx:
            index, pos = read_uleb128(data, pos)
            out.append(BaseAddressEntry(start, pos - start, info.get_addr(cu, index)))
            continue
        if kind in (DW_LLE_start_end, DW_LLE_start_length):
            low, pos = fixed(data, pos, size, order), pos + size
            if kind == DW_LLE_start_end:
                high, pos = fixed(data, pos, size, order), pos + size
            else:
                n, pos = read_uleb128(data, pos)
                high = low + n
            absolute = True
        elif kind == DW_LLE_default_location:
            low = high = -1
            absolute = True
        elif kind in (DW_LLE_startx_endx, DW_LLE_startx_length, DW_LLE_offset_pair):
            a, pos = read_uleb128(data, pos)
            b, pos = read_uleb128(data, pos)
            absolute = kind != DW_LLE_offset_pair
            if kind == DW_LLE_offset_pair:
                low, high = a, b
            else:
                low = info.get_addr(cu, a)
                high = info.get_addr(cu, b) if kind == DW_LLE_startx_endx else low + b
        else:
            raise DieError(f"location list entry at {start:#x} has unknown kind {kind:#x}")
        n, pos = read_uleb128(data, pos)
        expr, pos = _expr(data, pos, n)
        out.append(LocationEntry(start, pos - start, low, high, expr, absolute))
        if len(out) >= MAX_LIST_ENTRIES:
            break
    raise DieError(f"location list at {offset:#x} has more than {MAX_LIST_ENTRIES} entries")
