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
import struct

from coredump.elf.phdrs import read_phdrs
from coredump.errors import CoreFormatError, MissingFileError
from coredump.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Any, Dict, Iterator, Optional, Tuple

__all__ = ("CrashInput", "find_crash_input", "open_input", "decompress_to", "stored_source_files", "ZSTD_MAGIC")

# RFC 8878 §3.1.1: every zstd frame starts with the magic number 0xFD2FB528 (little-endian).
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CORE_NAMES = ("core.zst", "core")
FILES_DIR = "files"
CRASH_JSON = "crash.json"
# Bytes a core.zst may hold past the end its program headers describe: gdb's gcore and
# objcopy put the section name table there, before the section headers.
_TRAILER_SLACK = 1 << 20
# The first bytes read for the ELF and program headers: 65535 Elf64_Phdr take 3.5 MiB.
_HEAD_SIZE = 4 << 20


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


def decompress_to(src: str, dst_file, max_size: Optional[int] = None) -> int:
    """Stream-decompress the zstd file `src` into the open binary file `dst_file`;
    returns the number of bytes written. Memory stays bounded by zstd's window, and the
    output by the first limit met: `max_size` (``--max-core-size``; by default the space
    free where `dst_file` is), the frame's Frame_Content_Size when its header has one
    (RFC 8878 §3.1.1.1.4), and the end of the last segment the core's own program headers
    describe. Past a limit it stops with an error, having written at most the limit."""
    import zstandard

    def fail(reason: str) -> CoreFormatError:
        return CoreFormatError(f"{src} is zstd-compressed but cannot be decompressed: {reason}")

    limit, why = (max_size, "--max-core-size") if max_size is not None else _free_space(dst_file)
    try:
        with open(src, "rb") as fin:
            header = fin.read(18)  # RFC 8878 §3.1.1: a frame header is at most 18 bytes
            if header[:4] != ZSTD_MAGIC:
                raise fail("it does not start with a zstd frame (RFC 8878 magic number)")
            content_size = zstandard.get_frame_parameters(header).content_size
            if content_size in (None, zstandard.CONTENTSIZE_UNKNOWN):
                content_size = None
            elif content_size > limit:
                raise fail(f"its frame header says it holds {content_size} bytes, over the limit of {limit} "
                           f"bytes ({why})")
            else:
                limit, why = content_size, "the content size its frame header declares"
            fin.seek(0)
            written = _copy_within(zstandard.ZstdDecompressor().stream_reader(fin, read_across_frames=True),
                                   dst_file, limit, why, fail)
    except zstandard.ZstdError as exc:
        raise fail(str(exc)) from None
    # The frame header records the content size (compress_file and the zstd tool write it); a
    # stream cut short decompresses without an error, only shorter.
    if content_size is not None and written < content_size:
        raise fail(f"it ends early ({written} of {content_size} bytes; the file is truncated)")
    if written == 0:
        raise fail("it holds no data")
    return written


def _copy_within(reader, dst_file, limit: int, why: str, fail) -> int:
    """Copy what `reader` decompresses into `dst_file` until its end or `limit` bytes; one
    byte more is an error. The first bytes must be an ELF header, and once they hold the
    core's program headers, the limit drops to where the core ends."""
    written = 0
    head = b""
    while True:
        chunk = reader.read(1 << 20)
        if not chunk:
            return written
        if len(head) < _HEAD_SIZE:
            head += chunk[:_HEAD_SIZE - len(head)]
            if len(head) >= 4 and head[:4] != b"\x7fELF":
                raise fail("what it holds is not an ELF file")
            end = _core_end(head)
            if end is not None and end < limit:
                limit, why = end, "where the last segment its ELF program headers describe ends"
        if written + len(chunk) > limit:
            dst_file.write(chunk[:max(0, limit - written)])
            raise fail(f"it decompresses to more than {limit} bytes ({why})")
        dst_file.write(chunk)
        written += len(chunk)


