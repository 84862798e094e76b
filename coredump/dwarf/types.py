"""
DWARF types
===========

The type of a variable, read from its DW_AT_type chain (DWARF 5 §5): what a value needs to
be read and printed (size, DW_ATE encoding, the pointee, enumerators) and its name as gdb
spells it (``char *``, ``struct node **``, ``const char *``), and for what gdb's ``bt full``
prints in full, a struct's members (DW_TAG_member, DW_TAG_inheritance, DWARF 5 §5.7) and an
array's bounds (DW_TAG_subrange_type, §5.5, §5.13).

The DWARF is hostile input: a type reads at most ``MAX_TYPE_NODES`` types in all, members
past that and a pointer's pointee's members are not read (gdb prints a pointer as an address).
"""

from __future__ import annotations

from coredump.dwarf.supplementary import ALT_REFERENCE_FORMS, string_value
from coredump.memo import by_value
from coredump.record import dataclass, replace

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Optional, Tuple

__all__ = ("TypeInfo", "read_type", "read_members", "MAX_TYPE_DEPTH", "MAX_TYPE_NODES", "MAX_ARRAY_COUNT",
           "DW_ATE_boolean", "DW_ATE_float", "DW_ATE_signed",
           "DW_ATE_signed_char", "DW_ATE_unsigned", "DW_ATE_unsigned_char", "DW_ATE_UTF")

# DW_AT_type links followed for one type (pointers to pointers, typedef chains, cv-qualifiers);
# a hostile file may loop them.
MAX_TYPE_DEPTH = 32
# Types read for one variable's type, members and elements included (a C++ class may nest many).
MAX_TYPE_NODES = 512
# Elements of one array dimension (a hostile DW_AT_count may say 2**63).
MAX_ARRAY_COUNT = 1 << 24

# DWARF 5 §7.8, Table 7.11 "Base type encoding values".
DW_ATE_boolean, DW_ATE_float, DW_ATE_signed, DW_ATE_signed_char = 0x02, 0x04, 0x05, 0x06
DW_ATE_unsigned, DW_ATE_unsigned_char, DW_ATE_UTF = 0x07, 0x08, 0x10

_QUALIFIERS = {"DW_TAG_const_type": "const", "DW_TAG_volatile_type": "volatile",
               "DW_TAG_restrict_type": "restrict", "DW_TAG_atomic_type": "_Atomic"}
_AGGREGATES = {"DW_TAG_structure_type": "struct", "DW_TAG_union_type": "union",
               "DW_TAG_class_type": "class", "DW_TAG_enumeration_type": "enum"}
_REF_FORMS = ("DW_FORM_ref1", "DW_FORM_ref2", "DW_FORM_ref4", "DW_FORM_ref8", "DW_FORM_ref_udata",
              "DW_FORM_ref_addr", "DW_FORM_exprloc", "DW_FORM_block1", "DW_FORM_block")
_POINTERS = {"DW_TAG_pointer_type": "*", "DW_TAG_reference_type": "&", "DW_TAG_rvalue_reference_type": "&&"}


@dataclass(frozen=True)
class TypeInfo:
    """A type with typedefs and cv-qualifiers looked through (``name`` keeps them).

    ``kind``: ``base``, ``pointer``, ``reference``, ``enum``, ``struct`` (also unions and
    classes), ``array``, ``function``, ``void`` or ``unknown``. ``target`` is a pointer's or
    reference's pointee, an array's element; ``enumerators`` (value, name) pairs of an enum;
    ``members`` a struct's (name, byte offset, type, DW_AT_data_bit_offset or None, DW_AT_bit_size
    or None, whether it is a base class), None where they were not read; ``count`` an array's
    elements, None where its bounds are not constants."""

    kind: str
    name: str
    size: Optional[int] = None
    encoding: Optional[int] = None
    target: Optional[TypeInfo] = None
    enumerators: Tuple[Tuple[int, str], ...] = ()
    members: Optional[Tuple[tuple, ...]] = None
    count: Optional[int] = None

    def to_data(self) -> tuple:
        """Plain tuples for the parse cache; ``from_data`` rebuilds the value."""
        members = None if self.members is None else tuple(
            (name, offset, t.to_data(), bit_offset, bit_size, base)
            for name, offset, t, bit_offset, bit_size, base in self.members)
        return (self.kind, self.name, self.size, self.encoding,
                self.target.to_data() if self.target is not None else None, self.enumerators, members, self.count)

    @classmethod
    def from_data(cls, data: tuple) -> TypeInfo:
        return _rebuilt(data)

    @property
    def is_char(self) -> bool:
        """A one-byte character type (DW_ATE_signed_char / unsigned_char): gdb prints the
        character after the number, and a pointer to it as a string."""
        return self.kind == "base" and self.size == 1 and self.encoding in (DW_ATE_signed_char, DW_ATE_unsigned_char)

    @property
    def is_scalar(self) -> bool:
        """What gdb's ``bt`` prints by value (``set print frame-arguments scalars``)."""
        if self.kind == "reference":
            return self.target is not None and self.target.is_scalar
        return self.kind in ("base", "pointer", "enum")


