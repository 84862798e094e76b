"""
Address ranges
==============

The addresses a DIE covers (DWARF 5 §2.17): ``DW_AT_low_pc``/``DW_AT_high_pc``, or a range
list named by ``DW_AT_ranges`` (``.debug_ranges`` before DWARF 5, ``.debug_rnglists`` from it),
and a DIE's entry pc (§3.3.3). The lists are read by ``coredump.dwarf.rangelists`` (by
pyelftools' ``elftools/dwarf/ranges.py`` for the files only pyelftools reads: big-endian ones).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Optional, Tuple
    Ranges = List[Tuple[int, int]]

__all__ = ("Ranges", "ADDRESS_FORMS", "die_ranges", "range_list", "entry_pc")

# DW_AT_high_pc is an address in DWARF 2-3 and for these forms; else an offset (DWARF 4 §2.17.2).
ADDRESS_FORMS = ("DW_FORM_addr", "DW_FORM_addrx", "DW_FORM_addrx1", "DW_FORM_addrx2",
                 "DW_FORM_addrx3", "DW_FORM_addrx4", "DW_FORM_GNU_addr_index")


def die_ranges(dwarfinfo, die) -> Ranges:
    """[low, high) ranges of a DIE from DW_AT_low_pc/DW_AT_high_pc or DW_AT_ranges
    (.debug_ranges before DWARF 5, .debug_rnglists from DWARF 5; DWARF 5 §2.17)."""
    attrs = die.attributes
    if "DW_AT_ranges" in attrs:
        return range_list(dwarfinfo, die.cu, attrs["DW_AT_ranges"].value)
    low = attrs.get("DW_AT_low_pc")
    high = attrs.get("DW_AT_high_pc")
    if low is None or high is None:
        return []
    hi = high.value if high.form in ADDRESS_FORMS else low.value + high.value
    return [(low.value, hi)] if hi > low.value else []


def range_list(dwarfinfo, cu, offset: int) -> Ranges:
    """The range list at `offset` for a DIE of `cu`; the base is the CU's DW_AT_low_pc until a
    base-address entry changes it (DWARF 5 §2.17.3)."""
    rl = dwarfinfo.range_lists()
    if rl is None:
        return []
    entries = rl.get_range_list_at_offset(offset, cu=cu)
    top = cu.get_top_DIE()
    base_attr = top.attributes.get("DW_AT_low_pc")
    base = base_attr.value if base_attr is not None else 0
    out = []
    for e in entries:
        if hasattr(e, "base_address"):  # ours (coredump.dwarf.rangelists) or pyelftools' BaseAddressEntry
            base = e.base_address
            continue
        low, high = e.begin_offset, e.end_offset
        if not getattr(e, "is_absolute", False):
            low, high = low + base, high + base
        if high > low:
            out.append((low, high))
    return out


def entry_pc(dwarfinfo, die) -> Optional[int]:
    """DW_AT_entry_pc when it is an address, else the first range's start: gcc lists a
    split function's hot part first (DWARF 5 §3.3.3)."""
    entry = die.attributes.get("DW_AT_entry_pc")
    if entry is not None and entry.form in ADDRESS_FORMS:
        return entry.value
    ranges = die_ranges(dwarfinfo, die)
    return ranges[0][0] if ranges else None
