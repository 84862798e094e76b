"""
Debugging information entry
===========================

One DIE of a compile unit (DWARF 5 §2.1, §7.5.2), with the part of pyelftools'
``elftools/dwarf/die.py`` API the analysis uses: ``offset``, ``size``, ``tag``,
``has_children``, ``attributes``, ``cu``, ``dwarfinfo``, ``iter_children()``,
``get_parent()``, ``get_DIE_from_attribute()``. Names and values are pyelftools' own
(``coredump.dwarf.constants``): strings as bytes, DW_FORM_strx / addrx / loclistx /
rnglistx translated, flags as bool, blocks and exprloc as lists of ints, CU-relative
references raw.

A DIE is built from its abbreviation and its size alone (``coredump.dwarf.dies.UnitReader``
steps over its attributes by their forms' sizes); its attributes are decoded when
``attributes`` is first read. A walk of children steps over a subtree by DW_AT_sibling or by
the reader (no DIE objects for what it skips); a parent is found by ``dies.ancestors``.
Bad input raises ``DieError``; every read is bounded by the unit's bytes.
"""

from __future__ import annotations

from collections import namedtuple

from coredump.dwarf import abbrev as A
from coredump.dwarf.constants import DW_AT_raw2name, DW_FORM_raw2name, DW_TAG_raw2name
from coredump.dwarf.dies import DieError
from coredump.dwarf.expr import ExpressionError, read_sleb128, read_uleb128

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Any, Dict, Iterator, List, Optional

__all__ = ("AttributeValue", "DIE")

DW_AT_sibling = 0x01
DW_FORM_indirect = 0x16
_SIBLING = frozenset((DW_AT_sibling,))
# CU-relative reference forms (DWARF 5 §7.5.5) by pyelftools' names.
_CU_REFS = ("DW_FORM_ref1", "DW_FORM_ref2", "DW_FORM_ref4", "DW_FORM_ref8", "DW_FORM_ref_udata")
_SUP_REFS = ("DW_FORM_ref_sup4", "DW_FORM_ref_sup8", "DW_FORM_GNU_ref_alt")
# Forms whose value is translated from the raw one (pyelftools' DIE._translate_attr_value).
_STRP, _LINE_STRP, _STRP_SUP, _GNU_STRP_ALT, _FLAG, _FLAG_PRESENT = 0x0E, 0x1F, 0x1D, 0x1F21, 0x0C, 0x19
_ADDRX = frozenset((0x1B, 0x29, 0x2A, 0x2B, 0x2C))
_STRX = frozenset((0x1A, 0x25, 0x26, 0x27, 0x28))
_LOCLISTX, _RNGLISTX = 0x22, 0x23
_DATA16 = 0x1E
_TRANSLATED = frozenset((_STRP, _LINE_STRP, _STRP_SUP, _GNU_STRP_ALT, _FLAG, _FLAG_PRESENT, _LOCLISTX,
                         _RNGLISTX)) | _ADDRX | _STRX


class AttributeValue(namedtuple("AttributeValue", "name form value raw_value offset indirection_length")):
    """One attribute as pyelftools gives it: `offset` is its value's section offset."""
    __slots__ = ()
    name: Any
    form: Any
    value: Any
    raw_value: Any
    offset: int
    indirection_length: int


class DIE:
    """The DIE at section offset `offset` of compile unit `cu` (a null entry: tag None)."""

    __slots__ = ("cu", "dwarfinfo", "offset", "size", "tag", "has_children", "_abbrev", "_sibling",
                 "_attributes", "_parent")

    def __init__(self, cu, offset: int):
        self.cu = cu
        self.dwarfinfo = cu.dwarfinfo
        self.offset = offset
        self._parent: Optional[DIE] = None
        self._attributes: Optional[Dict[Any, AttributeValue]] = None
        pos = offset - cu.cu_offset
        try:
            ab, values, end = cu.reader.read(pos, _SIBLING)
        except (IndexError, ExpressionError):  # a LEB128 or a DIE past the unit's end
            raise DieError(f"DIE at {offset:#x} runs past the end of its unit") from None
        self.size = end - pos
        self._abbrev = ab
        if ab is None:  # DWARF 5 §7.5.2: abbreviation code 0, a null entry
            self.tag, self.has_children, self._sibling, self._attributes = None, None, None, {}
        else:
            self.tag = DW_TAG_raw2name.get(ab.tag, ab.tag)
            self.has_children = ab.has_children
            self._sibling = values.get(DW_AT_sibling)

    def is_null(self) -> bool:
        return self.tag is None

    @property
    def attributes(self) -> Dict[Any, AttributeValue]:
        """Name -> AttributeValue, in the DIE's order, decoded on first use."""
        attrs = self._attributes
        if attrs is None:
            attrs = {}
            try:
                _decode(self, attrs)
            except (IndexError, ExpressionError):
                raise DieError(f"an attribute of the DIE at {self.offset:#x} runs past its unit") from None
            self._attributes = attrs
        return attrs

    def get_DIE_from_attribute(self, name) -> DIE:
        """The DIE a reference attribute names (DWARF 5 §7.5.5)."""
        attr = self.attributes[name]
        if attr.form in _CU_REFS:
            return self.cu.get_DIE_from_refaddr(self.cu.cu_offset + attr.raw_value)
        if attr.form == "DW_FORM_ref_addr":
            return self.dwarfinfo.get_DIE_from_refaddr(attr.raw_value)
        if attr.form in _SUP_REFS and self.dwarfinfo.supplementary_dwarfinfo is not None:
            return self.dwarfinfo.supplementary_dwarfinfo.get_DIE_from_refaddr(attr.raw_value)
        raise DieError(f"{name} of the DIE at {self.offset:#x} is no reference this reader follows ({attr.form})")

    def iter_children(self) -> Iterator[DIE]:
        """The DIE's children, without the null entry that ends them (DWARF 5 §2.3)."""
        if not self.has_children:
            return
        cu = self.cu
        pos = self.offset + self.size
        while True:
            child = cu._get_cached_DIE(pos)
            child._parent = self
            if child.tag is None:
                return
            yield child
            pos = child.next_offset()

    def next_offset(self) -> int:
        """The section offset after this DIE's subtree: by DW_AT_sibling, else by the
        reader's skip of its children (DWARF 5 §2.3)."""
        end = self.offset + self.size
        if not self.has_children:
            return end
        cu = self.cu
        values = {DW_AT_sibling: self._sibling} if self._sibling is not None else {}
        try:
            return cu.cu_offset + cu.reader.next_sibling(self._abbrev, values, end - cu.cu_offset)
        except (IndexError, ExpressionError):
            raise DieError(f"the children of the DIE at {self.offset:#x} run past the end of its unit") from None

    def get_parent(self) -> Optional[DIE]:
        """The DIE whose children hold this one; None for the unit's DIE."""
        if self._parent is None and self.offset != self.cu.cu_die_offset:
            self.cu.link_parents(self)
        return self._parent

    def set_parent(self, die: DIE) -> None:
        self._parent = die

    def __repr__(self) -> str:
        return f"DIE {self.tag} at {self.offset:#x}, size={self.size}, has_children={self.has_children}"


