"""
Debugging information entries
=============================

A reader of one compile unit's DIEs (DWARF 5 §2.1, §7.5.2) driven by its abbreviation table
(``coredump.dwarf.abbrev``), for the walk that finds a unit's functions: it decodes only the
attributes it needs (DW_AT_sibling, DW_AT_low_pc, DW_AT_high_pc, DW_AT_ranges), steps over the
others by their forms' sizes, and jumps over a subtree by DW_AT_sibling where the producer
wrote one. pyelftools builds a ``DIE`` object with every attribute of every DIE it passes
(~28 us each); this costs a few microseconds per DIE. ``coredump.dwarf.die`` builds the few
DIEs a frame needs (its function, inline chain and names) on this reader.

Bad input raises ``DieError`` (a ValueError): an abbreviation code the table lacks, a DIE or
a form that runs past its unit, a DW_AT_sibling that does not point forward inside its unit.
Every step moves forward, so a walk ends within its unit's bytes.
"""

from __future__ import annotations

import bisect

from coredump.dwarf import abbrev as A
from coredump.dwarf.abbrev import Abbrev, AbbrevError, form_rule, read_abbrev_table
from coredump.dwarf.expr import ExpressionError, read_sleb128, read_uleb128
from coredump.dwarf.ranges import range_list
from coredump.dwarf.sections import unit_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable, Dict, List, Optional, Sequence, Tuple

    from coredump.dwarf.ranges import Ranges
    Values = Dict[int, Tuple[int, int]]  # attribute -> (form, value)

__all__ = ("DieError", "UnitReader", "collect_functions", "ancestors", "unit_reader", "subtree")

DW_AT_sibling, DW_AT_low_pc, DW_AT_high_pc, DW_AT_ranges = 0x01, 0x11, 0x12, 0x55
DW_TAG_subprogram = 0x2E
# Tags whose children may hold a function's definition (DWARF 5 §3.2, §5.7), as
# coredump.dwarf.index's _CONTAINER_TAGS: namespace, class, structure, union, module.
CONTAINER_TAGS = frozenset((0x39, 0x02, 0x13, 0x17, 0x1E))
# Forms of a CU-relative reference (DWARF 5 §7.5.5), and DW_FORM_ref_addr (section-relative).
_CU_REFS = frozenset((0x11, 0x12, 0x13, 0x14, 0x15))
DW_FORM_ref_addr = 0x10
# DW_AT_high_pc is an address in these forms, else an offset from DW_AT_low_pc (DWARF 4 §2.17.2);
# the DW_FORM_addrx forms are indices into .debug_addr (DWARF 5 §7.27), as pyelftools translates them.
_ADDRESS_FORMS = frozenset((0x01, 0x1B, 0x29, 0x2A, 0x2B, 0x2C, 0x1F01))
_ADDRX_FORMS = frozenset((0x1B, 0x29, 0x2A, 0x2B, 0x2C))
DW_FORM_rnglistx = 0x23
_FUNCTION_ATTRS = frozenset((DW_AT_sibling, DW_AT_low_pc, DW_AT_high_pc, DW_AT_ranges))
_SIBLING = frozenset((DW_AT_sibling,))
# DIEs skipped between two checks of the walk's deadline.
_CHECK_EVERY = 4096


class DieError(ValueError):
    """A DIE that its unit's bytes or abbreviation table cannot hold."""