# Every value read rebuilds its plan's type (one parse-cache entry per pc; 17,000 values of
# the same few types on a 200-thread core): once per value of the data. The key is the whole
# value, so equal data gives an equal (frozen) TypeInfo.
def _rebuild(data: tuple) -> TypeInfo:
    kind, name, size, encoding, target, enumerators, members, count = data
    if members is not None:
        members = tuple((m[0], m[1], TypeInfo.from_data(m[2]), m[3], m[4], m[5]) for m in members)
    return TypeInfo(kind, name, size, encoding, TypeInfo.from_data(target) if target is not None else None,
                    tuple(tuple(e) for e in enumerators), members, count)


_rebuilt = by_value(_rebuild)  # each a type of at most MAX_TYPE_NODES nodes


_VOID = TypeInfo("void", "void")
_UNKNOWN = TypeInfo("unknown", "<unknown type>")


class _Budget:
    """The types one read_type may still read; ``members``: whether aggregates' members are."""

    def __init__(self, members: bool):
        self.left = MAX_TYPE_NODES
        self.members = members


def read_type(die, depth: int = 0, budget: Optional[_Budget] = None, members: bool = True) -> TypeInfo:
    """The TypeInfo of the DIE's DW_AT_type (void when it has none), with members and bounds
    where `members`. Never raises: a type it cannot read is ``unknown``."""
    budget = budget if budget is not None else _Budget(members)
    try:
        ref = die.attributes.get("DW_AT_type")
        if ref is None:
            return _VOID
        if depth >= MAX_TYPE_DEPTH or (ref.form in ALT_REFERENCE_FORMS and not die.dwarfinfo.supplementary_dwarfinfo):
            return _UNKNOWN
        budget.left -= 1
        return _type_of(die.get_DIE_from_attribute("DW_AT_type"), depth + 1, budget)
    except Exception:  # noqa: BLE001 - a broken reference leaves the type unknown
        return _UNKNOWN


def _name(die) -> Optional[str]:
    attr = die.attributes.get("DW_AT_name")
    return string_value(attr) if attr is not None else None


def _size(die) -> Optional[int]:
    attr = die.attributes.get("DW_AT_byte_size")
    return attr.value if attr is not None and isinstance(attr.value, int) else None


def _type_of(die, depth: int, budget: _Budget) -> TypeInfo:
    tag = die.tag
    if tag == "DW_TAG_base_type":
        enc = die.attributes.get("DW_AT_encoding")
        return TypeInfo("base", _name(die) or "?", _size(die), enc.value if enc is not None else None)
    if tag == "DW_TAG_typedef":
        inner = read_type(die, depth, budget)
        return replace(inner, name=_name(die) or inner.name)
    if tag in _QUALIFIERS:
        inner = read_type(die, depth, budget)
        name = f"{inner.name} {_QUALIFIERS[tag]}" if inner.kind == "pointer" else f"{_QUALIFIERS[tag]} {inner.name}"
        return replace(inner, name=name)
    if tag in _POINTERS:
        kind = "pointer" if tag == "DW_TAG_pointer_type" else "reference"
        # gdb prints a pointer as an address: its pointee's members are never needed.
        inner = read_type(die, depth, _Budget(False) if kind == "pointer" else budget)
        sep = "" if inner.name.endswith(("*", "&")) else " "
        return TypeInfo(kind, f"{inner.name}{sep}{_POINTERS[tag]}", _size(die) or 8, None, inner)
    if tag in _AGGREGATES:
        name = _name(die)
        cxx = _is_cxx(die)
        shown = name if cxx and name else f"{_AGGREGATES[tag]} {name or '{...}'}"
        if tag == "DW_TAG_enumeration_type":
            return TypeInfo("enum", shown, _size(die), None, None, _enumerators(die))
        members = read_members(die, depth, budget) if budget.members else None
        return TypeInfo("struct", shown, _size(die), members=members)
    if tag == "DW_TAG_array_type":
        return _array(die, depth, budget)
    if tag == "DW_TAG_subroutine_type":
        return TypeInfo("function", f"{read_type(die, depth, budget).name} (...)")
    if tag == "DW_TAG_unspecified_type":
        return TypeInfo("void", _name(die) or "void")
    return _UNKNOWN


