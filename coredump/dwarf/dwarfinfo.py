"""
DWARF information
=================

The DWARF of one ELF image: its sections (``coredump.dwarf.sections.LazySection``, read on
first use) and its compile units (``coredump.dwarf.compileunit``), with the part of
pyelftools' ``elftools/dwarf/dwarfinfo.py`` API the analysis uses: ``iter_CUs()``,
``get_CU_at()``, ``get_CU_containing()``, ``get_DIE_from_refaddr()``, the ``debug_*_sec``
sections, ``config`` (``little_endian``), ``supplementary_dwarfinfo`` (dwz, DWARF 5 §7.3.6)
and the string, address and offset tables (DWARF 5 §7.26-7.29).

pyelftools is used only by ``line_program_for_CU``, where our line-program decoder gave up.
"""

from __future__ import annotations

import bisect

from coredump.dwarf.abbrev import AbbrevError, read_abbrev_table
from coredump.dwarf.compileunit import CompileUnit, read_unit_header
from coredump.dwarf.dies import DieError, UnitReader
from coredump.dwarf.sections import DWARF_SECTIONS, MACHINE_ARCH, cstring, section, unit_bytes, window
from coredump.elf.image import ElfImage

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, Iterator, List, Optional

__all__ = ("DwarfConfig", "DWARFInfo", "dwarf_info")

# Header bytes of the largest unit header (DWARF 5 §7.5.1.3, 64-bit: 12 + 2 + 1 + 1 + 8 + 8 + 8).
_MAX_HEADER = 40


class DwarfConfig:
    """What pyelftools' DwarfConfig holds."""

    __slots__ = ("little_endian", "default_address_size", "machine_arch")

    def __init__(self, little_endian: bool, default_address_size: int, machine_arch: str):
        self.little_endian = little_endian
        self.default_address_size = default_address_size
        self.machine_arch = machine_arch


