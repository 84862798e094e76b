"""
Opened cores
============

A core that ``find_cores`` found is opened once, without following a symlink, and must be
the same regular file (st_dev, st_ino) that was found. Everything after that (waiting for
it to settle, analysis, compression, hashing) reads the descriptor, through
``/proc/self/fd/N``; the path is used again only to remove the core, and only while it
still names that inode, unchanged since it was stored.
"""

from __future__ import annotations

import os
import stat
import time

from coredump.errors import StorageError
from coredump.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable, Optional

__all__ = ("Look", "OpenedCore", "look_at", "open_found", "phdr_extent", "settle", "unlink_if_same",
           "SETTLE_QUIET", "SETTLE_TIMEOUT")

# A core whose size and mtime have not changed for this long, and that no process is
# still dumping, is taken as finished (a writer that pauses longer is indistinguishable
# from one that finished).
SETTLE_QUIET = 2.0
# The longest a harvest waits for one core to settle (a kernel writes a few GB in this time).
SETTLE_TIMEOUT = 120.0
_POLL = 0.1


@dataclass(frozen=True)
class Look:
    """What one fstat(2) says of a file: which inode, how big, when last written."""

    st_dev: int
    st_ino: int
    st_size: int
    st_mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Look:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def same_file(self, other: Look) -> bool:
        return (self.st_dev, self.st_ino) == (other.st_dev, other.st_ino)


def look_at(path: str) -> Optional[Look]:
    """An lstat(2) look at `path`; None when it is gone or not a regular file."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return Look.of(st) if stat.S_ISREG(st.st_mode) else None


class OpenedCore:
    """A core open read-only as `fd`; `path` is where it was found (for messages)."""

    def __init__(self, path: str, fd: int, found: Look):
        self.path, self.fd, self.found = path, fd, found

    @property
    def fd_path(self) -> str:
        """A name for the open file that cannot be swapped: proc(5) /proc/self/fd/N opens
        the same inode as the descriptor, whatever now sits at `path`."""
        return f"/proc/self/fd/{self.fd}"

    def look(self) -> Look:
        return Look.of(os.fstat(self.fd))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> OpenedCore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_found(path: str, found: Optional[Look]) -> OpenedCore:
    """Open `path` as found; StorageError when it is now a symlink, not a regular file, or
    another inode than `found` (None: the file at `path` now, taken as found)."""
    # open(2): O_NOFOLLOW fails with ELOOP on a symlink; O_NONBLOCK keeps a FIFO swapped in
    # from blocking the open (it has no effect on a regular file).
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise StorageError(f"cannot open {path}: {exc.strerror}") from exc
    st = os.fstat(fd)
    now = Look.of(st)
    if not stat.S_ISREG(st.st_mode) or (found is not None and not found.same_file(now)):
        os.close(fd)
        raise StorageError(f"{path} was replaced after it was found (not the same regular file); "
                           "left untouched")
    return OpenedCore(path, fd, found or now)


def phdr_extent(fd_path: str) -> Optional[int]:
    """The file size the core's program headers claim (the largest p_offset + p_filesz,
    gABI), or None when they cannot be read (not yet written, or not a core we read)."""
    from coredump.elf.phdrs import read_phdrs
    from coredump.errors import CoreDumpError

    try:
        with open(fd_path, "rb") as f:
            _ehdr, phdrs = read_phdrs(f, fd_path)
    except (OSError, CoreDumpError):
        return None
    return max((ph.p_offset + ph.p_filesz for ph in phdrs), default=0)


class _Headers:
    """What the core's first bytes say, read once each: the pid in its notes and the size
    its program headers claim (a writer appends after them; they do not change)."""

    def __init__(self, fd_path: str):
        self.fd_path, self.pid, self.extent = fd_path, None, None

    def dumping(self, proc: str = "/proc") -> Optional[int]:
        """The pid in the notes while that process is still dumping the core: proc(5)
        /proc/PID/status "CoreDumping: 1" (Linux 4.15, mm->core_state set until the
        kernel's do_coredump has written the last byte)."""
        if self.pid is None:
            from coredump.capture.owner import read_core_ids

            ids = read_core_ids(self.fd_path)
            self.pid = ids.pid if ids is not None and ids.pid > 0 else None
        if self.pid is None:
            return None
        try:
            with open(f"{proc}/{self.pid}/status", "rb") as f:
                status = f.read(8192)
        except OSError:
            return None
        return self.pid if b"\nCoreDumping:\t1" in status else None

    def complete(self, look: Look) -> bool:
        if self.extent is None:
            self.extent = phdr_extent(self.fd_path)
        return self.extent is not None and look.st_size >= self.extent


def _young(look: Look, quiet: float) -> bool:
    return time.time_ns() - look.st_mtime_ns < quiet * 1e9


def settle(core: OpenedCore, quiet: float = SETTLE_QUIET, timeout: float = SETTLE_TIMEOUT,
           echo: Callable[[str], None] = lambda line: None) -> tuple:
    """Wait until `core` is written to the end: (its last look, None) or, after `timeout`
    seconds, (its last look, why it is not settled).

    Settled means no process is dumping it and its size and mtime are the same on two
    looks; a core shorter than its program headers claim must also have been unchanged
    for `quiet` seconds (a writer may only be between two writes)."""
    deadline = time.monotonic() + timeout
    headers, last, said = _Headers(core.fd_path), core.look(), False
    while True:
        pid = headers.dumping()
        if pid is None and (headers.complete(last) or not _young(last, quiet)):
            now = core.look()
            if now == last:
                return now, None  # changed since the last look: wait, then look again
        if time.monotonic() >= deadline:
            why = f"pid {pid} is still dumping it" if pid else "it is still being written"
            return last, f"{why} after {timeout:g} s"
        if not said:
            why = (f"pid {pid} is dumping it" if pid else
                   f"it is shorter than its program headers say and changed in the last {quiet:g} s")
            echo(f"coredump: {core.path} may still be being written ({why}); waiting up to {timeout:g} s "
                 "for it to settle")
            said = True
        time.sleep(_POLL)  # the writer is another process: nothing to wait on but time
        last = core.look()


def unlink_if_same(path: str, stored: Look) -> Optional[str]:
    """Remove `path` only while it names the inode stored, unchanged since (size, mtime);
    None when removed, else why not. The directory is opened once and the name unlinked
    relative to it, so a directory swapped meanwhile cannot redirect the unlink."""
    directory, name = os.path.split(path)
    try:
        dfd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        return f"cannot open its directory: {exc.strerror}"
    try:
        try:
            now = Look.of(os.stat(name, dir_fd=dfd, follow_symlinks=False))
        except FileNotFoundError:
            return None
        if now != stored:
            return "it changed after it was stored"
        os.unlink(name, dir_fd=dfd)
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        os.close(dfd)
