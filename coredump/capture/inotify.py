"""
inotify and signalfd
====================

Linux's descriptor-based event interfaces, through ctypes (the C library's wrappers; no
extra dependency): inotify(7) to see a core file closed the moment the kernel finishes
writing it, and signalfd(2) to wait for a signal and a file event with one poll(2).
Both raise OSError where the interface is missing (another OS, an old C library).
"""

from __future__ import annotations

import os
import struct

__all__ = ("Inotify", "SignalFd", "SigInfo", "IN_CLOSE_WRITE", "IN_CREATE", "IN_ISDIR", "IN_Q_OVERFLOW",
           "IN_IGNORED", "IN_ONLYDIR", "IN_DONT_FOLLOW", "IN_EXCL_UNLINK")

# include/uapi/linux/inotify.h
IN_CLOSE_WRITE = 0x00000008
IN_CREATE = 0x00000100
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK  # inotify_init1(2): the same values as the open(2) flags
IN_CLOEXEC = os.O_CLOEXEC
# struct inotify_event { int wd; uint32_t mask, cookie, len; char name[]; }
_EVENT = struct.Struct("=iIII")
# struct signalfd_siginfo (include/uapi/linux/signalfd.h): 128 bytes, these fields first.
_SIGINFO = struct.Struct("=IiiII")
_SIGINFO_SIZE = 128
SFD_NONBLOCK, SFD_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
_SIGSET_SIZE = 128  # glibc's sigset_t (1024 bits); the kernel reads _NSIG / 8 of it

_libc = None


def _c():
    """The C library, loaded once (ctypes only where a watch is wanted: it costs ~2 ms)."""
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(result: int) -> int:
    if result < 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


class Inotify:
    """One inotify instance, non-blocking: ``add_watch`` and ``read_events``."""

    def __init__(self):
        try:
            init = _c().inotify_init1
        except (OSError, AttributeError) as exc:
            raise OSError(0, f"inotify is not available here ({exc})") from None
        self.fd = _check(init(IN_NONBLOCK | IN_CLOEXEC))

    def add_watch(self, path: str, mask: int) -> int:
        """The watch descriptor; OSError (ENOSPC: fs.inotify.max_user_watches reached)."""
        return _check(_c().inotify_add_watch(self.fd, os.fsencode(path), mask))

    def read_events(self) -> list[tuple[int, int, str]]:
        """(wd, mask, name) of every queued event; [] when none is queued."""
        out = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                name = data[offset:offset + length].split(b"\0", 1)[0]
                offset += length
                out.append((wd, mask, os.fsdecode(name)))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class SigInfo:
    """The fields of a signal's siginfo that ``forward`` reads (as signal.sigwaitinfo names them)."""

    __slots__ = ("si_signo", "si_code", "si_pid", "si_uid")

    def __init__(self, si_signo: int, si_code: int, si_pid: int, si_uid: int):
        self.si_signo, self.si_code, self.si_pid, self.si_uid = si_signo, si_code, si_pid, si_uid


class SignalFd:
    """A signalfd(2) for `signals`, which the caller keeps blocked (signalfd takes only
    blocked signals; an unblocked one is delivered as usual)."""

    def __init__(self, signals):
        import ctypes

        libc = _c()
        try:
            make = libc.signalfd
        except AttributeError as exc:
            raise OSError(0, f"signalfd is not available here ({exc})") from None
        mask = ctypes.create_string_buffer(_SIGSET_SIZE)
        libc.sigemptyset(mask)
        for signo in signals:
            libc.sigaddset(mask, int(signo))
        self.fd = _check(make(-1, mask, SFD_NONBLOCK | SFD_CLOEXEC))

    def read(self) -> list[SigInfo]:
        out = []
        while True:
            try:
                data = os.read(self.fd, _SIGINFO_SIZE * 16)
            except BlockingIOError:
                return out
            for offset in range(0, len(data) - _SIGINFO_SIZE + 1, _SIGINFO_SIZE):
                signo, _errno, code, pid, uid = _SIGINFO.unpack_from(data, offset)
                out.append(SigInfo(signo, code, pid, uid))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