def _core_end(head: bytes) -> Optional[int]:
    """The size of the ELF core whose first bytes are `head`, from its headers: the kernel
    writes the ELF header, the program headers, the notes and each PT_LOAD's p_filesz bytes
    at its p_offset, then, with PN_XNUM, section 0 at e_shoff (fs/binfmt_elf.c
    elf_core_dump), give or take ``_TRAILER_SLACK``. None when `head` does not hold them all."""
    import io

    from coredump.elf.phdrs import EHDR, PHDR, SHDR

    try:
        ehdr, phdrs = read_phdrs(io.BytesIO(head), "core")
    except (CoreFormatError, struct.error):
        return None
    fields = EHDR.unpack(ehdr)
    e_phoff, e_shoff, e_shnum = fields[5], fields[6], fields[12]
    ends = [e_phoff + PHDR.size * len(phdrs), e_shoff + SHDR.size * e_shnum if e_shoff else 0]
    return max(ends + [ph.p_offset + ph.p_filesz for ph in phdrs]) + _TRAILER_SLACK


def _free_space(dst_file) -> Tuple[int, str]:
    """The bytes free to an unprivileged writer on `dst_file`'s file system (statvfs(3)
    f_bavail): a core that would fill the disk is refused before it does."""
    st = os.fstatvfs(dst_file.fileno())
    return st.f_bavail * st.f_frsize + dst_file.tell(), "the space free in the temporary directory (TMPDIR)"


def stored_source_files(path: str) -> Tuple[Optional[str], Dict[str, str]]:
    """(the directory holding ``sources/``, {source_path: stored copy}) that the crash.json
    beside `path` records (the artifact directory, or the crash directory copied out on its
    own); (None, {}) without."""
    from coredump.errors import StorageError
    from coredump.jsondoc import read_document
    from coredump.symbols.sources import SOURCES_DIR, stored_sources

    crash = find_crash_input(path)
    if crash.crash_json is None:
        return None, {}
    try:
        doc = read_document(crash.crash_json)
    except StorageError:
        return None, {}  # the analysis itself does not need crash.json: no stored sources
    crash_dir = os.path.dirname(os.path.abspath(crash.crash_json))
    parent = os.path.dirname(crash_dir)
    root = parent if os.path.isdir(os.path.join(parent, SOURCES_DIR)) else crash_dir
    return root, stored_sources(doc, root)


def overrides_for(crash: CrashInput) -> Dict[str, Any]:
    """AnalyzeOptions fields that make the bundled files win over the local disk."""
    out: Dict[str, Any] = {}
    if crash.files_dir is not None:
        out["build_id_dirs"] = (os.path.abspath(crash.files_dir),)
    return out


@contextlib.contextmanager
def open_input(path: str, max_size: Optional[int] = None) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """Yield ``(core_path, overrides)``: a plain core file (a temporary one, deleted on
    exit, when the input is compressed, within `max_size` bytes: ``decompress_to``) and the
    AnalyzeOptions fields for its bundle.

    >>> with open_input(core) as (core_path, overrides):   # doctest: +SKIP
    ...     analyze_core(core_path, replace(options, **overrides))
    """
    crash = find_crash_input(path)
    overrides = overrides_for(crash)
    if crash.core.endswith(".zst") and not crash.compressed:
        raise CoreFormatError(f"{crash.core} is zstd-compressed but cannot be decompressed: its name ends "
                              "in .zst but it does not start with a zstd frame (RFC 8878 magic number)")
    if not crash.compressed:
        yield crash.core, overrides
        return
    import shutil  # with tempfile, ~4 ms of start-up that only a compressed core needs
    import tempfile

    tmpdir = tempfile.mkdtemp(prefix="coredump-core-")
    try:
        core_path = os.path.join(tmpdir, "core")
        with open(core_path, "wb") as out:
            decompress_to(crash.core, out, max_size)
        yield core_path, overrides
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)