class UnitReader:
    """The DIEs of one unit: `data` is the unit's bytes (header included), positions are
    relative to the unit's start at section offset `cu_offset`."""

    def __init__(self, data: bytes, cu_offset: int, version: int, address_size: int, offset_size: int,
                 abbrevs: Dict[int, Abbrev], little_endian: bool = True):
        self.data = data
        self.cu_offset = cu_offset
        self.version, self.address_size, self.offset_size = version, address_size, offset_size
        self.abbrevs = abbrevs
        self.order = "little" if little_endian else "big"
        # Position after a DIE's attributes -> after its subtree, for the DIEs with children
        # walked so far: each later search of the unit steps over them at once.
        self._ends: Dict[int, int] = {}

    def read(self, pos: int, want: frozenset) -> Tuple[Optional[Abbrev], Values, int]:
        """(abbreviation, the wanted attributes' (form, value), position after the DIE's
        attributes) of the DIE at `pos`; abbreviation None for a null entry."""
        data = self.data
        code = data[pos]
        pos += 1
        if code & 0x80:
            code, pos = read_uleb128(self.data, pos - 1)
        if code == 0:
            return None, {}, pos
        ab = self.abbrevs.get(code)
        if ab is None:
            raise DieError(f"DIE at {self.cu_offset + pos:#x}: abbreviation code {code} is not in its table")
        values: Values = {}
        if ab.fixed is not None and not (ab.names & want):
            pos += ab.fixed
        else:
            for name, form, kind, size, const in ab.attrs:
                if kind == A.INDIRECT:  # DW_FORM_indirect: the form is in the DIE (DWARF 5 §7.5.3)
                    form, pos = read_uleb128(self.data, pos)
                    kind, size = self._indirect_rule(form)
                start = pos
                pos = self._skip(pos, kind, size)
                if name in want:
                    values[name] = (form, const if form == A.DW_FORM_implicit_const else self._value(start, pos, kind))
        if pos > len(data):
            raise DieError(f"DIE at {self.cu_offset + pos:#x} runs past the end of its unit")
        return ab, values, pos

    def next_sibling(self, ab: Abbrev, values: Values, pos: int) -> int:
        """The position after the DIE whose attributes end at `pos`, its subtree included."""
        if not ab.has_children:
            return pos
        end = self._ends.get(pos)
        if end is not None:
            return end
        sibling = values.get(DW_AT_sibling)
        if sibling is None:
            end = self._ends[pos] = self.skip_children(pos)
            return end
        form, value = sibling
        target = value - self.cu_offset if form == DW_FORM_ref_addr else value
        # DWARF 5 §2.3: the sibling follows the DIE's subtree (at least its null entry), inside its unit.
        if form not in _CU_REFS and form != DW_FORM_ref_addr or not pos < target < len(self.data):
            raise DieError(f"DW_AT_sibling at {self.cu_offset + pos:#x} points outside what follows it "
                           f"({target + self.cu_offset:#x})")
        return target

    def subtree_end(self, start: int, end: int) -> None:
        """Remember that the children starting at `start` end at `end` (a walk found it)."""
        self._ends[start] = end

    def skip_children(self, pos: int, check: Optional[Callable[[], None]] = None) -> int:
        """The position after the null entry that ends the children starting at `pos`."""
        depth, count = 1, 0
        while depth:
            ab, values, pos = self.read(pos, _SIBLING)
            count += 1
            if check is not None and count % _CHECK_EVERY == 0:
                check()
            if ab is None:
                depth -= 1
            elif ab.has_children:
                if DW_AT_sibling in values:
                    pos = self.next_sibling(ab, values, pos)
                else:
                    depth += 1
        return pos

    def _indirect_rule(self, form: int) -> Tuple[int, int]:
        if form in (0x16, A.DW_FORM_implicit_const):  # DWARF 5 §7.5.3: neither may be named indirectly
            raise DieError(f"DW_FORM_indirect names form {form:#x}")
        try:
            return form_rule(form, self.address_size, self.offset_size, self.version)
        except AbbrevError as exc:
            raise DieError(str(exc)) from None

    def _skip(self, pos: int, kind: int, size: int) -> int:
        data = self.data
        if kind == A.FIXED:
            return pos + size
        if kind == A.ULEB or kind == A.SLEB:
            while data[pos] & 0x80:
                pos += 1
            return pos + 1
        if kind == A.CSTRING:
            end = data.find(b"\0", pos)
            if end < 0:
                raise DieError(f"string at {self.cu_offset + pos:#x} runs past the end of its unit")
            return end + 1
        if kind == A.BLOCK:
            n, pos = read_uleb128(self.data, pos)
            return pos + n
        width = 1 if kind == A.BLOCK1 else 2 if kind == A.BLOCK2 else 4
        return pos + width + int.from_bytes(data[pos:pos + width], self.order)

    def _value(self, start: int, end: int, kind: int) -> int:
        if kind == A.FIXED:
            return int.from_bytes(self.data[start:end], self.order)
        if kind == A.ULEB:
            return read_uleb128(self.data, start)[0]
        if kind == A.SLEB:
            return read_sleb128(self.data, start)[0]
        if kind == A.CSTRING:
            return start  # DW_FORM_string: where its bytes start in `data` (coredump.dwarf.structs)
        return 0  # a block: no attribute read here has one


