"""
Structure types
===============

Named types among a unit's top-level DIEs (DWARF 5 §5.1-§5.7): for a structure type the
byte offset of each data member (``DW_AT_data_member_location``, §5.7.6), and for any of
them the constant attributes asked for (such as the Go linker's ``DW_AT_go_runtime_type``,
the offset of the type's runtime descriptor). It is how a reader of a program's memory
learns a layout from the program's own DWARF instead of a copy that goes stale with each
compiler release (gdb's and Delve's way of reading the Go runtime's ``g`` and ``_panic``).

>>> types = find_named_types(index, {"runtime._panic"}, units=("runtime",))
>>> types["runtime._panic"].members["arg"]
8

Units named in `units` are searched first (the Go linker writes every type into the
``runtime`` unit), then the others, until every name is found or ``MAX_DIES`` DIEs were
read. Bad DWARF ends the search with what was found so far.
"""

from __future__ import annotations

from coredump.dwarf.dies import DieError, UnitReader, unit_reader
from coredump.dwarf.expr import ExpressionError
from coredump.record import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, FrozenSet, Iterable, Optional, Sequence

__all__ = ("NamedType", "find_named_types", "MAX_DIES")

DW_AT_sibling, DW_AT_name, DW_AT_data_member_location = 0x01, 0x03, 0x38
DW_TAG_member = 0x0D
DW_FORM_string, DW_FORM_strp = 0x08, 0x0E
# The top-level DIEs read in one search, all units together: a Go program's runtime unit
# holds ~20,000; a C++ program's types are spread over every unit.
MAX_DIES = 200_000
_MAX_NAME = 512


@dataclass(frozen=True)
class NamedType:
    """One type DIE: its tag, the constant attributes asked for, and (for a structure or
    union) each data member's byte offset by name."""

    tag: int
    attributes: Dict[int, int] = field(default_factory=dict)
    members: Dict[str, int] = field(default_factory=dict)


def find_named_types(index, names: Iterable[str], units: Sequence[str] = (),
                     attributes: FrozenSet[int] = frozenset()) -> Dict[str, NamedType]:
    """The first DIE named each of `names` that is a child of a unit DIE, by name; a name not
    found is absent. `index` is a ``coredump.dwarf.index.DwarfIndex``."""
    wanted, found = set(names), {}
    try:
        dwarfinfo = index.dwarfinfo
        cus = list(dwarfinfo.iter_CUs())
        cus.sort(key=lambda cu: _unit_name(cu) not in units)
        left, abbrevs = MAX_DIES, {}
        for cu in cus:
            if not wanted - found.keys() or left <= 0:
                break
            reader = unit_reader(dwarfinfo, cu, abbrevs)
            left = _search(dwarfinfo, reader, cu.cu_die_offset - cu.cu_offset, wanted, found,
                           attributes, left)
    except (DieError, ExpressionError, IndexError, ValueError, KeyError, AttributeError):
        pass  # DWARF 5 §7.5: what was read before the bad DIE stands
    return found


def _unit_name(cu) -> Optional[str]:
    attr = cu.get_top_DIE().attributes.get("DW_AT_name")
    value = attr.value if attr is not None else None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else None


def _search(dwarfinfo, reader: UnitReader, cu_die: int, wanted: set, found: dict,
            attributes: FrozenSet[int], left: int) -> int:
    """Read the unit DIE's children (DWARF 5 §2.3: siblings until a null entry), filling
    `found`; returns what is left of the DIE allowance."""
    want = frozenset((DW_AT_sibling, DW_AT_name)) | attributes
    ab, _, pos = reader.read(cu_die, want)
    if ab is None or not ab.has_children:
        return left
    while left > 0:
        ab, values, after = reader.read(pos, want)
        left -= 1
        if ab is None:
            break
        name = _name(dwarfinfo, reader, values.get(DW_AT_name))
        # A typedef may come before its structure (both named alike, as the Go linker writes them).
        if name in wanted and (name not in found or ab.has_children and not found[name].members):
            attrs = {a: values[a][1] for a in attributes if a in values}
            members = _members(dwarfinfo, reader, after) if ab.has_children else {}
            found[name] = NamedType(ab.tag, attrs, members)
            if not wanted - found.keys():
                break
        pos = reader.next_sibling(ab, values, after)
    return left


def _members(dwarfinfo, reader: UnitReader, pos: int) -> Dict[str, int]:
    """Data members with a constant DW_AT_data_member_location (DWARF 5 §5.7.6: "the byte
    offset from the beginning of the containing entity"); a location expression (DWARF 2's
    DW_OP_plus_uconst blocks) leaves its member out."""
    members: Dict[str, int] = {}
    want = frozenset((DW_AT_sibling, DW_AT_name, DW_AT_data_member_location))
    while True:
        ab, values, after = reader.read(pos, want)
        if ab is None:
            return members
        location = values.get(DW_AT_data_member_location)
        name = _name(dwarfinfo, reader, values.get(DW_AT_name))
        if ab.tag == DW_TAG_member and name is not None and location is not None and location[0] in _CONSTANTS:
            members.setdefault(name, location[1])
        pos = reader.next_sibling(ab, values, after)


# DWARF 5 §7.5.5 constant class: data1/2/4/8, sdata, udata, implicit_const.
_CONSTANTS = frozenset((0x0B, 0x05, 0x06, 0x07, 0x0D, 0x0F, 0x21))


def _name(dwarfinfo, reader: UnitReader, value) -> Optional[str]:
    """A DW_AT_name in the DIE (DW_FORM_string: `value` is where it starts) or in
    ``.debug_str`` (DW_FORM_strp)."""
    if value is None:
        return None
    form, at = value
    if form == DW_FORM_string:
        data = reader.data
    elif form == DW_FORM_strp and dwarfinfo.debug_str_sec is not None:
        data = dwarfinfo.debug_str_sec.stream.getbuffer()
    else:
        return None
    end = bytes(data[at:at + _MAX_NAME]).find(b"\0")
    return bytes(data[at:at + end]).decode("utf-8", "replace") if end >= 0 else None
