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
           "CompressedSectionError", "InflatingStream", "inflating_stream")

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


# Compressed bytes fed to the decompressor per step of an InflatingStream.
_STEP = 64 << 10


class InflatingStream:
    """A compressed section's contents as a seekable read-only stream (what pyelftools
    reads DWARF through) decompressed only as far as something reads: a lookup that needs
    one compile unit near the start of libc's 5.8 MB ``.debug_info`` inflates that much.
    Never more than the `size` the header declares; a stream that ends short of it, or runs
    past it, raises CompressedSectionError when read there."""

    def __init__(self, payload, size: int, zstd: bool = False, limit: int = MAX_DECOMPRESSED):
        _check_size(size, limit)
        self.size = size
        self._buf = bytearray()
        self._pos = 0
        if zstd:
            import zstandard  # a dependency; imported here, off the run wrapper's path

            self._reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(bytes(payload)))
            self._error = zstandard.ZstdError
        else:
            self._reader = None
            self._payload, self._fed, self._zlib = payload, 0, zlib.decompressobj()
            self._error = zlib.error

    def _fill(self, end: int) -> None:
        """Decompress until the contents hold `end` bytes (or all of them)."""
        end = min(end, self.size)
        try:
            while len(self._buf) < end:
                if self._reader is not None:
                    more = self._reader.read(max(_STEP, end - len(self._buf)))
                else:
                    more = self._inflate_step()
                if not more:
                    raise CompressedSectionError(f"decompresses to {len(self._buf)} bytes, not the {self.size} "
                                                 "its header says")
                self._buf += more
        except self._error as exc:
            raise CompressedSectionError(f"{'zlib' if self._reader is None else 'zstd'}: {exc}") from None
        if len(self._buf) > self.size:
            raise CompressedSectionError(f"decompresses to more than the {self.size} bytes its header says")

    def _inflate_step(self) -> bytes:
        """The next bytes zlib gives (b"" at the end of its stream or of the input)."""
        d = self._zlib
        room = self.size + 1 - len(self._buf)  # one byte more than claimed, to see a lie
        while True:
            if d.unconsumed_tail:
                out = d.decompress(d.unconsumed_tail, room)
            elif d.eof or self._fed >= len(self._payload):
                return b""
            else:
                chunk = bytes(self._payload[self._fed:self._fed + _STEP])
                self._fed += len(chunk)
                out = d.decompress(chunk, room)
            if out:
                return out

    # -- the file-object methods pyelftools uses --------------------------------------------

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        end = self.size if n is None or n < 0 else self._pos + n
        self._fill(end)
        out = bytes(self._buf[self._pos:end])
        self._pos += len(out)
        return out

    def window(self, start: int, end: int) -> bytes:
        """Bytes [start, end) of the contents (fewer past their end), the position untouched."""
        self._fill(end)
        return bytes(self._buf[start:end])

    def getbuffer(self) -> memoryview:
        """All of the contents (BytesIO.getbuffer's answer)."""
        self._fill(self.size)
        return memoryview(bytes(self._buf))


def inflating_stream(raw, gnu: bool, limit: int = MAX_DECOMPRESSED) -> InflatingStream:
    """The InflatingStream of a section whose raw bytes are `raw`: ``SHF_COMPRESSED`` (an
    Elf64_Chdr) or, with `gnu`, a ``.zdebug_*`` section."""
    if gnu:
        if len(raw) < 12 or bytes(raw[:4]) != b"ZLIB":
            raise CompressedSectionError("no ZLIB header")
        return InflatingStream(raw[12:], struct.unpack_from(">Q", raw, 4)[0], limit=limit)
    if len(raw) < _CHDR64.size:
        raise CompressedSectionError("section shorter than its Elf64_Chdr")
    ch_type, _, ch_size, _ = _CHDR64.unpack_from(raw, 0)
    if ch_type not in (ELFCOMPRESS_ZLIB, ELFCOMPRESS_ZSTD):
        raise CompressedSectionError(f"unknown ch_type {ch_type}")
    return InflatingStream(raw[_CHDR64.size:], ch_size, zstd=ch_type == ELFCOMPRESS_ZSTD, limit=limit)
