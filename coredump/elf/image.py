"""
ELF images
==========

An ELF file on disk (executable, shared library or separate debug file), memory-mapped and
parsed lazily: nothing is read until a property asks for it. Headers, program headers and
sections of an ELF64 little-endian file are read with struct (``coredump.elf.header``);
pyelftools is imported only when something asks for ``elf`` (DWARF, other classes).
"""

from __future__ import annotations

import io
import mmap
import os
import struct
from functools import cached_property

from coredump.elf.header import SH_TYPE_NAMES, Ehdr, ehdr_of, read_ehdr

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, List, Optional, Tuple
    LoadSegment = Tuple[int, int, int, int, int]  # p_vaddr, p_memsz, p_offset, p_filesz, p_flags
    ProgramHeader = Tuple[int, int, int, int, int, int]  # p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz

__all__ = ("ElfImage", "open_image", "LoadSegment", "ProgramHeader", "read_build_id_from_notes")

# ELF gABI p_type values.
PT_LOAD, PT_DYNAMIC, PT_NOTE = 1, 2, 4
_PT = {"PT_LOAD": PT_LOAD, "PT_DYNAMIC": PT_DYNAMIC, "PT_NOTE": PT_NOTE}

# NT_GNU_BUILD_ID (elf.h), in a note named "GNU".
NT_GNU_BUILD_ID = 3


def read_build_id_from_notes(data: bytes) -> Optional[str]:
    """The GNU build-id (hex) in a blob of ELF notes (gABI "Note Section"), or None."""
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
        name_at = pos + 12
        desc_at = name_at + ((namesz + 3) & ~3)
        if desc_at + descsz > len(data):
            return None
        if ntype == NT_GNU_BUILD_ID and bytes(data[name_at:name_at + namesz]).rstrip(b"\0") == b"GNU":
            return bytes(data[desc_at:desc_at + descsz]).hex()
        pos = desc_at + ((descsz + 3) & ~3)
    return None


