"""
Location lists
==============

The location expression that holds at a pc for a DIE's location attribute (DWARF 5 §2.6):
the attribute's own expression (DW_FORM_exprloc, a block before DWARF 4) or the entry of its
location list that covers the pc (``.debug_loc`` before DWARF 5, ``.debug_loclists`` in
DWARF 5, §7.7.3), read by pyelftools' ``LocationParser``.

Addresses are the image's own. A location list's offset pairs count from the base address:
the compile unit's DW_AT_low_pc until a base-address entry changes it (DWARF 5 §2.6.2).
"""

from __future__ import annotations

import weakref
from typing import Optional

# pyelftools' location lists are imported where a list is read, not with this module: a warm
# analysis takes every value plan from the parse cache and imports no pyelftools (issue #18).

__all__ = ("location_at", "MAX_LIST_ENTRIES")

# Entries of one location list looked at; gcc's longest are a few hundred.
MAX_LIST_ENTRIES = 10_000

_PARSERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _parser(dwarfinfo):
    from elftools.dwarf.locationlists import LocationParser

    parser = _PARSERS.get(dwarfinfo)
    if parser is None:
        parser = _PARSERS[dwarfinfo] = LocationParser(dwarfinfo.location_lists())
    return parser


def location_at(die, pc: int, attribute: str = "DW_AT_location", entry: Optional[int] = None) -> Optional[bytes]:
    """The expression of `die`'s `attribute` at image address `pc`; None where the list has
    no entry for it (the value does not exist there) or the DIE has no such attribute.
    `entry`: the function's entry pc, where an empty range at it names the value there.
    Raises ValueError (or pyelftools' errors) for a malformed list."""
    from elftools.dwarf.locationlists import LocationExpr, LocationParser

    attr = die.attributes.get(attribute)
    if attr is None:
        return None
    version = die.cu["version"]
    if not LocationParser.attribute_has_location(attr, version):
        return None
    found = _parser(die.dwarfinfo).parse_from_attribute(attr, version, die)
    if isinstance(found, LocationExpr):
        return bytes(found.loc_expr)
    return _entry_at(found, pc, _cu_base(die), entry)


def _entry_at(entries, pc: int, base: int, entry_pc: Optional[int] = None) -> Optional[bytes]:
    from elftools.dwarf.locationlists import BaseAddressEntry, LocationEntry

    default = None
    for n, entry in enumerate(entries):
        if n >= MAX_LIST_ENTRIES:
            raise ValueError(f"location list longer than {MAX_LIST_ENTRIES} entries")
        if isinstance(entry, BaseAddressEntry):
            base = entry.base_address
        elif isinstance(entry, LocationEntry):
            if entry.begin_offset == -1:  # DW_LLE_default_location: where no other entry holds
                default = bytes(entry.loc_expr)
                continue
            low, high = entry.begin_offset, entry.end_offset
            if not entry.is_absolute:
                low, high = low + base, high + base
            if low <= pc < high or low == high == pc == entry_pc:
                # gdb's dwarf2_find_location_expression: an empty range at the function's
                # entry pc is "the entry PC record" (a location view there), taken first.
                return bytes(entry.loc_expr)
    return default


def _cu_base(die) -> int:
    top = die.cu.get_top_DIE()
    low = top.attributes.get("DW_AT_low_pc")
    return low.value if low is not None and isinstance(low.value, int) else 0
