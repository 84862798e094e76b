"""
Progress in a CI log
====================

A CI log is no terminal: a progress bar is noise there, and silence for the minutes a 250 MB
core takes to compress and upload reads as a hang. ``LogProgress`` prints a plain line every
``INTERVAL`` seconds, and nothing at all for work that ends sooner.
"""

from __future__ import annotations

import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable

__all__ = ("LogProgress", "INTERVAL")

INTERVAL = 5.0


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


class LogProgress:
    """``progress(done, total)`` (bytes) for a `label`led piece of work; thread-safe, as
    s3transfer calls it from its threads."""

    def __init__(self, echo: Callable[[str], None], label: str, interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic):
        self.echo, self.label, self.interval, self.clock = echo, label, interval, clock
        self._next = clock() + interval
        self._lock = threading.Lock()

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        if now < self._next:
            return
        with self._lock:
            if now < self._next:
                return
            self._next = now + self.interval
        share = f" ({100 * done // total}%)" if total else ""
        self.echo(f"coredump: {self.label}: {_mib(done)} of {_mib(total)}{share}")
