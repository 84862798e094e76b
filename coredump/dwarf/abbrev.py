"""
Abbreviations
=============

One compile unit's abbreviation table (``.debug_abbrev``, DWARF 5 §7.5.3): per code, the
DIE's tag, whether it has children, and its attribute specifications, with each form's
size rule precomputed (DWARF 5 §7.5.6, Table 7.6, plus the GNU extensions) so that
``coredump.dwarf.dies`` skips the attributes it does not read without looking at a form.

What pyelftools' ``elftools/dwarf/abbrevtable.py`` reads, at a fraction of its cost: the
table is decoded once per CU from the section's bytes, not through construct.
"""

from __future__ import annotations

from coredump.dwarf.expr import ExpressionError, read_sleb128, read_uleb128

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, Optional, Tuple

__all__ = ("Abbrev", "AbbrevError", "read_abbrev_table", "form_rule",
           "FIXED", "ULEB", "SLEB", "CSTRING", "BLOCK", "BLOCK1", "BLOCK2", "BLOCK4", "INDIRECT",
           "DW_FORM_implicit_const")

# How a form's value is laid out in .debug_info (the `kind` of a rule).
FIXED, ULEB, SLEB, CSTRING, BLOCK, BLOCK1, BLOCK2, BLOCK4, INDIRECT = range(9)

DW_FORM_implicit_const = 0x21  # DWARF 5 §7.5.6: the value is in the abbreviation, nothing in the DIE
DW_FORM_indirect = 0x16
_ADDR, _OFFSET, _REF_ADDR = -1, -2, -3  # sizes that depend on the unit: address_size, offset_size

# DWARF 5 Table 7.6 (and the GNU extensions gcc, dwz and Fission write): form -> (kind, size).
_RULES: Dict[int, Tuple[int, int]] = {
    0x01: (FIXED, _ADDR),           # DW_FORM_addr
    0x03: (BLOCK2, 0), 0x04: (BLOCK4, 0),
    0x05: (FIXED, 2), 0x06: (FIXED, 4), 0x07: (FIXED, 8),  # data2, data4, data8
    0x08: (CSTRING, 0),             # DW_FORM_string
    0x09: (BLOCK, 0), 0x0A: (BLOCK1, 0),
    0x0B: (FIXED, 1), 0x0C: (FIXED, 1),  # data1, flag
    0x0D: (SLEB, 0),                # sdata
    0x0E: (FIXED, _OFFSET),         # strp
    0x0F: (ULEB, 0),                # udata
    0x10: (FIXED, _REF_ADDR),       # ref_addr: address_size in DWARF 2, offset_size from 3 (§7.5.4)
    0x11: (FIXED, 1), 0x12: (FIXED, 2), 0x13: (FIXED, 4), 0x14: (FIXED, 8),  # ref1..ref8
    0x15: (ULEB, 0),                # ref_udata
    DW_FORM_indirect: (INDIRECT, 0),
    0x17: (FIXED, _OFFSET),         # sec_offset
    0x18: (BLOCK, 0),               # exprloc
    0x19: (FIXED, 0),               # flag_present
    0x1A: (ULEB, 0), 0x1B: (ULEB, 0),  # strx, addrx
    0x1C: (FIXED, 4),               # ref_sup4
    0x1D: (FIXED, _OFFSET),         # strp_sup
    0x1E: (FIXED, 16),              # data16
    0x1F: (FIXED, _OFFSET),         # line_strp
    0x20: (FIXED, 8),               # ref_sig8
    DW_FORM_implicit_const: (FIXED, 0),
    0x22: (ULEB, 0), 0x23: (ULEB, 0),  # loclistx, rnglistx
    0x24: (FIXED, 8),               # ref_sup8
    0x25: (FIXED, 1), 0x26: (FIXED, 2), 0x27: (FIXED, 3), 0x28: (FIXED, 4),  # strx1..strx4
    0x29: (FIXED, 1), 0x2A: (FIXED, 2), 0x2B: (FIXED, 3), 0x2C: (FIXED, 4),  # addrx1..addrx4
    0x1F01: (ULEB, 0), 0x1F02: (ULEB, 0),  # DW_FORM_GNU_addr_index, DW_FORM_GNU_str_index (Fission)
    0x1F20: (FIXED, _OFFSET), 0x1F21: (FIXED, _OFFSET),  # DW_FORM_GNU_ref_alt, DW_FORM_GNU_strp_alt (dwz)
}

# Abbreviation codes one table may define: a CU of gcc -O2 C++ uses a few hundred; the
# bound keeps a hostile table from costing more than its bytes.
MAX_ABBREVS = 1 << 16
# Attribute specifications of one abbreviation (DWARF defines ~130 attributes).
MAX_ATTRS = 512


class AbbrevError(ValueError):
    """A malformed abbreviation table or a DIE that does not match it."""


def form_rule(form: int, address_size: int, offset_size: int, version: int) -> Tuple[int, int]:
    """(kind, size) of `form` in a unit of these sizes; AbbrevError for a form no spec defines."""
    rule = _RULES.get(form)
    if rule is None:
        raise AbbrevError(f"unknown attribute form {form:#x}")
    kind, size = rule
    if size == _ADDR:
        size = address_size
    elif size == _OFFSET:
        size = offset_size
    elif size == _REF_ADDR:
        size = address_size if version <= 2 else offset_size
    return kind, size


class Abbrev:
    """One abbreviation: `attrs` is ((name, form, kind, size, implicit_const), ...) in DIE order;
    `fixed` is the byte size of all attributes when every one has a fixed size, else None."""

    __slots__ = ("tag", "has_children", "attrs", "fixed", "names")

    def __init__(self, tag: int, has_children: bool, attrs: tuple):
        self.tag = tag
        self.has_children = has_children
        self.attrs = attrs
        self.names = frozenset(a[0] for a in attrs)
        self.fixed: Optional[int] = sum(a[3] for a in attrs) if all(a[2] == FIXED for a in attrs) else None


def read_abbrev_table(data, offset: int, address_size: int, offset_size: int,
                      version: int) -> Dict[int, Abbrev]:
    """The table at `offset` of .debug_abbrev's bytes `data` (DWARF 5 §7.5.3): code -> Abbrev."""
    table: Dict[int, Abbrev] = {}
    pos = offset
    end = len(data)
    try:
        while True:
            code, pos = read_uleb128(data, pos)
            if code == 0:
                return table
            if len(table) >= MAX_ABBREVS:
                raise AbbrevError(f"abbreviation table at {offset:#x} has more than {MAX_ABBREVS} codes")
            tag, pos = read_uleb128(data, pos)
            if pos >= end:
                raise AbbrevError(f"abbreviation table at {offset:#x} runs past the section")
            has_children = data[pos] != 0  # DW_CHILDREN_yes = 1 (Table 7.4)
            pos += 1
            attrs = []
            while True:
                name, pos = read_uleb128(data, pos)
                form, pos = read_uleb128(data, pos)
                if name == 0 and form == 0:
                    break
                const = None
                if form == DW_FORM_implicit_const:
                    const, pos = read_sleb128(data, pos)
                if len(attrs) >= MAX_ATTRS:
                    raise AbbrevError(f"abbreviation {code} has more than {MAX_ATTRS} attributes")
                kind, size = form_rule(form, address_size, offset_size, version)
                attrs.append((name, form, kind, size, const))
            # A code defined twice: the last definition stands, as pyelftools' AbbrevTable reads it.
            table[code] = Abbrev(tag, has_children, tuple(attrs))
    except (IndexError, ExpressionError):
        raise AbbrevError(f"abbreviation table at {offset:#x} runs past the section") from None