def unit_reader(dwarfinfo, cu, abbrev_cache: dict) -> UnitReader:
    """The reader of unit `cu`'s bytes: our CompileUnit's own (``coredump.dwarf.compileunit``),
    or one over a pyelftools unit (files only pyelftools reads), tables shared through
    `abbrev_cache`."""
    if hasattr(cu, "reader"):
        return cu.reader
    if dwarfinfo.config.little_endian:  # only this unit of a compressed section is inflated
        data = unit_bytes(dwarfinfo.debug_info_sec, cu.cu_offset)[:cu.size]
    else:
        data = bytes(dwarfinfo.debug_info_sec.stream.getbuffer()[cu.cu_offset:cu.cu_offset + cu.size])
    version, address_size = cu["version"], cu["address_size"]
    offset_size = 8 if cu.structs.dwarf_format == 64 else 4
    key = (cu["debug_abbrev_offset"], version, address_size, offset_size)
    table = abbrev_cache.get(key)
    if table is None:
        try:
            table = read_abbrev_table(dwarfinfo.debug_abbrev_sec.stream.getbuffer(), key[0], address_size,
                                      offset_size, version)
        except AbbrevError as exc:
            raise DieError(str(exc)) from None
        abbrev_cache[key] = table
    return UnitReader(data, cu.cu_offset, version, address_size, offset_size, table,
                      dwarfinfo.config.little_endian)


def subtree(reader: UnitReader, pos: int, enter: Callable[[Abbrev], bool],
            visit: Callable[[int], None]) -> list:
    """The children of the DIE whose attributes end at `pos`, each as (position, abbreviation,
    its own children or None), read in one pass (DWARF 5 §2.3): a DIE with children that
    `enter` refuses is stepped over (by DW_AT_sibling where it has one). `visit(count)` sees
    each DIE put in the tree."""
    root: list = []
    levels = [root]
    count = 0
    try:
        while levels:
            offset = pos
            ab, values, pos = reader.read(pos, _SIBLING)
            if ab is None:
                levels.pop()
                continue
            count += 1
            visit(count)
            kids = None
            if ab.has_children:
                if enter(ab):
                    kids = []
                else:
                    pos = reader.next_sibling(ab, values, pos)
            levels[-1].append((offset, ab, kids))
            if kids is not None:
                levels.append(kids)
    except (IndexError, ExpressionError):  # a LEB128 or a DIE past the unit's end
        raise DieError(f"a DIE of the unit at {reader.cu_offset:#x} runs past its end") from None
    return root


def collect_functions(dwarfinfo, cu, reader: UnitReader, top_level: list,
                      visit: Callable[[int], None]) -> Tuple[List[Tuple[int, int, int]], List[Tuple[int, int, int]]]:
    """Ranges of the subprograms among the CU DIE's children, and of those inside its
    namespaces and classes, each as sorted (low, high, DIE offset): one pass, as a
    producer without DW_AT_sibling (rustc) makes us read every DIE of a namespace to step
    over it. Appends the section offsets of the CU DIE's own children to `top_level`;
    `visit(count)` sees each DIE of the levels walked (and raises past the walk's limits)."""
    cu.get_top_DIE()  # pyelftools reads the CU's DW_AT_addr_base / DW_AT_rnglists_base from it
    try:
        return _walk(dwarfinfo, cu, reader, top_level, visit)
    except (IndexError, ExpressionError):  # a LEB128 or a DIE past the unit's end
        raise DieError(f"a DIE of the unit at {cu.cu_offset:#x} runs past its end") from None


