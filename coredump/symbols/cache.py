"""
Parse cache
===========

Parsed symbol tables, DWARF and CFI indexes kept on disk per GNU build-id, so that analysing
a second core of the same binaries skips the parsing (as debuginfod and gdb's index cache do).

Entries live under ``$XDG_CACHE_HOME/coredump`` (default ``~/.cache/coredump``) as
``v<CACHE_VERSION>/<xx>/<rest-of-key>.<kind>.pickle``. The key (``image_key``) is not the
build-id alone: a build-id is what a file says about itself, and a copy of a binary with one
symbol renamed keeps it (and its size). The key adds what tells two files apart, so an entry
made from one file never answers for another; a ``kind`` names the format of what is stored
and must change (``"cfi.2"``) when that format does. Writes go to a temporary file that ``os.replace``
renames into place, so concurrent writers never leave a half-written entry; an unreadable or
corrupted entry reads as a miss. ``COREDUMP_CACHE=0`` turns the cache off.

Entries are pickles of plain data (tuples, lists, dicts, numbers, strings, frozensets, arrays),
read by an unpickler that resolves no global but ``array``'s: an entry planted by someone else
can fail to load, never run code. The cache is also off when its directory is not the user's
own (owned by another user, or writable by group or others; a world-writable parent such as
``/tmp`` only with its sticky bit), as ssh refuses a ``~/.ssh`` others can write.
"""

from __future__ import annotations

import _thread
import functools
import io
import itertools
import os
import stat
import weakref

try:  # pickle's C half: pickle.py itself imports re (~5 ms with enum) for nothing an entry uses
    from _pickle import Unpickler, UnpicklingError, dumps
except ImportError:  # an interpreter without the accelerator
    from pickle import Unpickler, UnpicklingError, dumps

from coredump.digest import sha256

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Any, Dict, Optional

__all__ = ("CACHE_VERSION", "cache_dir", "enabled", "get", "put", "flush", "entry_path", "image_key")

CACHE_VERSION = 1
_MAGIC = "coredump-cache"
_PROTOCOL = 5  # pickle.HIGHEST_PROTOCOL of Python 3.8+
# What may name an entry's file: lower-case hex (a SHA-256), and a kind's letters.
_HEX = "0123456789abcdef"
_KIND_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"


def enabled() -> bool:
    return os.environ.get("COREDUMP_CACHE", "1") not in ("0", "off", "no", "false")