class DWARFInfo:
    """`sections`: DWARF_SECTIONS' parameter names -> LazySection or None."""

    def __init__(self, config: DwarfConfig, **sections):
        self.config = config
        for param in DWARF_SECTIONS:
            setattr(self, param, sections.get(param))
        self.supplementary_dwarfinfo: Optional[DWARFInfo] = None
        self._cus: Dict[int, CompileUnit] = {}
        self._cu_offsets: List[int] = []  # sorted keys of _cus
        self._abbrevs: dict = {}  # (offset, version, address_size, offset_size) -> table
        self._range_lists = None  # coredump.dwarf.rangelists.RangeLists, made on first use
        self._location_lists = None  # coredump.dwarf.locationlists.LocationLists
        self._reference = None  # pyelftools' DWARFInfo over the same sections, where ours gave up

    @property
    def has_debug_info(self) -> bool:
        return self.debug_info_sec is not None

    # ---- units ---------------------------------------------------------------------------

    def iter_CUs(self) -> Iterator[CompileUnit]:
        """Every unit of .debug_info in order (DWARF 5 §7.5.1: each header gives its length)."""
        if self.debug_info_sec is None:
            return
        offset = 0
        while offset < self.debug_info_sec.size:
            cu = self._cached_CU(offset)
            offset += cu.size
            yield cu

    def get_CU_at(self, offset: int) -> CompileUnit:
        """The unit whose header starts at `offset`."""
        if self.debug_info_sec is None or not 0 <= offset < self.debug_info_sec.size:
            raise DieError(f"offset {offset:#x} beyond .debug_info")
        return self._cached_CU(offset)

    def get_CU_containing(self, refaddr: int) -> CompileUnit:
        """The unit holding section offset `refaddr`: units are parsed from the closest one
        known before it."""
        if self.debug_info_sec is None or not 0 <= refaddr < self.debug_info_sec.size:
            raise DieError(f"refaddr {refaddr:#x} beyond .debug_info")
        i = bisect.bisect_right(self._cu_offsets, refaddr)
        offset = self._cu_offsets[i - 1] if i else 0
        while offset < self.debug_info_sec.size:
            cu = self._cached_CU(offset)
            if cu.cu_offset <= refaddr < cu.cu_offset + cu.size:
                return cu
            offset += cu.size
        raise DieError(f"no CU holds refaddr {refaddr:#x}")

    def get_DIE_from_refaddr(self, refaddr: int, cu: Optional[CompileUnit] = None):
        """The DIE at .debug_info offset `refaddr` (a DW_FORM_ref_addr value)."""
        if cu is None:
            cu = self.get_CU_containing(refaddr)
        return cu.get_DIE_from_refaddr(refaddr)

    def _cached_CU(self, offset: int) -> CompileUnit:
        cu = self._cus.get(offset)
        if cu is None:
            head = window(self.debug_info_sec, offset, offset + _MAX_HEADER)
            header, offset_size, header_size = read_unit_header(head, offset, self.config.little_endian)
            cu = self._cus[offset] = CompileUnit(self, offset, header, offset_size, header_size)
            bisect.insort(self._cu_offsets, offset)
        return cu

    def unit_reader(self, cu: CompileUnit) -> UnitReader:
        """The reader of `cu`'s bytes (only that unit of a compressed section is inflated)."""
        data = unit_bytes(self.debug_info_sec, cu.cu_offset)[:cu.size]
        key = (cu["debug_abbrev_offset"], cu["version"], cu["address_size"], cu.offset_size)
        table = self._abbrevs.get(key)
        if table is None:
            if self.debug_abbrev_sec is None:
                raise DieError("no .debug_abbrev")
            try:
                table = read_abbrev_table(self.debug_abbrev_sec.stream.getbuffer(), key[0], cu["address_size"],
                                          cu.offset_size, cu["version"])
            except AbbrevError as exc:
                raise DieError(str(exc)) from None
            self._abbrevs[key] = table
        return UnitReader(data, cu.cu_offset, cu["version"], cu["address_size"], cu.offset_size, table,
                          self.config.little_endian)

    # ---- tables --------------------------------------------------------------------------

    def get_string_from_table(self, offset: int) -> Optional[bytes]:
        """The string at `offset` of .debug_str (DW_FORM_strp)."""
        if self.debug_str_sec is None:
            raise DieError("DW_FORM_strp without .debug_str")
        return cstring(self.debug_str_sec, offset)

    def get_string_from_linetable(self, offset: int) -> Optional[bytes]:
        """The string at `offset` of .debug_line_str (DW_FORM_line_strp)."""
        if self.debug_line_str_sec is None:
            raise DieError("DW_FORM_line_strp without .debug_line_str")
        return cstring(self.debug_line_str_sec, offset)

    def get_addr(self, cu: CompileUnit, index: int) -> int:
        """Entry `index` of the unit's .debug_addr table (DWARF 5 §7.27), from DW_AT_addr_base."""
        if self.debug_addr_sec is None:
            raise DieError("an indexed address without .debug_addr")
        size = cu["address_size"]
        start = cu.base("DW_AT_addr_base") + index * size
        raw = window(self.debug_addr_sec, start, start + size)
        if len(raw) != size:
            raise DieError(f".debug_addr entry at {start:#x} runs past the section")
        return int.from_bytes(raw, "little" if self.config.little_endian else "big")

    def offset_entry(self, section, cu: CompileUnit, at: int) -> int:
        """The offset-sized value at `at` of `section` (.debug_str_offsets, the offset tables
        of .debug_loclists and .debug_rnglists; DWARF 5 §7.26-7.29)."""
        if section is None:
            raise DieError("an indexed form without its section")
        raw = window(section, at, at + cu.offset_size)
        if len(raw) != cu.offset_size:
            raise DieError(f"{section.name} entry at {at:#x} runs past the section")
        return int.from_bytes(raw, "little" if self.config.little_endian else "big")

    def range_lists(self):
        """The reader of DW_AT_ranges lists (``coredump.dwarf.rangelists``); None without
        .debug_ranges and .debug_rnglists."""
        if self.debug_ranges_sec is None and self.debug_rnglists_sec is None:
            return None
        if self._range_lists is None:
            from coredump.dwarf.rangelists import RangeLists

            self._range_lists = RangeLists(self)
        return self._range_lists

    def location_lists(self):
        """The reader of location lists (``coredump.dwarf.locationlists``); None without
        .debug_loc and .debug_loclists."""
        if self.debug_loc_sec is None and self.debug_loclists_sec is None:
            return None
        if self._location_lists is None:
            from coredump.dwarf.locationlists import LocationLists

            self._location_lists = LocationLists(self)
        return self._location_lists

    def line_program_for_CU(self, cu: CompileUnit):
        """pyelftools' LineProgram of `cu` (where coredump.dwarf.lineprogram gave up)."""
        if self._reference is None:
            from elftools.dwarf.dwarfinfo import DwarfConfig as Config
            from elftools.dwarf.dwarfinfo import DWARFInfo as Reference

            config = Config(little_endian=self.config.little_endian, machine_arch=self.config.machine_arch,
                            default_address_size=self.config.default_address_size)
            self._reference = Reference(config=config, **{p: getattr(self, p) for p in DWARF_SECTIONS})
        return self._reference.line_program_for_CU(self._reference.get_CU_at(cu.cu_offset))


def dwarf_info(image: ElfImage):
    """The DWARFInfo of `image` (no relocations applied, no links followed: the supplementary
    file is ``coredump.dwarf.supplementary``'s to find): ours (``coredump.dwarf.dwarfinfo``)
    over lazy sections for ELF64 little-endian files, else pyelftools' (``ELFFile.get_dwarf_info``:
    other classes and byte orders are read by pyelftools alone)."""
    if not image._is_elf64le:
        return image.elf.get_dwarf_info(relocate_dwarf_sections=False, follow_links=False)
    machine_arch = MACHINE_ARCH.get(image.e_machine)
    if machine_arch is None:
        machine_arch = image.elf.get_machine_arch()
    config = DwarfConfig(little_endian=True, default_address_size=8, machine_arch=machine_arch)
    return DWARFInfo(config=config, **{param: section(image, name) for param, name in DWARF_SECTIONS.items()})