def _walk(dwarfinfo, cu, reader: UnitReader, top_level: list, visit) -> tuple:
    outer: list = []
    inner: list = []
    ab, _, pos = reader.read(cu.cu_die_offset - cu.cu_offset, _SIBLING)
    if ab is None or not ab.has_children:
        return outer, inner
    levels = [(True, -1)]  # per level entered: whether it is the CU DIE's children, where it starts
    count = 0
    while levels:
        offset = pos
        ab, values, pos = reader.read(pos, _FUNCTION_ATTRS)
        if ab is None:
            _, start = levels.pop()  # DWARF 5 §2.3: a null entry ends a list of siblings
            reader.subtree_end(start, pos)
            continue
        top = levels[-1][0]
        count += 1
        visit(count)
        if top:
            top_level.append(reader.cu_offset + offset)
        if ab.tag == DW_TAG_subprogram:
            try:
                (outer if top else inner).extend((low, high, reader.cu_offset + offset)
                                                 for low, high in _ranges(dwarfinfo, cu, values))
            except Exception:
                pass  # this function's ranges (pyelftools reads range lists): the others stand
        if ab.has_children:
            if ab.tag in CONTAINER_TAGS:
                levels.append((False, pos))  # its children follow it
            else:
                pos = reader.next_sibling(ab, values, pos)
    outer.sort()
    inner.sort()
    return outer, inner


def ancestors(reader: UnitReader, cu_die: int, target: int, top_level: Sequence[int] = (),
              check: Optional[Callable[[], None]] = None) -> Optional[List[int]]:
    """Positions of the DIEs above the DIE at `target`, the CU DIE (at `cu_die`) first; None
    when no DIE starts there. Only the subtrees that hold `target` are entered; `top_level`,
    the sorted section offsets of the CU DIE's children where known, leads to the right one
    at once."""
    if target == cu_die:
        return []
    chain = [cu_die]
    try:
        ab, values, pos = reader.read(cu_die, _SIBLING)
        i = bisect.bisect_right(top_level, reader.cu_offset + target) - 1
        if i >= 0:
            pos = top_level[i] - reader.cu_offset  # DWARF 5 §2.3: the subtree of the child before it
        while ab is not None and ab.has_children:
            while True:
                offset = pos
                ab, values, pos = reader.read(pos, _SIBLING)
                if ab is None or offset > target:
                    return None
                if offset == target:
                    return chain
                after = reader.next_sibling(ab, values, pos) if ab.has_children else pos
                if ab.has_children and target < after:
                    chain.append(offset)  # DWARF 5 §2.3: a subtree is contiguous, after its DIE
                    break
                pos = after
                if check is not None:
                    check()
    except (IndexError, ExpressionError):  # a LEB128 or a DIE past the unit's end
        raise DieError(f"a DIE of the unit at {reader.cu_offset:#x} runs past its end") from None
    return None


def _ranges(dwarfinfo, cu, values: Values) -> Ranges:
    """As coredump.dwarf.ranges.die_ranges, from the raw values (DWARF 5 §2.17)."""
    ranges = values.get(DW_AT_ranges)
    if ranges is not None:
        form, offset = ranges
        if form == DW_FORM_rnglistx:  # an index into the CU's offset table (DWARF 5 §7.28)
            offset = _rnglistx(dwarfinfo, cu, offset)
        return range_list(dwarfinfo, cu, offset)
    low, high = values.get(DW_AT_low_pc), values.get(DW_AT_high_pc)
    if low is None or high is None:
        return []
    lo = _address(dwarfinfo, cu, *low)
    hi = _address(dwarfinfo, cu, *high) if high[0] in _ADDRESS_FORMS else lo + high[1]
    return [(lo, hi)] if hi > lo else []


def _rnglistx(dwarfinfo, cu, index: int) -> int:
    if hasattr(cu, "resolve_offset_table"):  # ours (coredump.dwarf.compileunit)
        return cu.resolve_offset_table(dwarfinfo.debug_rnglists_sec, index, "DW_AT_rnglists_base")
    from elftools.dwarf.dwarf_util import _resolve_via_offset_table

    return _resolve_via_offset_table(dwarfinfo.debug_rnglists_sec.stream, cu, index, "DW_AT_rnglists_base")


def _address(dwarfinfo, cu, form: int, value: int) -> int:
    return dwarfinfo.get_addr(cu, value) if form in _ADDRX_FORMS else value
