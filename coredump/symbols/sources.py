"""
Source files
============

Find the source file a frame's DWARF names (``source_path``: DW_AT_comp_dir joined with the
line table's directory and file name, DWARF 5 §6.2.4) on this machine, and read it without
trusting that path: it comes from a core, so it may name a FIFO, a device, ``/proc`` or a
symlink planted to a secret.
"""

from __future__ import annotations

import os
import stat

from coredump.patterns import lazy_compile
from coredump.record import dataclass, field, replace

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, Iterator, Optional, Sequence, Tuple

__all__ = ("SourceFinder", "SourceFile", "read_regular_file", "parse_prefix_map", "stored_sources",
           "stored_name", "MAX_SOURCE_BYTES", "REFUSED_ROOTS", "SOURCES_DIR")

# The most of one source file read for a report: an excerpt needs the lines up to the crash.
MAX_SOURCE_BYTES = 16 << 20
# Kernel interfaces, not files: reading /proc/<pid>/environ or /sys or a device has effects or
# leaks the machine's state (proc(5), sysfs(5)); their files report st_size 0 or block.
REFUSED_ROOTS = ("/proc", "/sys", "/dev")
# An artifact directory keeps each source file once, by content: sources/<sha256>/<name>
# (store/sources.py writes it; crash.json's "sources" names it, docs/json-schema.md).
SOURCES_DIR = "sources"
_STORED = lazy_compile(SOURCES_DIR + r"/[0-9a-f]{64}/[A-Za-z0-9._+-]{1,255}")
_UNSAFE = lazy_compile(r"[^A-Za-z0-9._+-]+")
# Suffixes of a source path tried under --source-dir: at most this many trailing components.
_MAX_SUFFIX_PARTS = 32


@dataclass(frozen=True)
class SourceFile:
    """The bytes of a source file as read (at most the limit asked), and where they came from
    (``stored``: the copy an artifact directory keeps)."""

    path: str
    data: bytes
    truncated: bool = False
    stored: bool = False


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r + "/") for r in roots)


def _refused_devices() -> Tuple[int, ...]:
    """st_dev of the kernel file systems mounted at REFUSED_ROOTS (proc, sysfs, devtmpfs)."""
    devices = []
    for root in REFUSED_ROOTS:
        try:
            devices.append(os.stat(root).st_dev)
        except OSError:
            continue
    return tuple(devices)


