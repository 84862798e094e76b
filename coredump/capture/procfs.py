"""
procfs
======

Read one proc(5) file of a process with a single open(2) and read(2): no buffered file
object (the run wrapper reads a few per step, and /proc/PID/stat per process when it looks
for the step's remaining processes).
"""

from __future__ import annotations

import os

__all__ = ("read_proc",)


def read_proc(pid, name: str, size: int = 8192) -> bytes | None:
    """The first `size` bytes of /proc/PID/NAME (`pid` may be ``"self"``); None when the
    process is gone or the file cannot be read."""
    try:
        fd = os.open(f"/proc/{pid}/{name}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)
