"""
The analysis' clocks in tests
=============================

An analysis bounds its work twice: by counts (``MAX_FRAMES``, ``MAX_HIDDEN_FRAMES``,
``MAX_WALKED_THREADS``, ``MAX_DIES_PER_WALK``, ``MAX_INLINE_DEPTH``, ...) and by wall-clock
budgets (:data:`CLOCKS`). On a loaded machine a clock cuts in where it would not on an idle
one, and the result changes: a test whose subject is a result (frames against gdb, a
signature, what a count cap cuts) lifts the clocks with :func:`lift_clocks`, or runs the
command with :func:`command`; the counts still bound its work. A test of a clock sets that
clock tiny, so that the cut is certain, and asserts on what was counted. Where time itself
is the point, :func:`cpu_seconds` measures this process' CPU time, which other processes do
not inflate.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import time

__all__ = ("CLOCKS", "LIFTED_SECONDS", "lift_clocks", "command", "cpu_seconds")

#: (module, name) of every wall-clock budget of an analysis.
CLOCKS = (
    ("coredump.unwind.budget", "UNWIND_TIME_BUDGET"),  # all threads' walks
    ("coredump.unwind.walk", "MAX_HIDDEN_SECONDS"),  # one walk on past its frame cap
    ("coredump.dwarf.limits", "DWARF_TIME_BUDGET"),  # DWARF reading, all images
)
#: A clock no test run reaches: an hour.
LIFTED_SECONDS = 3600.0


def lift_clocks(monkeypatch) -> None:
    """Every clock of :data:`CLOCKS` at :data:`LIFTED_SECONDS` in this process, for the test."""
    for module, name in CLOCKS:
        monkeypatch.setattr(importlib.import_module(module), name, LIFTED_SECONDS)


_LIFT = ("import importlib\n"
         f"for module, name in {CLOCKS!r}:\n"
         f"    setattr(importlib.import_module(module), name, {LIFTED_SECONDS!r})\n")


def command(*args: str):
    """The argv of ``coredump ARGS…`` (as tests/cli.py's) with the clocks lifted."""
    return [sys.executable, "-c", _LIFT + "from coredump.cli.entry import main\nmain()", *args]


@contextlib.contextmanager
def cpu_seconds():
    """``with cpu_seconds() as spent:`` … ``spent()``: this process' CPU time in the block."""
    started = time.process_time()
    ended = []
    yield lambda: (ended[0] if ended else time.process_time()) - started
    ended.append(time.process_time())
