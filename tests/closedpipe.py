"""
A reader that went away
=======================

``run_into_closed_pipe(argv, stream)`` runs a command whose stdout (or stderr) is a pipe
whose read end is already closed, as after ``… | head -1`` has exited: every write gets
EPIPE, deterministically (no race with a real ``head``).
"""

from __future__ import annotations

import os
import subprocess

__all__ = ("run_into_closed_pipe",)


def run_into_closed_pipe(argv, stream: str = "stdout", **kwargs) -> subprocess.CompletedProcess:
    """The finished process; the other stream is captured as text."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        closed = {stream: write_end}
        other = "stderr" if stream == "stdout" else "stdout"
        return subprocess.run(argv, **closed, **{other: subprocess.PIPE}, text=True, timeout=300, **kwargs)
    finally:
        os.close(write_end)
