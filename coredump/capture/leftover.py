"""
Leftover
========

The processes of a step that still run after the step itself has exited (a server
started in the background, a test binary whose parent gave up on it): ``run`` names them
in the log, waits for the ones the kernel is dumping right now, and looks for cores
again once its harvest is done, so that a crash of theirs during the harvest is kept.

They are found in proc(5): in the wrapper's session (the step shares it; setsid(2) is
the only way out), started no earlier than the wrapper, and not descended by another line
from the wrapper's parent (a sibling in a pipeline, ``coredump run -- a | tee``) or from
another process of the session that is not the wrapper's ancestor (another job of it: the
other recipe of ``make -j2``, another pytest-xdist worker). An orphan of the step is
reparented to init or to a subreaper (prctl(2) PR_SET_CHILD_SUBREAPER) above the wrapper,
and stays the step's. A process that made its own session is not seen.
"""

from __future__ import annotations

import os
import select
import time

from coredump.capture.procfs import read_proc

__all__ = ("Leftover", "find_leftovers", "describe_leftovers", "wait_for_dumps")

# A bound on the wait for a core the kernel is writing when the step has exited.
DUMP_WAIT_SECONDS = 60.0


class Leftover:
    __slots__ = ("pid", "ppid", "comm")

    def __init__(self, pid: int, ppid: int, comm: str):
        self.pid, self.ppid, self.comm = pid, ppid, comm


def _stat(pid: str):
    """proc(5) /proc/PID/stat: (comm, state, ppid, session, starttime), or None."""
    data = read_proc(pid, "stat", 1024)
    if data is None:
        return None
    try:
        end = data.rindex(b")")
        fields = data[end + 2:].split()
        comm = data[data.index(b"(") + 1:end].decode("utf-8", "backslashreplace")
        return comm, fields[0], int(fields[1]), int(fields[3]), int(fields[19])
    except (ValueError, IndexError):
        return None


def find_leftovers(exclude=()) -> list[Leftover]:
    """The step's processes still alive (the rule in the module text), oldest pid first."""
    me = _stat("self")
    if me is None:
        return []
    _comm, _state, parent, session, since = me
    ancestors = _ancestors(parent)
    skip = {os.getpid(), *exclude, *ancestors}
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in skip:
            continue
        st = _stat(name)
        if st is not None and st[3] == session and st[4] >= since and st[1] not in (b"Z", b"X"):
            found[int(name)] = Leftover(int(name), st[2], st[0])
    return [p for pid, p in sorted(found.items()) if not _elsewhere(_root(p, found), parent, ancestors, session)]


def _ancestors(pid: int) -> list[int]:
    """`pid` and its parents up to init (started before the wrapper, or in its tick)."""
    out = []
    while pid > 1 and pid not in out:
        out.append(pid)
        st = _stat(str(pid))
        pid = st[2] if st is not None else 0
    return out


def _root(proc: Leftover, found: dict) -> int:
    """The first parent of `proc`, up its line of parents, that is not in `found`."""
    seen = set()
    while proc.ppid in found and proc.pid not in seen:
        seen.add(proc.pid)
        proc = found[proc.ppid]
    return proc.ppid


def _elsewhere(root: int, parent: int, ancestors: list, session: int) -> bool:
    """Whether a line of processes from `root` belongs to another job: `root` is the
    wrapper's parent (a sibling's line), or a process of the session that is neither the
    wrapper nor its ancestor (init, or a subreaper above the wrapper, adopted an orphan)."""
    if root == parent:
        return parent > 1
    if root <= 1 or root == os.getpid() or root in ancestors:
        return False
    st = _stat(str(root))
    return st is not None and st[3] == session


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def describe_leftovers(procs: list[Leftover], shown: int = 5) -> str:
    """One log line naming them (at most `shown`; a name is escaped: a process may call itself
    anything, prctl(2) PR_SET_NAME)."""
    names = ", ".join(f"pid {p.pid} {_printable(p.comm)}" for p in procs[:shown])
    more = f" and {len(procs) - shown} more" if len(procs) > shown else ""
    return (f"the step has exited, but {len(procs)} of its processes still run ({names}{more}): a core they "
            "dump is collected only if it is written before this harvest ends")


def _dumping(pid: int) -> bool:
    """proc(5) /proc/PID/status CoreDumping (Linux 4.15): the kernel is writing its core."""
    status = read_proc(pid, "status") or b""
    return any(line.split() == [b"CoreDumping:", b"1"] for line in status.splitlines())


def wait_for_dumps(procs: list[Leftover], timeout: float = DUMP_WAIT_SECONDS) -> int:
    """Wait (at most `timeout` seconds in all) for each of `procs` the kernel is dumping
    now to exit: its core is complete by then. How many were waited for."""
    waited, deadline = 0, time.monotonic() + timeout
    for proc in procs:
        if not _dumping(proc.pid):
            continue
        try:
            fd = os.pidfd_open(proc.pid)  # Linux 5.3: readable once the process has exited
        except (OSError, AttributeError):
            continue
        try:
            select.select([fd], [], [], max(deadline - time.monotonic(), 0))
            waited += 1
        finally:
            os.close(fd)
    return waited
