"""
Unwinding limits
================

The work one analysis may spend on its threads' stacks, shared by all of them, and the one
warning that says the budget cut in (as ``coredump.dwarf.limits`` does for DWARF).

The limits (each with its reason beside it):

- ``UNWIND_TIME_BUDGET`` (here): seconds of walking and symbolizing all threads together;
- ``MAX_TOTAL_FRAMES`` (here): frames kept across all threads;
- ``MAX_WALKED_THREADS`` (here): threads walked past frame 0;
- ``MAX_FRAMES``, ``MAX_HIDDEN_FRAMES``, ``MAX_HIDDEN_SECONDS`` (``coredump.unwind.walk``):
  one thread's frames, and the walk on to its outermost frames past that cap.

Past the budget each thread keeps frame 0 (its registers are in the core, so it costs no
walk). ``coredump.elf.core`` bounds what the notes may ask for (``MAX_THREADS``,
``MAX_NOTES``, ``MAX_FILE_ENTRIES``).
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Optional

__all__ = ("UNWIND_TIME_BUDGET", "MAX_TOTAL_FRAMES", "MAX_WALKED_THREADS", "WalkBudget")

# Seconds for all threads' stacks. A usual crash takes milliseconds a thread; 2,048 threads of
# a server with 30 frames each take ~6 s here. Past it a crafted core (1,000 threads each
# with a stack of 100,000 frames took 410 s) ends with frame 0 of the threads left.
UNWIND_TIME_BUDGET = 10.0
# Frames for all threads; each costs ~50 µs to symbolize and ~1 KB in the report.
MAX_TOTAL_FRAMES = 65536
# Threads unwound in full; past this many (each walk costs milliseconds) only frame 0 is kept.
MAX_WALKED_THREADS = 2048


class WalkBudget:
    """What is left of one analysis' unwinding budget; ``analyze_target`` makes one and
    charges it after each thread."""

    def __init__(self, seconds: Optional[float] = None, frames: Optional[int] = None,
                 threads: Optional[int] = None):
        self.seconds = UNWIND_TIME_BUDGET if seconds is None else seconds
        self.frames = MAX_TOTAL_FRAMES if frames is None else frames
        self.threads = MAX_WALKED_THREADS if threads is None else threads
        self.deadline = time.monotonic() + self.seconds
        self.frames_used = 0
        self.threads_walked = 0

    def exhausted(self) -> Optional[str]:
        """Which limit is spent, or None while threads may still be walked."""
        if self.threads_walked >= self.threads:
            return f"only the first {self.threads} threads are unwound"
        if self.frames_used >= self.frames:
            return f"the analysis' budget of {self.frames} frames is spent"
        if time.monotonic() >= self.deadline:
            return f"the analysis' unwinding time budget of {self.seconds:g} s is spent"
        return None

    def frames_for_thread(self, max_frames: int) -> int:
        """The frame cap of the next thread walked: its own, within what is left."""
        return max(1, min(max_frames, self.frames - self.frames_used))

    def share(self, threads_left: int) -> float:
        """Seconds the next thread may walk on past its cap: the crashing thread, walked
        first, takes walk.py's own limit; each other thread an equal part of what is left,
        so that one deep stack does not cost the others their frames."""
        return max(0.0, self.deadline - time.monotonic()) / max(1, threads_left)

    def charge(self, frames: int) -> None:
        self.frames_used += frames
        self.threads_walked += 1