def _decode(die: DIE, attrs: Dict[Any, AttributeValue]) -> None:
    """Fill `attrs` with the DIE's attributes: raw values first, then the translated ones
    (the unit DIE's own DW_AT_*_base attributes are read by those translations)."""
    cu = die.cu
    reader = cu.reader
    data, base = reader.data, cu.cu_offset
    _, pos = read_uleb128(data, die.offset - base)  # the abbreviation code
    pending: List[Any] = []
    for name, form, kind, size, const in die._abbrev.attrs:
        start, indirection = pos, 0
        while kind == A.INDIRECT:  # DWARF 5 §7.5.3: the form is in the DIE, as a ULEB128
            form, pos = read_uleb128(data, pos)
            indirection += 1
            if form == DW_FORM_indirect:
                continue
            kind, size = reader._indirect_rule(form)
        if form == A.DW_FORM_implicit_const:
            raw = const
        else:
            raw, pos = _raw(reader, pos, kind, size, form)
        if pos > len(data):
            raise DieError(f"DIE at {die.offset:#x} runs past the end of its unit")
        aname = DW_AT_raw2name.get(name, name)
        attrs[aname] = AttributeValue(aname, DW_FORM_raw2name.get(form, form), raw, raw, base + start, indirection)
        if form in _TRANSLATED:
            pending.append((aname, form))
    if pending:
        die._attributes = attrs  # the unit DIE's bases, for its own translated attributes
        try:
            for aname, form in pending:
                attr = attrs[aname]
                attrs[aname] = attr._replace(value=_translate(cu, form, attr.raw_value))
        finally:
            die._attributes = None


def _raw(reader, pos: int, kind: int, size: int, form: int):
    """(raw value as pyelftools' construct parses it, position after it)."""
    data = reader.data
    if kind == A.FIXED:
        end = pos + size
        if form == _DATA16:
            return list(data[pos:end]), end
        if form == _FLAG_PRESENT:
            return b"", end  # nothing in the DIE (pyelftools' StaticField gives b"")
        return int.from_bytes(data[pos:end], reader.order), end
    if kind == A.ULEB:
        return read_uleb128(data, pos)
    if kind == A.SLEB:
        return read_sleb128(data, pos)
    if kind == A.CSTRING:
        end = data.find(b"\0", pos)
        if end < 0:
            raise DieError(f"string at {reader.cu_offset + pos:#x} runs past the end of its unit")
        return data[pos:end], end + 1
    if kind == A.BLOCK:
        n, pos = read_uleb128(data, pos)
    else:
        width = 1 if kind == A.BLOCK1 else 2 if kind == A.BLOCK2 else 4
        n, pos = int.from_bytes(data[pos:pos + width], reader.order), pos + width
    if pos + n > len(data):
        raise DieError(f"block at {reader.cu_offset + pos:#x} runs past the end of its unit")
    return list(data[pos:pos + n]), pos + n


def _translate(cu, form: int, raw):
    """The value of a form pyelftools translates (DWARF 5 §7.5.5, §7.26-7.29)."""
    dwarfinfo = cu.dwarfinfo
    if form == _STRP:
        return dwarfinfo.get_string_from_table(raw)
    if form == _LINE_STRP:
        return dwarfinfo.get_string_from_linetable(raw)
    if form in (_STRP_SUP, _GNU_STRP_ALT):
        sup = dwarfinfo.supplementary_dwarfinfo
        return sup.get_string_from_table(raw) if sup is not None else raw
    if form == _FLAG:
        return raw != 0
    if form == _FLAG_PRESENT:
        return True
    if form in _ADDRX:
        return dwarfinfo.get_addr(cu, raw)
    if form in _STRX:
        return dwarfinfo.get_string_from_table(dwarfinfo.offset_entry(
            dwarfinfo.debug_str_offsets_sec, cu, cu.base("DW_AT_str_offsets_base") + raw * cu.offset_size))
    if form == _LOCLISTX:
        return cu.resolve_offset_table(dwarfinfo.debug_loclists_sec, raw, "DW_AT_loclists_base")
    return cu.resolve_offset_table(dwarfinfo.debug_rnglists_sec, raw, "DW_AT_rnglists_base")