def read_members(die, depth: int, budget: _Budget) -> Optional[Tuple[tuple, ...]]:
    """A struct's, union's or class's base classes and data members in order (DWARF 5
    §5.7.3, §5.7.6); None where the budget ran out (the struct is then not printed in full).
    Static members (DW_TAG_variable, DW_AT_external members) have no place in the object."""
    if die.attributes.get("DW_AT_declaration") is not None:
        return None  # an incomplete type: gdb's <incomplete type>
    out = []
    for child in die.iter_children():
        if child.tag not in ("DW_TAG_member", "DW_TAG_inheritance") or "DW_AT_external" in child.attributes:
            continue
        if budget.left <= 0:
            return None
        loc = child.attributes.get("DW_AT_data_member_location")
        offset = loc.value if loc is not None and isinstance(loc.value, int) else 0
        if loc is not None and not isinstance(loc.value, int):
            return None  # a location expression (a virtual base): not a fixed offset
        bit_offset, bit_size = _bit_field(child, offset)
        base = child.tag == "DW_TAG_inheritance"
        mtype = read_type(child, depth, budget)
        out.append((("<" + mtype.name + ">") if base else (_name(child) or ""), offset, mtype, bit_offset,
                    bit_size, base))
    return tuple(out)


def _bit_field(die, offset: int) -> Tuple[Optional[int], Optional[int]]:
    """(bit offset from the struct's start, bits) of a bit field (DWARF 5 §5.7.6
    DW_AT_data_bit_offset; DWARF 2-3 DW_AT_bit_offset counts from the storage unit's most
    significant bit, as a little-endian gcc emitted it); (None, None) for other members."""
    size = die.attributes.get("DW_AT_bit_size")
    if size is None or not isinstance(size.value, int):
        return None, None
    data_bit = die.attributes.get("DW_AT_data_bit_offset")
    if data_bit is not None and isinstance(data_bit.value, int):
        return data_bit.value, size.value
    old = die.attributes.get("DW_AT_bit_offset")
    unit = _size(die) or 4
    if old is not None and isinstance(old.value, int):
        return offset * 8 + unit * 8 - old.value - size.value, size.value
    return offset * 8, size.value


def _array(die, depth: int, budget: _Budget) -> TypeInfo:
    """An array type, one dimension per DW_TAG_subrange_type, outermost first (DWARF 5 §5.5):
    ``int [2][3]`` is an array of 2 arrays of 3 ints. A bound that is not a constant (a VLA's
    expression or variable) leaves the count None."""
    inner = read_type(die, depth, budget)
    counts = [_count(c) for c in die.iter_children() if c.tag in ("DW_TAG_subrange_type", "DW_TAG_enumeration_type")]
    t, suffix = inner, ""
    for count in reversed(counts or [None]):
        suffix = f"[{count if count is not None else ''}]" + suffix
        size = t.size * count if t.size is not None and count is not None else None
        t = TypeInfo("array", f"{inner.name} {suffix}", size, None, t, count=count)
    return t


def _count(sub) -> Optional[int]:
    """DW_AT_count, or DW_AT_upper_bound - DW_AT_lower_bound + 1 (C's lower bound is 0)."""
    attrs = sub.attributes
    count = attrs.get("DW_AT_count")
    if count is not None:
        value = count.value if isinstance(count.value, int) and count.form not in _REF_FORMS else None
    else:
        upper, lower = attrs.get("DW_AT_upper_bound"), attrs.get("DW_AT_lower_bound")
        if upper is None or not isinstance(upper.value, int) or upper.form in _REF_FORMS:
            return None
        low = lower.value if lower is not None and isinstance(lower.value, int) else 0
        value = upper.value - low + 1
        if upper.form in ("DW_FORM_data1", "DW_FORM_data2", "DW_FORM_data4") and upper.value == (
                1 << 8 * {"DW_FORM_data1": 1, "DW_FORM_data2": 2, "DW_FORM_data4": 4}[upper.form]) - 1:
            value = 0  # an upper bound of -1 (gcc's int x[0]) as an unsigned datum
    return value if value is not None and 0 <= value <= MAX_ARRAY_COUNT else None


def _enumerators(die) -> Tuple[Tuple[int, str], ...]:
    out = []
    for child in die.iter_children():
        if child.tag == "DW_TAG_enumerator" and len(out) < 4096:
            value = child.attributes.get("DW_AT_const_value")
            if value is not None:
                out.append((value.value, _name(child) or "?"))
    return tuple(out)


def _is_cxx(die) -> bool:
    lang = die.cu.get_top_DIE().attributes.get("DW_AT_language")
    # DW_LANG_C_plus_plus, _03, _11, _14 (DWARF 5 Table 7.17)
    return lang is not None and lang.value in (0x4, 0x19, 0x1A, 0x21)
