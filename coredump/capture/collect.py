"""
Collect
=======

What ``coredump run`` does once the step has exited: find the cores it left, harvest
them (``harvest.harvest``), and, when processes of the step still run (``leftover``),
say so and harvest the cores they wrote meanwhile too.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence

__all__ = ("collect",)

# signal(7): the signals whose default action is "Core".
_DUMPING_SIGNALS = {int(getattr(signal, n)) for n in (
    "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGSEGV", "SIGSYS", "SIGXCPU", "SIGXFSZ")
    if hasattr(signal, n)}


def _union(found: list[str], moved: Sequence[str]) -> list[str]:
    """`found`, then each core of `moved` (where the watcher put it) not in it: a name the
    search does not know (a pattern's own name plus ".PID") is still harvested."""
    seen = set()
    for path in found:
        try:
            st = os.stat(path)
            seen.add((st.st_dev, st.st_ino))
        except OSError:
            pass
    out = list(found)
    for path in moved:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            out.append(path)
    return out


def _existing(core_dirs: Sequence[str], echo) -> list:
    """The --core-dir directories that exist; a warning for each that does not (the
    step's status is never changed for it)."""
    found = []
    for d in core_dirs:
        if os.path.isdir(d):
            found.append(d)
        else:
            echo(f"coredump: warning: --core-dir {d}: no such directory; no core was searched there")
    return found


def collect(argv, status, started, pid, output, core_dirs, make_options, echo, pattern, moved=()) -> None:
    """After the step: find its cores (in the working tree, `core_dirs` and the pattern's
    directory, plus those the watcher `moved`), harvest them, then sweep once more when
    processes of the step still run."""
    from coredump.capture.find import find_cores
    from coredump.capture.forward import Probe
    from coredump.capture.leftover import describe_leftovers, find_leftovers

    leftovers = find_leftovers(exclude=Probe.spawned) if pid is not None else []
    searched = _existing(core_dirs, echo)
    roots, exclude = [".", *searched], [output]  # find_cores makes it absolute
    cores = _union(find_cores(roots, started, pattern, exclude=exclude), moved)
    if leftovers:  # said once the search is done: what they dump from now on is the sweep's
        echo(f"coredump: {describe_leftovers(leftovers)}")
    harvest = _Harvest(argv, status, started, pid, output, searched, make_options, echo, pattern)
    if cores or (pattern is not None and pattern.is_pipe):
        harvest(cores)
    if leftovers:
        _sweep(harvest, leftovers, roots, exclude, cores)
    if not harvest.records and status - 128 in _DUMPING_SIGNALS:
        echo(f"coredump: the step died of signal {status - 128} but left no core "
             f"{'of its own' if harvest.ran else 'here; `coredump doctor` says where cores go on this machine'}")


def _sweep(harvest, leftovers, roots, exclude, done) -> None:
    """Once the harvest is over, the cores the step's remaining processes wrote meanwhile
    (and those the kernel is writing now: waited for), harvested too."""
    from coredump.capture.find import find_cores
    from coredump.capture.leftover import wait_for_dumps

    wait_for_dumps(leftovers)
    late = [c for c in find_cores(roots, harvest.started, harvest.pattern, exclude=exclude) if c not in done]
    if late:
        harvest.echo(f"coredump: {len(late)} more core(s) written while collecting, by the step's remaining "
                     "processes")
        harvest(late)


class _Harvest:
    """``harvest.harvest`` for this step, callable more than once (the summary keeps the
    crashes of each call); ``records`` are all the crashes stored."""

    def __init__(self, argv, status, started, pid, output, searched, make_options, echo, pattern):
        self.argv, self.status, self.started, self.pid = argv, status, started, pid
        self.output, self.searched, self.make_options = output, searched, make_options
        self.echo, self.pattern = echo, pattern
        self.records, self.ran, self._options = [], False, None

    def __call__(self, cores) -> None:
        from coredump.capture.harvest import HarvestOptions, harvest
        from coredump.capture.owner import StepTree

        if self._options is None:
            self._options = (self.make_options() if self.make_options
                             else HarvestOptions(output=self.output, core_dirs=tuple(self.searched)))
        judge = StepTree(self.pid).foreign if self.pid is not None else None
        result = harvest(self._options, since=self.started / 1e9, command=self.argv, exit_status=self.status,
                         started=self.started / 1e9, pattern=self.pattern, echo=self.echo, cores=cores,
                         step_failed=self.status != 0, foreign=judge)
        self.ran = True
        self.records += result.records
