"""
Finding cores
=============

Find the core files written since a moment: in a directory tree (a crashed grandchild
writes into its own working directory) and where the kernel's core_pattern puts them.
A file counts when it is an ELF ET_CORE modified at or after that moment.
"""

from __future__ import annotations

import os
import re
import stat
import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from coredump.capture.core_pattern import GENERIC_CORE_NAME, CorePattern

__all__ = ("is_core_file", "find_cores", "find_core_entries", "Found", "iter_candidates", "list_directory",
           "QEMU_CORE_NAME", "PRUNED")

ET_CORE = 4  # System V gABI, e_type
# qemu-user writes the guest's core itself, in the working directory, whatever core_pattern
# says (linux-user/elfload.c core_dump_filename: "qemu_%s_%Y%m%d-%H%M%S_%d.core", the
# program's base name and the pid).
QEMU_CORE_NAME = re.compile(r"qemu_.+_\d{8}-\d{6}_\d+\.core")
# Directories no step writes a core into: version control metadata, dependency and byte
# code caches. (A virtual environment, known by its pyvenv.cfg, is skipped too.)
PRUNED = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__"})


class Found(NamedTuple):
    """What a search found: the cores (path and the lstat look that found each, oldest
    first) and the files with a core's name it could not open (path, strerror)."""

    cores: list
    unreadable: list


def is_core_file(path: str) -> bool:
    """Whether `path` starts with an ELF header whose e_type is ET_CORE.

    e_type is the half-word at offset 16 in both ELF classes, in the byte order of
    e_ident[EI_DATA] (1 little, 2 big endian).
    """
    try:
        return _is_core(path)
    except OSError:
        return False


def _is_core(path: str) -> bool:
    """is_core_file, letting an OSError of the open through. O_NOFOLLOW and O_NONBLOCK: a
    name swapped for a symlink or a FIFO since it was listed is not read (open(2))."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    with open(fd, "rb") as f:
        head = f.read(18)
    if len(head) < 18 or head[:4] != b"\x7fELF" or head[5] not in (1, 2):
        return False
    (e_type,) = struct.unpack_from("<H" if head[5] == 1 else ">H", head, 16)
    return e_type == ET_CORE


def _listable(st: os.stat_result, since_ns: int) -> bool:
    """Whether a directory may hold a core written since `since_ns` or a subdirectory.

    The kernel unlinks an old core and creates the new one O_EXCL (fs/coredump.c,
    do_coredump), and creating an entry sets its directory's mtime: a directory not
    modified since then gained no core. It may still have subdirectories that did, and
    st_nlink counts them (2 + subdirectories on ext4, xfs, tmpfs; btrfs says 1: listed)."""
    return st.st_mtime_ns >= since_ns or st.st_nlink != 2


def list_directory(directory: str, depth: int) -> list[os.DirEntry] | None:
    """The entries of `directory`, `depth` levels below the top of a tree; None when it
    cannot be listed or is a virtual environment below the top (PEP 405: pyvenv.cfg)."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return None
    return None if depth and any(e.name == "pyvenv.cfg" for e in entries) else entries


def _walk(root: str, max_depth: int | None, exclude: set[str], since_ns: int = 0) -> Iterator[tuple[str, str]]:
    """(path relative to root, absolute path) of every regular file that may have been
    created since `since_ns`; symlinks not followed, other filesystems (st_dev) and
    PRUNED directories not entered."""
    try:
        top = os.stat(root)
    except OSError:
        return
    stack = [(root, "", 0, top)]
    while stack:
        directory, rel, depth, st = stack.pop()
        if not _listable(st, since_ns):
            continue
        entries = list_directory(directory, depth)
        if entries is None:
            continue
        fresh = st.st_mtime_ns >= since_ns
        deeper = max_depth is None or depth + 1 < max_depth
        prefix = f"{rel}/" if rel else ""
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not deeper or entry.name in PRUNED or entry.path in exclude:
                        continue
                    sub_st = entry.stat(follow_symlinks=False)
                    if sub_st.st_dev == top.st_dev:
                        stack.append((entry.path, prefix + entry.name, depth + 1, sub_st))
                elif fresh and entry.is_file(follow_symlinks=False):
                    yield prefix + entry.name, entry.path
            except OSError:
                continue


def _abspath(path: str) -> str | None:
    """`path` made absolute; None for a relative one when the working directory is gone
    (a step may delete its own: getcwd(3) fails with ENOENT, and nothing can be created
    in a deleted directory, so no core is there to find)."""
    try:
        return os.path.abspath(path)
    except FileNotFoundError:
        return None


def _tail(rel: str, n: int) -> str:
    return "/".join(rel.split("/")[-n:]) if n > 0 else rel


def iter_candidates(roots: Sequence[str], pattern: CorePattern | None,
                    exclude: Iterable[str] = (), since_ns: int = 0) -> Iterator[str]:
    """Files whose name a core could have: generic names (core, core.PID, core.*) and the
    names `pattern` produces, in every root's tree and in the pattern's own directory,
    each tree on its root's filesystem, skipping directories unchanged since `since_ns`."""
    excl = {a for a in map(_abspath, exclude) if a is not None}
    usable = pattern is not None and pattern.regex is not None
    relative = pattern if usable and not pattern.is_absolute else None
    for root in filter(None, map(_abspath, roots)):
        for rel, path in _walk(root, None, excl, since_ns):
            name = rel.rsplit("/", 1)[-1]
            if GENERIC_CORE_NAME.fullmatch(name) or QEMU_CORE_NAME.fullmatch(name) or (
                    relative is not None and relative.matches(_tail(rel, relative.depth))):
                yield path
    if usable and pattern.is_absolute:
        base = pattern.directory or "/"
        for _rel, path in _walk(base, pattern.depth, excl, since_ns):
            if pattern.matches(path):
                yield path


def find_cores(roots: Sequence[str], since_ns: int = 0, pattern: CorePattern | None = None,
               exclude: Iterable[str] = ()) -> list[str]:
    """Core files in `roots` and the pattern's directory modified at or after `since_ns`
    (nanoseconds since the epoch), oldest first, each file once."""
    return [path for path, _look in find_core_entries(roots, since_ns, pattern, exclude).cores]


def find_core_entries(roots: Sequence[str], since_ns: int = 0, pattern: CorePattern | None = None,
                      exclude: Iterable[str] = ()) -> Found:
    """``find_cores`` with the look (st_dev, st_ino, size, mtime) that found each core, and
    the candidates that could not be opened (EACCES: a root-owned 0600 core, say)."""
    from coredump.capture.opened import Look

    seen: set[tuple[int, int]] = set()
    found, unreadable = [], []
    for path in iter_candidates(roots, pattern, exclude, since_ns):
        try:
            st = os.lstat(path)
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen or st.st_mtime_ns < since_ns or not stat.S_ISREG(st.st_mode):
            continue
        seen.add(key)
        try:
            if _is_core(path):
                found.append((st.st_mtime_ns, path, Look.of(st)))
        except PermissionError as exc:
            unreadable.append((path, exc.strerror))
        except OSError:
            continue
    return Found([(p, look) for _, p, look in sorted(found)], unreadable)
