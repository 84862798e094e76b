"""
Crash bundles
=============

Open what ``coredump analyze`` is given — a core, a ``core.zst`` or a crash directory of an
artifact tree — as a plain core file on disk plus the analysis options that find the
bundled binaries (``files/<build-id>/<name>``) before anything on the local disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Optional, Tuple

from coredump.errors import CoreFormatError, MissingFileError

__all__ = ("CrashInput", "find_crash_input", "open_input", "decompress_to", "ZSTD_MAGIC")

# RFC 8878 §3.1.1: every zstd frame starts with the magic number 0xFD2FB528 (little-endian).
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CORE_NAMES = ("core.zst", "core")
FILES_DIR = "files"
CRASH_JSON = "crash.json"


@dataclass(frozen=True)
class CrashInput:
    """Where the pieces of one crash are: the core (maybe compressed), the bundled files
    directory and the crash.json written on the build machine (both may be None)."""

    core: str
    files_dir: Optional[str] = None
    crash_json: Optional[str] = None

    @property
    def compressed(self) -> bool:
        return is_zstd(self.core)


def is_zstd(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == ZSTD_MAGIC
    except OSError:
        return False


def _files_dir_for(crash_dir: str) -> Optional[str]:
    """The job's ``files/`` beside the crash directory (DESIGN.md artifact layout), or
    one inside it (a crash directory copied out on its own with its files)."""
    for cand in (os.path.join(os.path.dirname(os.path.abspath(crash_dir)), FILES_DIR),
                 os.path.join(crash_dir, FILES_DIR)):
        if os.path.isdir(cand):
            return cand
    return None


def find_crash_input(path: str) -> CrashInput:
    """Locate the core, files/ and crash.json for `path` (a core, core.zst or crash dir)."""
    if not os.path.exists(path):
        raise MissingFileError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        core = next((os.path.join(path, n) for n in CORE_NAMES if os.path.isfile(os.path.join(path, n))), None)
        if core is None:
            raise CoreFormatError(f"{path} is a directory without {' or '.join(CORE_NAMES)}")
        crash_dir = path
    else:
        core = path
        crash_dir = os.path.dirname(os.path.abspath(path))
        if not os.path.isfile(os.path.join(crash_dir, CRASH_JSON)):
            # A lone core (or core.zst): no bundle around it unless files/ sits beside it.
            files = os.path.join(crash_dir, FILES_DIR)
            return CrashInput(core, files if os.path.isdir(files) else None, None)
    crash_json = os.path.join(crash_dir, CRASH_JSON)
    return CrashInput(core, _files_dir_for(crash_dir),
                      crash_json if os.path.isfile(crash_json) else None)


def decompress_to(src: str, dst_file) -> int:
    """Stream-decompress the zstd file `src` into the open binary file `dst_file`;
    returns the number of bytes written. Memory stays bounded by zstd's window."""
    import zstandard

    def fail(reason: str) -> CoreFormatError:
        return CoreFormatError(f"{src} is zstd-compressed but cannot be decompressed: {reason}")

    try:
        with open(src, "rb") as fin:
            header = fin.read(18)  # RFC 8878 §3.1.1: a frame header is at most 18 bytes
            if header[:4] != ZSTD_MAGIC:
                raise fail("it does not start with a zstd frame (RFC 8878 magic number)")
            content_size = zstandard.get_frame_parameters(header).content_size
            fin.seek(0)
            _read, written = zstandard.ZstdDecompressor().copy_stream(fin, dst_file, write_size=1 << 20)
    except zstandard.ZstdError as exc:
        raise fail(str(exc)) from None
    # The frame header records the content size (compress_file and the zstd tool write it); a
    # stream cut short decompresses without an error, only shorter.
    if content_size not in (None, zstandard.CONTENTSIZE_UNKNOWN) and written < content_size:
        raise fail(f"it ends early ({written} of {content_size} bytes; the file is truncated)")
    if written == 0:
        raise fail("it holds no data")
    return written


def overrides_for(crash: CrashInput) -> Dict[str, Any]:
    """AnalyzeOptions fields that make the bundled files win over the local disk."""
    out: Dict[str, Any] = {}
    if crash.files_dir is not None:
        out["build_id_dirs"] = (os.path.abspath(crash.files_dir),)
    return out


@contextlib.contextmanager
def open_input(path: str) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """Yield ``(core_path, overrides)``: a plain core file (a temporary one, deleted on
    exit, when the input is compressed) and the AnalyzeOptions fields for its bundle.

    >>> with open_input(core) as (core_path, overrides):   # doctest: +SKIP
    ...     analyze_core(core_path, dataclasses.replace(options, **overrides))
    """
    crash = find_crash_input(path)
    overrides = overrides_for(crash)
    if crash.core.endswith(".zst") and not crash.compressed:
        raise CoreFormatError(f"{crash.core} is zstd-compressed but cannot be decompressed: its name ends "
                              "in .zst but it does not start with a zstd frame (RFC 8878 magic number)")
    if not crash.compressed:
        yield crash.core, overrides
        return
    tmpdir = tempfile.mkdtemp(prefix="coredump-core-")
    try:
        core_path = os.path.join(tmpdir, "core")
        with open(core_path, "wb") as out:
            decompress_to(crash.core, out)
        yield core_path, overrides
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)

