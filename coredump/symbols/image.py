"""
ELF images
==========

An ELF file on disk (executable, shared library or separate debug file), memory-mapped and
parsed lazily with pyelftools: nothing is read until a property asks for it.
"""

from __future__ import annotations

import io
import mmap
import os
import struct
from functools import cached_property
from typing import Dict, List, Optional, Tuple

__all__ = ("ElfImage", "open_image", "LoadSegment", "read_build_id_from_notes")

LoadSegment = Tuple[int, int, int, int, int]  # p_vaddr, p_memsz, p_offset, p_filesz, p_flags

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
        if ntype == NT_GNU_BUILD_ID and data[name_at:name_at + namesz].rstrip(b"\0") == b"GNU":
            return bytes(data[desc_at:desc_at + descsz]).hex()
        pos = desc_at + ((descsz + 3) & ~3)
    return None


class ElfImage:
    """A mapped ELF file. ``data`` is the whole file as an mmap (never read whole)."""

    def __init__(self, path: str, data: Optional[bytes] = None):
        """Map the file at `path`; or, with `data`, wrap bytes already in memory (the vDSO,
        or an ELF image copied out of a core) under the display name `path`."""
        from elftools.elf.elffile import ELFFile

        self.path = path
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
            self.elf = ELFFile(self._file)
        except Exception:
            self._file.close()
            raise
        self.e_type: str = self.elf["e_type"]
        self.e_machine: str = self.elf["e_machine"]

    @cached_property
    def load_segments(self) -> List[LoadSegment]:
        out = []
        for seg in self.elf.iter_segments():
            h = seg.header
            if h.p_type == "PT_LOAD":
                out.append((h.p_vaddr, h.p_memsz, h.p_offset, h.p_filesz, h.p_flags))
        return out

    @cached_property
    def build_id(self) -> Optional[str]:
        for seg in self.elf.iter_segments():
            h = seg.header
            if h.p_type == "PT_NOTE":
                found = read_build_id_from_notes(self.data[h.p_offset:h.p_offset + h.p_filesz])
                if found:
                    return found
        sec = self.elf.get_section_by_name(".note.gnu.build-id")
        if sec is not None and sec["sh_type"] != "SHT_NOBITS":
            return read_build_id_from_notes(self.section_bytes(".note.gnu.build-id") or b"")
        return None

    @cached_property
    def _sections(self) -> Dict[str, Tuple[int, int, int, str]]:
        """name -> (sh_addr, sh_offset, sh_size, sh_type) for every section."""
        out: Dict[str, Tuple[int, int, int, str]] = {}
        try:
            for sec in self.elf.iter_sections():
                out.setdefault(sec.name, (sec["sh_addr"], sec["sh_offset"], sec["sh_size"], sec["sh_type"]))
        except Exception:
            pass
        return out

    def get_section_info(self, name: str) -> Optional[Tuple[int, int, int, str]]:
        return self._sections.get(name)

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

    def file_offset_to_vaddr(self, offset: int) -> Optional[int]:
        for vaddr, _memsz, off, filesz, _ in self.load_segments:
            if off <= offset < off + max(filesz, 1):
                return vaddr + (offset - off)
        return None

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