def cache_dir() -> str:
    """``$XDG_CACHE_HOME/coredump`` (XDG Base Directory spec), else ``~/.cache/coredump``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "coredump")


def image_key(image) -> Optional[str]:
    """The key of the entries made from `image` (an ``ElfImage``): a SHA-256 of its build-id,
    the identity of its file and its ELF, program and section headers; None without a build-id.

    Two files that exist together differ in (st_dev, st_ino); the files one inode holds over
    time differ in st_ctime_ns, which the kernel sets on every change and no user can set
    (utimensat(2) sets st_mtime only), or else in st_size, st_mtime_ns or their headers. Bytes
    in memory (the vDSO, an image copied out of a core) are keyed by all their bytes."""
    try:
        return _KEYS[image]
    except KeyError:
        pass
    key = None
    if image.build_id:
        digest = sha256(f"{image.build_id}\0".encode())
        st = image.fstat()
        if st is None:
            digest.update(image.data)
        else:
            digest.update(f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}\0".encode())
            for start, size in _header_ranges(image):
                digest.update(image.data[start:start + size])
        key = digest.hexdigest()
    _KEYS[image] = key
    return key


def _header_ranges(image):
    """(offset, size) of the ELF header and of the program and section header tables (gABI
    "ELF Header": e_phoff/e_phentsize/e_phnum, e_shoff/e_shentsize/e_shnum), each at most
    what 65535 entries of 64 bytes take."""
    ehdr = image.ehdr
    yield 0, 64
    for off, entsize, num in ((ehdr.e_phoff, ehdr.e_phentsize, ehdr.e_phnum),
                              (ehdr.e_shoff, ehdr.e_shentsize, ehdr.e_shnum)):
        yield off, min(entsize * num, 0xFFFF * 64)


_KEYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def entry_path(build_id: str, kind: str) -> Optional[str]:
    """Where the entry lives, or None when the build-id or kind cannot name a file safely."""
    if not _spelled(build_id, _HEX, 8, 128) or not _spelled(kind, _KIND_CHARS, 1, 64):
        return None
    return os.path.join(cache_dir(), f"v{CACHE_VERSION}", build_id[:2], f"{build_id[2:]}.{kind}.pickle")



def _spelled(text, chars: str, least: int, most: int) -> bool:
    """`text` is a str of `least` to `most` of `chars` (str.strip leaves nothing of it)."""
    return isinstance(text, str) and least <= len(text) <= most and not text.strip(chars)


def get(build_id: Optional[str], kind: str) -> Any:
    """The object stored for (build_id, kind), or None on a miss, a corrupted entry, or when
    the cache is off."""
    path = entry_path(build_id, kind) if build_id and enabled() else None
    if path is None:
        return None
    try:
        blob = _PENDING.get(path)  # deferred (put with wait=False), not yet on disk
        if blob is None:
            if not _trusted_dir(cache_dir()):
                return None
            with open(path, "rb") as f:
                blob = f.read()
        magic, version, got_id, got_kind, obj = _DataUnpickler(io.BytesIO(blob)).load()
    except Exception:  # missing, truncated, corrupted, from another Python, or not plain data: a miss
        return None
    if (magic, version, got_id, got_kind) != (_MAGIC, CACHE_VERSION, build_id, kind):
        return None
    return obj


def put(build_id: Optional[str], kind: str, obj: Any, wait: bool = True) -> None:
    """Store `obj` for (build_id, kind); failures (read-only home, full disk) are ignored.

    With ``wait=False`` the object is pickled now and written later: at interpreter exit
    (after the report is out), by ``flush`` sooner, or as soon as more than
    ``_PENDING_MAX`` bytes wait. The first analysis of a binary writes a dozen entries, and
    filling the cache must not make it slower than running without one: a writer thread did
    the writes beside the analysis, but cost more CPU than the writes (the import of
    threading, its start, the GIL handed to and fro): 6-15 ms of a 0.2 s cold analysis of a
    small C or C++ program, against 1-2 ms for the writes themselves."""
    path = entry_path(build_id, kind) if build_id and enabled() else None
    if path is None:
        return
    try:
        blob = dumps((_MAGIC, CACHE_VERSION, build_id, kind, obj), protocol=_PROTOCOL)
    except Exception:
        return
    if wait:
        _write(path, blob)
        return
    global _AT_EXIT
    with _LOCK:
        _PENDING[path] = blob
        full = sum(map(len, _PENDING.values())) > _PENDING_MAX
        if not _AT_EXIT:
            import atexit

            atexit.register(flush)
            _AT_EXIT = True
    if full:
        flush()


def flush() -> None:
    """Write every deferred entry now."""
    while True:
        with _LOCK:
            if not _PENDING:
                return
            path = next(iter(_PENDING))
            blob = _PENDING[path]
        _write(path, blob)
        with _LOCK:
            if _PENDING.get(path) is blob:
                del _PENDING[path]


class _DataUnpickler(Unpickler):
    """Plain data only: the one global an entry may name is ``array``'s reconstructor."""

    _ALLOWED = {("array", "array"), ("array", "_array_reconstructor")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise UnpicklingError(f"{module}.{name} is not plain data")
        return super().find_class(module, name)


@functools.lru_cache(maxsize=8)
def _trusted_dir(path: str) -> bool:
    """True when `path` is ours and others cannot write it or replace it: owned by us (or
    missing: we create it 0700), not group/other-writable, and its parent owned by us or
    root and either not writable by others or sticky (``/tmp``)."""
    uid = os.geteuid()
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError:
        return False
    if st is not None and (st.st_uid != uid or st.st_mode & 0o022):
        return False
    try:
        parent = os.stat(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return st is None  # nothing there yet to trust or distrust
    if parent.st_uid not in (uid, 0):
        return False
    return not parent.st_mode & 0o022 or bool(parent.st_mode & stat.S_ISVTX)


def _write(path: str, blob: bytes) -> None:
    """One exclusive create of a per-process temporary name, the bytes, one rename."""
    if not _trusted_dir(cache_dir()):
        return
    tmp = os.path.join(os.path.dirname(path), f".tmp-{os.getpid()}-{next(_SERIAL)}")
    created = False
    try:
        try:
            fd = os.open(tmp, _CREATE, 0o600)
        except FileNotFoundError:
            os.makedirs(cache_dir(), mode=0o700, exist_ok=True)  # makedirs' mode is the leaf's only
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            fd = os.open(tmp, _CREATE, 0o600)
        created = True
        try:
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)  # atomic on POSIX: readers see the old entry or the new one
        created = False
    except Exception:
        pass
    finally:
        if created:
            try:
                os.unlink(tmp)
            except OSError:
                pass


# O_EXCL: a name left by a crashed writer is never written through (nor a planted symlink).
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_SERIAL = itertools.count()
_PENDING: Dict[str, bytes] = {}
_PENDING_MAX = 64 << 20  # bytes of deferred entries held before they are written
_LOCK = _thread.allocate_lock()  # the builtin lock: callers may be threads; no import of threading
_AT_EXIT = False


def _after_fork_in_child() -> None:
    """A forked child starts with no queue (the parent writes its own)."""
    global _LOCK
    _LOCK = _thread.allocate_lock()
    _PENDING.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