class ElfImage:
    """A mapped ELF file. ``data`` is the whole file as an mmap (never read whole)."""

    def __init__(self, path: str, data: Optional[bytes] = None):
        """Map the file at `path`; or, with `data`, wrap bytes already in memory (the vDSO,
        or an ELF image copied out of a core) under the display name `path`."""
        self.path = path
        self._links: Dict[str, str] = {}  # section name -> its sh_link's name (ELF64 LE)
        self._flags: Dict[str, int] = {}  # section name -> sh_flags
        self._entsizes: Dict[str, int] = {}  # section name -> sh_entsize (ELF64 LE)
        if data is not None:
            self._file = io.BytesIO(data)
            self.data = data
        else:
            self._file = open(path, "rb")
            try:
                self.data = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            except Exception:
                self._file.close()
                raise
        try:
            ehdr = read_ehdr(self.data)
            self._elf64le = ehdr is not None
            self.ehdr: Ehdr = ehdr if ehdr is not None else ehdr_of(self.elf)
        except Exception:
            self._file.close()
            raise
        self.e_type: str = self.ehdr.e_type
        self.e_machine: str = self.ehdr.e_machine

    @cached_property
    def elf(self):
        """The file as a pyelftools ELFFile (its DWARF, and files not ELF64 little-endian)."""
        from elftools.elf.elffile import ELFFile

        return ELFFile(self._file)

    def fstat(self) -> Optional[os.stat_result]:
        """The status of the file mapped (of the descriptor, not the path: the path may name
        another file by now), or None for bytes in memory."""
        if isinstance(self._file, io.BytesIO):
            return None
        return os.fstat(self._file.fileno())

    @cached_property
    def program_headers(self) -> List[ProgramHeader]:
        """(p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz) of each Elf64_Phdr (gABI
        "Program Header": p_type at 0, p_flags 4, p_offset 8, p_vaddr 16, p_filesz 32,
        p_memsz 40), read with struct: pyelftools' segments parse hash tables for PT_DYNAMIC."""
        if not self._is_elf64le:
            return [(_PT.get(seg.header.p_type, 0), seg.header.p_flags, seg.header.p_offset,
                     seg.header.p_vaddr, seg.header.p_filesz, seg.header.p_memsz)
                    for seg in self.elf.iter_segments()]
        e_phoff, e_phentsize, e_phnum = self.ehdr.e_phoff, self.ehdr.e_phentsize, self.ehdr.e_phnum
        out = []
        for i in range(e_phnum if e_phentsize >= 56 else 0):
            at = e_phoff + i * e_phentsize
            if at + 56 > len(self.data):
                break
            p_type, p_flags, p_offset, p_vaddr, _, p_filesz, p_memsz = struct.unpack_from("<IIQQQQQ", self.data, at)
            out.append((p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz))
        return out

    @cached_property
    def load_segments(self) -> List[LoadSegment]:
        return [(vaddr, memsz, off, filesz, flags)
                for p_type, flags, off, vaddr, filesz, memsz in self.program_headers if p_type == PT_LOAD]

    @cached_property
    def build_id(self) -> Optional[str]:
        for p_type, _, off, _, filesz, _ in self.program_headers:
            if p_type == PT_NOTE:
                found = read_build_id_from_notes(self.data[off:off + filesz])
                if found:
                    return found
        raw = self.section_bytes(".note.gnu.build-id")
        return read_build_id_from_notes(raw) if raw is not None else None

    @property
    def _is_elf64le(self) -> bool:
        return self._elf64le

    @cached_property
    def _sections(self) -> Dict[str, Tuple[int, int, int, str]]:
        """name -> (sh_addr, sh_offset, sh_size, sh_type) for every section."""
        out: Dict[str, Tuple[int, int, int, str]] = {}
        try:
            if self._is_elf64le:
                return self._read_section_headers()
            for sec in self.elf.iter_sections():
                out.setdefault(sec.name, (sec["sh_addr"], sec["sh_offset"], sec["sh_size"], sec["sh_type"]))
                self._flags.setdefault(sec.name, sec["sh_flags"])
        except Exception:
            pass
        return out

    def _read_section_headers(self) -> Dict[str, Tuple[int, int, int, str]]:
        """Elf64_Shdr (sh_name 0, sh_type 4, sh_flags 8, sh_addr 16, sh_offset 24, sh_size 32,
        sh_link 40, sh_entsize 56) with names from the e_shstrndx section, read with struct
        (pyelftools builds a typed object per section, parsing symbol and hash tables as it
        goes). Each section's sh_link, by name, goes to ``_links``, its sh_flags to ``_flags``,
        its sh_entsize to ``_entsizes``."""
        e_shoff, e_shentsize = self.ehdr.e_shoff, self.ehdr.e_shentsize
        count = self.ehdr.e_shnum if e_shoff and e_shentsize >= 64 else 0
        headers = []
        for i in range(count):
            at = e_shoff + i * e_shentsize
            if at + 64 > len(self.data):
                break
            sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, _, _, sh_entsize = struct.unpack_from(
                "<IIQQQQIIQQ", self.data, at)
            headers.append((sh_name, sh_type, sh_addr, sh_offset, sh_size, sh_link, sh_flags, sh_entsize))
        strndx = self.ehdr.e_shstrndx if headers else 0
        if not 0 < strndx < len(headers):
            return {}
        _, _, _, str_off, str_size, _, _, _ = headers[strndx]
        names = bytes(self.data[str_off:str_off + str_size])
        out: Dict[str, Tuple[int, int, int, str]] = {}
        by_index = []
        for sh_name, sh_type, sh_addr, sh_offset, sh_size, _, sh_flags, sh_entsize in headers:
            end = names.find(b"\0", sh_name)
            name = names[sh_name:end if end >= 0 else len(names)].decode("utf-8", "replace")
            by_index.append(name)
            out.setdefault(name, (sh_addr, sh_offset, sh_size, SH_TYPE_NAMES.get(sh_type, sh_type)))
            self._flags.setdefault(name, sh_flags)
            self._entsizes.setdefault(name, sh_entsize)
        for name, header in zip(by_index, headers):
            if 0 < header[5] < len(by_index):
                self._links.setdefault(name, by_index[header[5]])
        return out

    def get_section_info(self, name: str) -> Optional[Tuple[int, int, int, str]]:
        return self._sections.get(name)

    def section_link(self, name: str) -> Optional[str]:
        """The name of the section that `name`'s sh_link designates (a symbol table's string
        table, gABI "Section Header" Table 4-13), for ELF64 little-endian files."""
        self._sections  # noqa: B018 -- reading the headers fills _links
        return self._links.get(name)

    def section_flags(self, name: str) -> int:
        """sh_flags of section `name` (0 when there is no such section)."""
        self._sections  # noqa: B018 -- reading the headers fills _flags
        return self._flags.get(name, 0)

    def section_entsize(self, name: str) -> int:
        """sh_entsize of section `name` (0 when there is no such section, or the file is not
        ELF64 little-endian)."""
        self._sections  # noqa: B018 -- reading the headers fills _entsizes
        return self._entsizes.get(name, 0)

    def has_section(self, name: str) -> bool:
        info = self._sections.get(name)
        return info is not None and info[3] != "SHT_NOBITS"

    def section_bytes(self, name: str) -> Optional[memoryview]:
        """The raw bytes of a section (no copy), or None when absent or SHT_NOBITS."""
        info = self._sections.get(name)
        if info is None or info[3] == "SHT_NOBITS":
            return None
        _, off, size, _ = info
        return memoryview(self.data)[off:off + size]

    @cached_property
    def has_debug_info(self) -> bool:
        return self.has_section(".debug_info")

    @cached_property
    def first_load_vaddr(self) -> int:
        """p_vaddr of the PT_LOAD that maps file offset 0, page-aligned (the image's base)."""
        segs = self.load_segments
        if not segs:
            return 0
        return min(s[0] - s[2] for s in segs)

    @cached_property
    def debuglink(self) -> Optional[Tuple[str, int]]:
        """(file name, CRC32) from .gnu_debuglink (gdb manual, "Separate Debug Files")."""
        raw = self.section_bytes(".gnu_debuglink")
        if raw is None:
            return None
        raw = bytes(raw)
        nul = raw.find(b"\0")
        if nul < 0:
            return None
        crc_at = (nul + 4) & ~3
        if crc_at + 4 > len(raw):
            return None
        return raw[:nul].decode("utf-8", "surrogateescape"), struct.unpack_from("<I", raw, crc_at)[0]

    def close(self) -> None:
        if isinstance(self.data, mmap.mmap):
            try:
                self.data.close()
            except BufferError:
                pass
        self._file.close()


_CACHE: Dict[Tuple[str, float, int], Optional[ElfImage]] = {}


def open_image(path: str) -> Optional[ElfImage]:
    """An ElfImage for `path`, cached per (path, mtime, size); None when it is not a readable ELF."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not os.path.isfile(path) or st.st_size < 64:
        return None
    key = (os.path.realpath(path), st.st_mtime, st.st_size)
    if key not in _CACHE:
        try:
            with open(path, "rb") as f:
                magic = f.read(4)
            _CACHE[key] = ElfImage(path) if magic == b"\x7fELF" else None
        except Exception:
            _CACHE[key] = None
    return _CACHE[key]
