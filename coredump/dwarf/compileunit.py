"""
Compile units
=============

One unit of ``.debug_info`` (DWARF 5 §7.5.1): its header, read with ``struct``, and its DIEs
(``coredump.dwarf.die``), cached by offset, with the part of pyelftools'
``elftools/dwarf/compileunit.py`` API the analysis uses: ``cu_offset``, ``cu_die_offset``,
``size``, header fields by ``cu['version']`` (``unit_length``, ``version``, ``unit_type``,
``address_size``, ``debug_abbrev_offset``), ``get_top_DIE()``, ``get_DIE_from_refaddr()``,
``iter_DIEs()``. The unit's bytes and abbreviation table are read on its first DIE.
"""

from __future__ import annotations

import struct

from coredump.dwarf.constants import DW_UT_raw2name
from coredump.dwarf.die import DIE
from coredump.dwarf.dies import DieError, UnitReader, ancestors

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, Iterator, List, Optional

__all__ = ("CompileUnit", "read_unit_header")

# DWARF 5 §7.5.1: unit types whose header has a dwo_id, or a type signature and offset.
_DWO_ID_UNITS = ("DW_UT_skeleton", "DW_UT_split_compile")
_TYPE_UNITS = ("DW_UT_type", "DW_UT_split_type")


class _Header(dict):
    """The header's fields by key (``cu['version']``) and by attribute (``cu.header.version``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def read_unit_header(head: bytes, offset: int, little_endian: bool = True):
    """(header, offset size, header size) of the unit whose first bytes are `head`
    (DWARF 5 §7.4, §7.5.1.1-3; DWARF 4 §7.5.1.1). DieError for what no version 2-5 writes."""
    order = "<" if little_endian else ">"
    try:
        (length,) = struct.unpack_from(order + "I", head, 0)
        pos, offset_size, off = 4, 4, "I"
        if length == 0xFFFFFFFF:  # the 64-bit DWARF format
            (length,) = struct.unpack_from(order + "Q", head, 4)
            pos, offset_size, off = 12, 8, "Q"
        (version,) = struct.unpack_from(order + "H", head, pos)
        pos += 2
        if not 2 <= version <= 5:
            raise DieError(f"unit at {offset:#x} has DWARF version {version} (2 to 5 are read)")
        header = _Header(unit_length=length, version=version)
        if version >= 5:
            unit_type, address_size, abbrev_offset = struct.unpack_from(order + "BB" + off, head, pos)
            pos += 2 + offset_size
            name = DW_UT_raw2name.get(unit_type)
            if name is None:
                raise DieError(f"unit at {offset:#x} has unknown unit type {unit_type:#x}")
            header.update(unit_type=name, address_size=address_size, debug_abbrev_offset=abbrev_offset)
            if name in _DWO_ID_UNITS:
                header["dwo_id"] = struct.unpack_from(order + "Q", head, pos)[0]
                pos += 8
            elif name in _TYPE_UNITS:
                header["type_signature"], header["type_offset"] = struct.unpack_from(order + "Q" + off, head, pos)
                pos += 8 + offset_size
        else:
            abbrev_offset, address_size = struct.unpack_from(order + off + "B", head, pos)
            pos += offset_size + 1
            header.update(debug_abbrev_offset=abbrev_offset, address_size=address_size)
    except struct.error:
        raise DieError(f"unit header at {offset:#x} runs past the end of .debug_info") from None
    return header, offset_size, pos


class CompileUnit:
    """The unit at section offset `cu_offset` of `dwarfinfo`'s .debug_info."""

    def __init__(self, dwarfinfo, cu_offset: int, header: _Header, offset_size: int, header_size: int):
        self.dwarfinfo = dwarfinfo
        self.header = header
        self.cu_offset = cu_offset
        self.cu_die_offset = cu_offset + header_size
        self.offset_size = offset_size
        self.dwarf_format = 64 if offset_size == 8 else 32
        self.size = header["unit_length"] + (12 if offset_size == 8 else 4)
        self._reader: Optional[UnitReader] = None
        self._dies: Dict[int, DIE] = {}
        # Sorted section offsets of the unit DIE's children where a walk found them: they lead
        # dies.ancestors to the right subtree at once (coredump.dwarf.index sets them).
        self.top_level: List[int] = []

    def __getitem__(self, name: str):
        return self.header[name]

    @property
    def reader(self) -> UnitReader:
        if self._reader is None:
            self._reader = self.dwarfinfo.unit_reader(self)
        return self._reader

    def get_top_DIE(self) -> DIE:
        """The unit's DW_TAG_compile_unit (or partial_unit) DIE."""
        return self._get_cached_DIE(self.cu_die_offset)

    def has_top_DIE(self) -> bool:
        return self.cu_die_offset in self._dies

    def get_DIE_from_refaddr(self, refaddr: int) -> DIE:
        """The DIE at section offset `refaddr`, which must lie in this unit."""
        if not self.cu_die_offset <= refaddr < self.cu_offset + self.size:
            raise DieError(f"refaddr {refaddr:#x} not in DIE range of CU {self.cu_offset:#x}")
        return self._get_cached_DIE(refaddr)

    def iter_DIEs(self) -> Iterator[DIE]:
        """Every DIE of the unit in order, null entries included, each given its parent."""
        die = self.get_top_DIE()
        yield die
        pos, end = die.offset + die.size, self.cu_offset + self.size
        parent: Optional[DIE] = die
        while pos < end:  # as pyelftools' iter_DIEs: to the unit's end, whatever follows its DIE
            die = self._get_cached_DIE(pos)
            die._parent = parent
            yield die
            if die.tag is None:
                if parent is not None:
                    parent = parent._parent
            elif die.has_children:
                parent = die
            pos += die.size

    def iter_DIE_children(self, die: DIE) -> Iterator[DIE]:
        return die.iter_children()

    def base(self, name: str) -> int:
        """A DW_AT_*_base of the unit DIE (DWARF 5 §3.1.1); DieError when it has none."""
        attr = self.get_top_DIE().attributes.get(name)
        if attr is None:
            raise DieError(f"the CU at {self.cu_offset:#x} needs {name}")
        return attr.value

    def resolve_offset_table(self, section, index: int, base_name: str) -> int:
        """The section offset entry `index` of the unit's offset table names (DW_FORM_loclistx,
        DW_FORM_rnglistx; DWARF 5 §7.28-7.29): counted from the table's start, the base."""
        base = self.base(base_name)
        return base + self.dwarfinfo.offset_entry(section, self, base + index * self.offset_size)

    def link_parents(self, die: DIE) -> None:
        """Give `die` and the DIEs above it their parents, by the reader's walk of only the
        subtrees that hold it (dies.ancestors); DieError when no DIE starts there."""
        chain = ancestors(self.reader, self.cu_die_offset - self.cu_offset, die.offset - self.cu_offset,
                          self.top_level)
        if chain is None:
            raise DieError(f"offset {die.offset:#x} not in the DIE tree of CU {self.cu_offset:#x}")
        dies = [self._get_cached_DIE(self.cu_offset + pos) for pos in chain] + [die]
        for parent, child in zip(dies, dies[1:]):
            child._parent = parent

    def _get_cached_DIE(self, offset: int) -> DIE:
        die = self._dies.get(offset)
        if die is None:
            if not self.cu_die_offset <= offset < self.cu_offset + self.size:
                raise DieError(f"DIE at {offset:#x} lies outside its unit at {self.cu_offset:#x}")
            die = self._dies[offset] = DIE(self, offset)
        return die
