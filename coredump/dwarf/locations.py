"""
Location lists
==============

The location expression that holds at a pc for a DIE's location attribute (DWARF 5 §2.6):
the attribute's own expression (DW_FORM_exprloc, a block before DWARF 4) or the entry of its
location list that covers the pc (``.debug_loc`` before DWARF 5, ``.debug_loclists`` in
DWARF 5, §7.7.3), read by ``coredump.dwarf.locationlists`` (by pyelftools' for the files
only pyelftools reads: big-endian ones).

Addresses are the image's own. A location list's offset pairs count from the base address:
the compile unit's DW_AT_low_pc until a base-address entry changes it (DWARF 5 §2.6.2).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Optional

__all__ = ("location_at", "location_list", "attribute_has_location", "MAX_LIST_ENTRIES")

# Entries of one location list looked at; gcc's longest are a few hundred.
MAX_LIST_ENTRIES = 10_000

# Attributes of class loclist or exprloc (DWARF 5 Table 7.5.4 and GNU call sites), as
# pyelftools' LocationParser lists them.
_LOCATION_ATTRS = frozenset((
    "DW_AT_location", "DW_AT_string_length", "DW_AT_const_value", "DW_AT_return_addr",
    "DW_AT_data_member_location", "DW_AT_frame_base", "DW_AT_segment", "DW_AT_static_link",
    "DW_AT_use_location", "DW_AT_vtable_elem_location", "DW_AT_call_value", "DW_AT_GNU_call_site_value",
    "DW_AT_GNU_call_site_target", "DW_AT_GNU_call_site_data_value", "DW_AT_call_target",
    "DW_AT_call_target_clobbered", "DW_AT_call_data_location", "DW_AT_call_data_value", "DW_AT_upper_bound",
    "DW_AT_count"))
_DATA = ("DW_FORM_data1", "DW_FORM_data2", "DW_FORM_data4", "DW_FORM_data8")
_CONSTANT_FORMS = _DATA + ("DW_FORM_sdata", "DW_FORM_udata")


def _has_expr(attr, version: int) -> bool:
    # DWARF 3 §7.5.4: a block was a location description before DW_FORM_exprloc (DWARF 4).
    return (version < 4 and attr.form.startswith("DW_FORM_block") and attr.name != "DW_AT_const_value"
            or attr.form == "DW_FORM_exprloc")


def _has_list(attr, version: int) -> bool:
    # DWARF 3 §7.5.4: a data4/data8 offset was a loclistptr before DW_FORM_sec_offset (DWARF 4).
    constant = ((version >= 3 and attr.name == "DW_AT_data_member_location"
                 or attr.name in ("DW_AT_upper_bound", "DW_AT_count")) and attr.form in _CONSTANT_FORMS)
    return ((version < 4 and attr.form in _DATA and attr.name != "DW_AT_const_value"
             or attr.form in ("DW_FORM_sec_offset", "DW_FORM_loclistx")) and not constant)


def attribute_has_location(attr, version: int) -> bool:
    """Whether `attr` holds a location expression or names a location list (pyelftools'
    LocationParser.attribute_has_location)."""
    return attr.name in _LOCATION_ATTRS and (_has_expr(attr, version) or _has_list(attr, version))


def location_list(die, attr) -> Optional[list]:
    """The entries of the location list `attr` of `die` names; None when it holds an
    expression instead (DWARF 5 §2.6)."""
    version = die.cu["version"]
    if not attribute_has_location(attr, version) or _has_expr(attr, version):
        return None
    lists = die.dwarfinfo.location_lists()
    if lists is None:
        raise ValueError(f"{attr.name} names a location list, the file has no location list section")
    return lists.get_location_list_at_offset(attr.value, die)


def location_at(die, pc: int, attribute: str = "DW_AT_location", entry: Optional[int] = None) -> Optional[bytes]:
    """The expression of `die`'s `attribute` at image address `pc`; None where the list has
    no entry for it (the value does not exist there) or the DIE has no such attribute.
    `entry`: the function's entry pc, where an empty range at it names the value there.
    Raises ValueError (DieError) for a malformed list."""
    attr = die.attributes.get(attribute)
    if attr is None:
        return None
    version = die.cu["version"]
    if not attribute_has_location(attr, version):
        return None
    if _has_expr(attr, version):
        return bytes(attr.value)
    return _entry_at(location_list(die, attr), pc, _cu_base(die), entry)


def _entry_at(entries, pc: int, base: int, entry_pc: Optional[int] = None) -> Optional[bytes]:
    default = None
    for n, entry in enumerate(entries):
        if n >= MAX_LIST_ENTRIES:
            raise ValueError(f"location list longer than {MAX_LIST_ENTRIES} entries")
        if hasattr(entry, "base_address"):  # a BaseAddressEntry (ours or pyelftools')
            base = entry.base_address
        elif hasattr(entry, "loc_expr"):  # a LocationEntry
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