def _opened_path(fd: int) -> Optional[str]:
    """The path the kernel resolved for `fd` (proc(5): /proc/self/fd/N), or None."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def read_regular_file(path: str, limit: int = MAX_SOURCE_BYTES,
                      roots: Optional[Sequence[str]] = None) -> Optional[SourceFile]:
    """The first `limit` bytes of `path` when it is a regular file outside REFUSED_ROOTS
    (and, with `roots`, inside one of them, symlinks resolved); None otherwise (absent,
    unreadable, a symlink as its last component, a FIFO, a device).

    O_NOFOLLOW refuses a symlink in the last component (open(2)); O_NONBLOCK keeps the open of
    a FIFO from waiting for a writer; fstat(2) of the opened descriptor decides, so a swap of
    the path after the check cannot change what is read. Directories higher up are resolved
    (realpath) and, with the opened file's st_dev, kept out of /proc, /sys and /dev; `roots`
    is checked against the path the kernel opened, so a directory swapped in between does not
    lead outside.

    >>> read_regular_file("/proc/self/environ") is None
    True
    """
    if not isinstance(path, str) or not path or "\0" in path:
        return None
    try:
        real = os.path.realpath(os.path.dirname(os.path.abspath(path)))
        if _under(os.path.abspath(path), REFUSED_ROOTS) or _under(real, REFUSED_ROOTS):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except (OSError, ValueError):
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_dev in _refused_devices():
            return None
        if roots is not None and not _under(_opened_path(fd) or "", [os.path.realpath(r) for r in roots]):
            return None
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    return SourceFile(path, data[:limit], truncated=len(data) > limit)


def parse_prefix_map(text: str) -> Tuple[str, str]:
    """``OLD=NEW`` as gcc's -fdebug-prefix-map spells it (split at the first ``=``,
    gcc/file-prefix-map.cc add_prefix_map); ValueError without one.

    >>> parse_prefix_map("/build/src=/home/me/src")
    ('/build/src', '/home/me/src')
    """
    old, sep, new = text.partition("=")
    if not sep or not old:
        raise ValueError(f"{text!r} is not OLD=NEW")
    return old, new


@dataclass
class SourceFinder:
    """Where the source files of a crash are looked for, in this order: ``source_path`` as
    DWARF names it, rewritten by each prefix map, under each source directory by path suffix,
    then the copies stored with the crash (``stored``: source_path -> file).

    `prefix_maps` are tried as gcc applies its own: the last one given first, a plain string
    prefix (gcc/file-prefix-map.cc remap_filename). With `roots`, only files inside those
    directories are read (what ``run`` may publish: the job's checkout, not ~/.ssh); a stored
    copy only inside `stored_root`, the artifact directory (a folder of ``sources/`` may be a
    planted symlink).
    """

    source_dirs: Sequence[str] = ()
    prefix_maps: Sequence[Tuple[str, str]] = ()
    stored: Dict[str, str] = field(default_factory=dict)
    limit: int = MAX_SOURCE_BYTES
    roots: Optional[Sequence[str]] = None
    stored_root: Optional[str] = None
    _cache: Dict[str, Optional[SourceFile]] = field(default_factory=dict, repr=False, init=False)

    def candidates(self, source_path: str) -> Iterator[str]:
        yield source_path
        for old, new in reversed(list(self.prefix_maps)):
            if source_path.startswith(old):
                yield new + source_path[len(old):]
                break
        parts = [p for p in source_path.split("/") if p not in ("", ".", "..")][-_MAX_SUFFIX_PARTS:]
        for directory in self.source_dirs:
            for i in range(len(parts)):
                yield os.path.join(directory, *parts[i:])

    def find(self, source_path) -> Optional[SourceFile]:
        """The first candidate that reads as a regular file (cached per path), or None."""
        if not isinstance(source_path, str) or not source_path:
            return None
        if source_path not in self._cache:
            found = None
            for candidate in self.candidates(source_path):
                found = read_regular_file(candidate, self.limit, self.roots)
                if found is not None:
                    break
            if found is None and source_path in self.stored and self.stored_root:
                found = read_regular_file(self.stored[source_path], self.limit, [self.stored_root])
                found = replace(found, stored=True) if found is not None else None
            self._cache[source_path] = found
        return self._cache[source_path]


def stored_name(sha256: str, source_path: str) -> str:
    """The artifact-relative name of a stored source file: its digest, then its base name
    with anything but ``[A-Za-z0-9._+-]`` replaced, so no name can leave ``sources/``.

    >>> stored_name("ab" * 32, "/src/../a b.c")[-8:]
    '/a_b.c'
    """
    name = _UNSAFE.sub("_", os.path.basename(source_path)).lstrip(".")[:255] or "source"
    return f"{SOURCES_DIR}/{sha256}/{name}"


def stored_sources(crash, root: str) -> Dict[str, str]:
    """{source_path: file} of the copies a crash.json's ``sources`` records under `root`
    (the artifact directory); entries that are not ``sources/<sha256>/<name>`` are ignored:
    crash.json is input from elsewhere."""
    entries = crash.get("sources") if isinstance(crash, dict) else None
    out: Dict[str, str] = {}
    for entry in entries if isinstance(entries, list) else ():
        path = entry.get("path") if isinstance(entry, dict) else None
        rel = entry.get("file") if isinstance(entry, dict) else None
        if isinstance(path, str) and isinstance(rel, str) and _STORED.fullmatch(rel) \
                and rel.rsplit("/", 1)[1] not in (os.curdir, os.pardir):
            out[path] = os.path.join(root, rel)
    return out
