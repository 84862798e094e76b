"""
Compression
===========

Stream a core into a zstd file on every CPU, then prove the copy by decompressing it
and comparing hashes, so the original can be removed without losing anything.
"""

from __future__ import annotations

import hashlib
import os

from coredump.errors import StorageError
from coredump.record import dataclass

__all__ = ("Compressed", "compress_file", "verify_compressed", "decompress_file")

# zstd level 3 is the library default; with threads=-1 it streams well above 200 MB/s.
DEFAULT_LEVEL = 3
CHUNK = 4 << 20


@dataclass(frozen=True)
class Compressed:
    """The result of ``compress_file``: sizes and the sha256 of the original."""

    src: str
    dst: str
    size: int
    compressed_size: int
    sha256: str
    # sha256 of the compressed file itself (what an upload stores and a fetch gets back).
    compressed_sha256: str = ""


class _HashingWriter:
    """A file wrapper that hashes what ``copy_stream`` writes to it."""

    def __init__(self, f):
        self._f = f
        self.hash = hashlib.sha256()

    def write(self, data) -> int:
        self.hash.update(data)
        return self._f.write(data)


class _HashingReader:
    """A file wrapper that hashes what ``copy_stream`` reads from it, telling `progress`
    (done, total) how far it got."""

    def __init__(self, f, total: int = 0, progress=None):
        self._f = f
        self.hash = hashlib.sha256()
        self.size = 0
        self.total, self.progress = total, progress

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.hash.update(data)
        self.size += len(data)
        if self.progress is not None:
            self.progress(self.size, self.total)
        return data


def compress_file(src: str, dst: str, level: int = DEFAULT_LEVEL, threads: int = -1, mode: int = 0o600,
                  label: str | None = None, progress=None) -> Compressed:
    """Compress `src` into `dst` (zstd frame, content size recorded, permission bits
    `mode`); StorageError on failure, naming `src` as `label` (a /proc/self/fd/N source
    is named by the path it was found at). `progress(done, total)` follows the bytes read.

    Memory stays bounded whatever the core's size: zstd's multithreaded streaming mode
    holds a few job buffers, never the whole input.
    """
    import zstandard  # not on the run wrapper's success path

    try:
        size = os.path.getsize(src)
        cctx = zstandard.ZstdCompressor(level=level, threads=threads, write_content_size=True,
                                        write_checksum=True)
        with open(src, "rb") as fin, open(_create(dst, mode), "wb") as fout:
            reader, writer = _HashingReader(fin, size, progress), _HashingWriter(fout)
            _, written = cctx.copy_stream(reader, writer, size=size, read_size=CHUNK, write_size=CHUNK)
            fout.flush()
            os.fsync(fout.fileno())
    except (OSError, zstandard.ZstdError) as exc:
        _unlink_quietly(dst)
        raise StorageError(f"cannot compress {label or src} into {dst}: {exc}") from exc
    return Compressed(src, dst, reader.size, written, reader.hash.hexdigest(),
                      writer.hash.hexdigest())


def _create(dst: str, mode: int) -> int:
    """A descriptor of `dst`, created or truncated, with exactly `mode` (open(2)'s mode is
    masked by the umask; O_NOFOLLOW: never written through a symlink planted there)."""
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
    except OSError:
        os.close(fd)
        raise
    return fd


def verify_compressed(dst: str, sha256: str, size: int) -> bool:
    """Whether decompressing `dst` gives `size` bytes hashing to `sha256` (streamed)."""
    import zstandard

    h = hashlib.sha256()
    total = 0
    try:
        with open(dst, "rb") as f:
            reader = zstandard.ZstdDecompressor().stream_reader(f, read_size=CHUNK)
            for block in iter(lambda: reader.read(CHUNK), b""):
                h.update(block)
                total += len(block)
    except (OSError, zstandard.ZstdError):
        return False
    return total == size and h.hexdigest() == sha256


def decompress_file(src: str, dst: str) -> None:
    """Decompress a zstd file (for example an artifact's core.zst) into `dst`."""
    import zstandard

    with open(src, "rb") as fin, open(dst, "wb") as fout:
        zstandard.ZstdDecompressor().copy_stream(fin, fout, read_size=CHUNK, write_size=CHUNK)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
