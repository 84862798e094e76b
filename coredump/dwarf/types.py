"""
DWARF types
===========

The type of a variable, read from its DW_AT_type chain (DWARF 5 §5): what a value needs to
be read and printed (size, DW_ATE encoding, the pointee, enumerators) and its name as gdb
spells it (``char *``, ``struct node **``, ``const char *``).
"""

from __future__ import annotations

from typing import Optional, Tuple

from coredump.dwarf.supplementary import ALT_REFERENCE_FORMS, string_value
from coredump.record import dataclass

__all__ = ("TypeInfo", "read_type", "MAX_TYPE_DEPTH", "DW_ATE_boolean", "DW_ATE_float", "DW_ATE_signed",
           "DW_ATE_signed_char", "DW_ATE_unsigned", "DW_ATE_unsigned_char", "DW_ATE_UTF")

# DW_AT_type links followed for one type (pointers to pointers, typedef chains, cv-qualifiers);
# a hostile file may loop them.
MAX_TYPE_DEPTH = 32

# DWARF 5 §7.8, Table 7.11 "Base type encoding values".
DW_ATE_boolean, DW_ATE_float, DW_ATE_signed, DW_ATE_signed_char = 0x02, 0x04, 0x05, 0x06
DW_ATE_unsigned, DW_ATE_unsigned_char, DW_ATE_UTF = 0x07, 0x08, 0x10

_QUALIFIERS = {"DW_TAG_const_type": "const", "DW_TAG_volatile_type": "volatile",
               "DW_TAG_restrict_type": "restrict", "DW_TAG_atomic_type": "_Atomic"}
_AGGREGATES = {"DW_TAG_structure_type": "struct", "DW_TAG_union_type": "union",
               "DW_TAG_class_type": "class", "DW_TAG_enumeration_type": "enum"}
_POINTERS = {"DW_TAG_pointer_type": "*", "DW_TAG_reference_type": "&", "DW_TAG_rvalue_reference_type": "&&"}


@dataclass(frozen=True)
class TypeInfo:
    """A type with typedefs and cv-qualifiers looked through (``name`` keeps them).

    ``kind``: ``base``, ``pointer``, ``reference``, ``enum``, ``struct`` (also unions and
    classes), ``array``, ``function``, ``void`` or ``unknown``. ``target`` is a pointer's or
    reference's pointee; ``enumerators`` (value, name) pairs of an enum."""

    kind: str
    name: str
    size: Optional[int] = None
    encoding: Optional[int] = None
    target: Optional[TypeInfo] = None
    enumerators: Tuple[Tuple[int, str], ...] = ()

    def to_data(self) -> tuple:
        """Plain tuples for the parse cache; ``from_data`` rebuilds the value."""
        return (self.kind, self.name, self.size, self.encoding,
                self.target.to_data() if self.target is not None else None, self.enumerators)

    @classmethod
    def from_data(cls, data: tuple) -> TypeInfo:
        kind, name, size, encoding, target, enumerators = data
        return cls(kind, name, size, encoding, cls.from_data(target) if target is not None else None,
                   tuple(tuple(e) for e in enumerators))

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


_VOID = TypeInfo("void", "void")
_UNKNOWN = TypeInfo("unknown", "<unknown type>")


def read_type(die, depth: int = 0) -> TypeInfo:
    """The TypeInfo of the DIE's DW_AT_type (void when it has none). Never raises: a type
    it cannot read is ``unknown``."""
    try:
        ref = die.attributes.get("DW_AT_type")
        if ref is None:
            return _VOID
        if depth >= MAX_TYPE_DEPTH or (ref.form in ALT_REFERENCE_FORMS and not die.dwarfinfo.supplementary_dwarfinfo):
            return _UNKNOWN
        return _type_of(die.get_DIE_from_attribute("DW_AT_type"), depth + 1)
    except Exception:  # noqa: BLE001 - a broken reference leaves the type unknown
        return _UNKNOWN


def _name(die) -> Optional[str]:
    attr = die.attributes.get("DW_AT_name")
    return string_value(attr) if attr is not None else None


def _size(die) -> Optional[int]:
    attr = die.attributes.get("DW_AT_byte_size")
    return attr.value if attr is not None and isinstance(attr.value, int) else None


def _type_of(die, depth: int) -> TypeInfo:
    tag = die.tag
    if tag == "DW_TAG_base_type":
        enc = die.attributes.get("DW_AT_encoding")
        return TypeInfo("base", _name(die) or "?", _size(die), enc.value if enc is not None else None)
    if tag == "DW_TAG_typedef":
        inner = read_type(die, depth)
        return TypeInfo(inner.kind, _name(die) or inner.name, inner.size, inner.encoding, inner.target,
                        inner.enumerators)
    if tag in _QUALIFIERS:
        inner = read_type(die, depth)
        name = f"{inner.name} {_QUALIFIERS[tag]}" if inner.kind == "pointer" else f"{_QUALIFIERS[tag]} {inner.name}"
        return TypeInfo(inner.kind, name, inner.size, inner.encoding, inner.target, inner.enumerators)
    if tag in _POINTERS:
        inner = read_type(die, depth)
        sep = "" if inner.name.endswith(("*", "&")) else " "
        kind = "pointer" if tag == "DW_TAG_pointer_type" else "reference"
        return TypeInfo(kind, f"{inner.name}{sep}{_POINTERS[tag]}", _size(die) or 8, None, inner)
    if tag in _AGGREGATES:
        name = _name(die)
        cxx = _is_cxx(die)
        shown = name if cxx and name else f"{_AGGREGATES[tag]} {name or '{...}'}"
        if tag == "DW_TAG_enumeration_type":
            return TypeInfo("enum", shown, _size(die), None, None, _enumerators(die))
        return TypeInfo("struct", shown, _size(die))
    if tag == "DW_TAG_array_type":
        inner = read_type(die, depth)
        return TypeInfo("array", f"{inner.name} []", None, None, inner)
    if tag == "DW_TAG_subroutine_type":
        return TypeInfo("function", f"{read_type(die, depth).name} (...)")
    if tag == "DW_TAG_unspecified_type":
        return TypeInfo("void", _name(die) or "void")
    return _UNKNOWN


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
