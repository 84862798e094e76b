"""
Compressed sections
===================

The contents of a section compressed as the gABI's ``SHF_COMPRESSED`` ("Compressed
Sections": an ``Elf64_Chdr``, then zlib or zstd data) or as GNU's older ``.zdebug_*``
sections ("ZLIB", a big-endian 64-bit size, then zlib data). The Go linker compresses its
DWARF, ``.debug_frame`` included, one way or the other.
"""

from __future__ import annotations

import io
import struct
import zlib

__all__ = ("SHF_COMPRESSED", "MAX_DECOMPRESSED", "decompress_chdr", "decompress_zdebug", "section_contents",
           "CompressedSectionError")

# gABI sh_flags bit and Elf64_Chdr ch_type values.
SHF_COMPRESSED = 0x800
ELFCOMPRESS_ZLIB, ELFCOMPRESS_ZSTD = 1, 2
_CHDR64 = struct.Struct("<IIQQ")  # ch_type, ch_reserved, ch_size, ch_addralign
# The size a compressed section may claim: a hostile ch_size must not make us allocate it.
MAX_DECOMPRESSED = 256 << 20


class CompressedSectionError(Exception):
    """A compressed section whose header or data cannot be decoded within the bounds."""


def decompress_chdr(raw, limit: int = MAX_DECOMPRESSED) -> bytes:
    """The contents of an ``SHF_COMPRESSED`` ELF64 little-endian section whose raw bytes are `raw`."""
    if len(raw) < _CHDR64.size:
        raise CompressedSectionError("section shorter than its Elf64_Chdr")
    ch_type, _, ch_size, _ = _CHDR64.unpack_from(raw, 0)
    payload = raw[_CHDR64.size:]
    if ch_type == ELFCOMPRESS_ZLIB:
        return _inflate(payload, ch_size, limit)
    if ch_type == ELFCOMPRESS_ZSTD:
        return _unzstd(payload, ch_size, limit)
    raise CompressedSectionError(f"unknown ch_type {ch_type}")


def decompress_zdebug(raw, limit: int = MAX_DECOMPRESSED) -> bytes:
    """The contents of a GNU ``.zdebug_*`` section (binutils' "ZLIB" header)."""
    if len(raw) < 12 or bytes(raw[:4]) != b"ZLIB":
        raise CompressedSectionError("no ZLIB header")
    size, = struct.unpack_from(">Q", raw, 4)
    return _inflate(raw[12:], size, limit)


def _check_size(size: int, limit: int) -> None:
    if size > limit:
        raise CompressedSectionError(f"claims {size} bytes uncompressed (more than {limit})")


def _inflate(payload, size: int, limit: int) -> bytes:
    _check_size(size, limit)
    try:
        out = zlib.decompressobj().decompress(bytes(payload), size + 1)
    except zlib.error as exc:
        raise CompressedSectionError(f"zlib: {exc}") from None
    return _exact(out, size)


def _unzstd(payload, size: int, limit: int) -> bytes:
    _check_size(size, limit)
    import zstandard  # a dependency; imported here, off the run wrapper's path

    try:  # one byte more than claimed, to see a section that lies about its size
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(bytes(payload))) as reader:
            out = reader.read(size + 1)
    except zstandard.ZstdError as exc:
        raise CompressedSectionError(f"zstd: {exc}") from None
    return _exact(out, size)


def _exact(out: bytes, size: int) -> bytes:
    if len(out) != size:
        raise CompressedSectionError(f"decompresses to {len(out)} bytes, not the {size} its header says")
    return out


def section_contents(image, name: str, limit: int = MAX_DECOMPRESSED):
    """The contents of section `name` of an ``ElfImage``: its bytes in place, or decompressed
    when it is ``SHF_COMPRESSED`` or only its ``.zdebug_*`` twin is there; None when neither
    is there or the compressed data cannot be decoded."""
    raw = image.section_bytes(name)
    try:
        if raw is not None:
            return decompress_chdr(raw, limit) if image.section_flags(name) & SHF_COMPRESSED else raw
        if name.startswith(".debug_"):
            raw = image.section_bytes(".z" + name[1:])
            return decompress_zdebug(raw, limit) if raw is not None else None
    except CompressedSectionError:
        return None
    return None
