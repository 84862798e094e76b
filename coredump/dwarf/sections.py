"""
DWARF sections
==============

The sections of an ELF64 little-endian image that ``coredump.dwarf.dwarfinfo`` reads, each read only when
something reads them: ``ELFFile.get_dwarf_info`` copies (and decompresses) every DWARF
section first, 10 MB and ~60 ms for libc's separate debug file, where one lookup reads a few
of them (``.debug_loclists``, the largest after ``.debug_info``, not at all). The sections
come from the image's own section table (``ElfImage``, read with struct), so no ``ELFFile``
is built. Compressed sections (gABI ``SHF_COMPRESSED``, GNU ``.zdebug_*``) are decompressed
by ``coredump.elf.compressed``, within its size bound, zstd included.
"""

from __future__ import annotations

import io
import struct

from coredump.elf.compressed import SHF_COMPRESSED, CompressedSectionError, inflating_stream
from coredump.elf.image import ElfImage

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Optional

__all__ = ("LazySection", "section", "unit_bytes", "window", "cstring", "DWARF_SECTIONS", "MACHINE_ARCH")

# The sections DWARFInfo takes, by its parameter names (elftools.elf.elffile.get_dwarf_info).
DWARF_SECTIONS = {
    "debug_info_sec": ".debug_info", "debug_aranges_sec": ".debug_aranges", "debug_abbrev_sec": ".debug_abbrev",
    "debug_str_sec": ".debug_str", "debug_line_sec": ".debug_line", "debug_frame_sec": ".debug_frame",
    "debug_loc_sec": ".debug_loc", "debug_ranges_sec": ".debug_ranges", "debug_pubtypes_sec": ".debug_pubtypes",
    "debug_pubnames_sec": ".debug_pubnames", "debug_addr_sec": ".debug_addr",
    "debug_str_offsets_sec": ".debug_str_offsets", "debug_line_str_sec": ".debug_line_str",
    "debug_loclists_sec": ".debug_loclists", "debug_rnglists_sec": ".debug_rnglists", "debug_sup_sec": ".debug_sup",
    "gnu_debugaltlink_sec": ".gnu_debugaltlink", "debug_types_sec": ".debug_types", "eh_frame_sec": ".eh_frame",
}
# pyelftools' ELFFile.get_machine_arch() names of the machines we analyse (the register
# names of its DWARF descriptions).
MACHINE_ARCH = {"EM_X86_64": "x64", "EM_AARCH64": "AArch64"}
_CHDR64_SIZE = struct.Struct("<IIQ")  # Elf64_Chdr: ch_type, ch_reserved, ch_size


class LazySection:
    """What pyelftools' DebugSectionDescriptor holds (stream, name, global_offset, size,
    address), the stream made on first use. `size` is the contents' size, known from the
    compression header without decompressing."""

    __slots__ = ("_image", "_raw_name", "_compressed", "_stream", "name", "global_offset", "size", "address")

    def __init__(self, image: ElfImage, name: str, raw_name: str):
        sh_addr, sh_offset, sh_size, _ = image.get_section_info(raw_name)
        self._image, self._raw_name, self._stream = image, raw_name, None
        self._compressed = raw_name.startswith(".z") or bool(image.section_flags(raw_name) & SHF_COMPRESSED)
        self.name, self.global_offset, self.address = raw_name, sh_offset, sh_addr
        self.size = _contents_size(image.section_bytes(raw_name), raw_name) if self._compressed else sh_size

    @property
    def stream(self):
        """A BytesIO of the contents, or an InflatingStream (``coredump.elf.compressed``)
        that decompresses as far as it is read."""
        if self._stream is None:
            raw = self._image.section_bytes(self._raw_name)
            if raw is None:
                raise CompressedSectionError(f"{self._raw_name}: no contents")
            if self._compressed:
                self._stream = inflating_stream(raw, gnu=self._raw_name.startswith(".z"))
            else:
                self._stream = io.BytesIO(bytes(raw))
        return self._stream


def _contents_size(raw, raw_name: str) -> int:
    """The uncompressed size a compressed section's header declares (0 when unreadable: its
    stream then fails when read)."""
    if raw is None:
        return 0
    if raw_name.startswith(".z"):  # "ZLIB", then a big-endian 64-bit size
        return struct.unpack_from(">Q", raw, 4)[0] if len(raw) >= 12 and bytes(raw[:4]) == b"ZLIB" else 0
    return _CHDR64_SIZE.unpack_from(raw, 0)[2] if len(raw) >= _CHDR64_SIZE.size else 0


def section(image: ElfImage, name: str) -> Optional[LazySection]:
    """`name`'s section (or its ``.zdebug_*`` twin), None when absent or SHT_NOBITS (a
    separate debug file keeps the stripped file's headers so)."""
    for raw_name in (name, ".z" + name[1:]) if name.startswith(".debug_") else (name,):
        if image.has_section(raw_name):
            return LazySection(image, name, raw_name)
    return None


def unit_bytes(section, offset: int) -> bytes:
    """The unit (a compile unit, a line program) at `offset` of a section, from its initial
    length (DWARF 5 §7.4: 4 bytes, or 0xffffffff and 8 more) to its end: a compressed
    section is decompressed only that far."""
    head = window(section, offset, offset + 12)
    if len(head) < 4:
        raise ValueError(f"unit at {offset:#x} starts past the end of {section.name}")
    length = struct.unpack_from("<I", head)[0]
    if length == 0xFFFFFFFF:
        length = 8 + struct.unpack_from("<Q", head, 4)[0] if len(head) == 12 else 0
    return window(section, offset, offset + 4 + length)


def window(section, start: int, end: int) -> bytes:
    """Bytes [start, end) of a section's contents (fewer past its end): a compressed section
    is decompressed only that far."""
    stream = section.stream
    if hasattr(stream, "window"):
        return stream.window(start, end)
    return bytes(stream.getbuffer()[start:end])  # a BytesIO: all of it is there already


def cstring(section, offset: int) -> Optional[bytes]:
    """The NUL-terminated string at `offset` of a section (.debug_str, .debug_line_str), without
    its NUL; None when no NUL ends it before the section does (as pyelftools'
    parse_cstring_from_stream)."""
    parts = []
    while True:
        chunk = window(section, offset, offset + 256)
        nul = chunk.find(b"\0")
        if nul >= 0:
            parts.append(chunk[:nul])
            return b"".join(parts)
        if len(chunk) < 256:
            return None
        parts.append(chunk)
        offset += 256
