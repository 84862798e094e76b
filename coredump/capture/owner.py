"""
Owner
=====

Tell a core dumped by a process of the step ``coredump run`` ran from one another job
left, by the ids the kernel recorded in it (``fill_psinfo`` and ``fill_prstatus`` in
fs/binfmt_elf.c: pr_pid, pr_ppid, pr_pgrp, pr_sid).
"""

from __future__ import annotations

import os
import struct
from collections import namedtuple

from coredump.elf import notes as N
from coredump.elf.phdrs import read_phdrs
from coredump.errors import CoreFormatError

__all__ = ("CoreIds", "ProcStat", "read_core_ids", "proc_stat", "StepTree")

PT_NOTE = 4  # gABI program header type of a note segment

CoreIds = namedtuple("CoreIds", "pid ppid pgrp sid fname")
ProcStat = namedtuple("ProcStat", "comm ppid pgrp session starttime")


def _notes(path: str) -> list:
    """Every note of the core at `path`, in file order; a damaged note ends its segment.
    Only 64-bit little-endian cores are read (``read_phdrs``): coredump analyses no others."""
    out = []
    with open(path, "rb") as f:
        for ph in read_phdrs(f, path)[1]:
            if ph.p_type != PT_NOTE:
                continue
            f.seek(ph.p_offset)
            try:
                for note in N.iter_raw_notes(f.read(min(ph.p_filesz, N.MAX_NOTE_SIZE)), ph.p_offset):
                    out.append(note)
            except CoreFormatError:
                pass
    return out


def _ids(notes) -> CoreIds | None:
    """From the first NT_PRPSINFO (struct elf_prpsinfo), else the first NT_PRSTATUS (struct
    elf_prstatus has pr_pid..pr_sid too, but no pr_fname)."""
    prstatus = None
    for note in notes:
        if note.n_type == N.NT_PRPSINFO:
            try:
                ps = N.decode_nt_prpsinfo(note.desc)
            except CoreFormatError:
                continue
            return CoreIds(ps.pr_pid, ps.pr_ppid, ps.pr_pgrp, ps.pr_sid, ps.pr_fname)
        if note.n_type == N.NT_PRSTATUS and prstatus is None:
            prstatus = note.desc
    if prstatus is None:
        return None
    st = N.decode_nt_prstatus(prstatus, 0)  # CoreFormatError when short: read_core_ids says None
    return CoreIds(st.pr_pid, st.pr_ppid, st.pr_pgrp, st.pr_sid, "")


def read_core_ids(path: str) -> CoreIds | None:
    """The process ids recorded in the core at `path`; None when it has none readable."""
    try:
        return _ids(_notes(path))
    except (OSError, struct.error, CoreFormatError):
        return None


def proc_stat(pid, proc: str = "/proc") -> ProcStat | None:
    """proc(5) /proc/PID/stat: comm, ppid (4), pgrp (5), session (6), starttime (22)."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    return ProcStat(comm, int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19]))


class StepTree:
    """The step `step_pid` started by this process, in this process's group and session.

    In the job's own tree, a core is *not* the step's only when that is certain: it was
    dumped in a session (or, within ours, a process group) whose leader is alive and
    started before the wrapper did. No process of the step can join a group or session that existed before it
    (setsid(2) makes a new one, setpgid(2) joins one of the caller's session only), and
    the leader's pid cannot have been reused while it is alive. Anything else (no ids, a
    leader gone, a step descendant that made its own session) counts as the step's:
    nothing is ever lost by being too careful. In a directory other jobs share the rule
    is the reverse (``foreign(ids, shared=True)``): a core is the step's only when its ids
    prove it, since taking another job's core loses it for that job."""

    def __init__(self, step_pid: int, proc: str = "/proc"):
        self.step_pid, self.proc = step_pid, proc
        self.pid, self.pgrp, self.sid = os.getpid(), os.getpgrp(), os.getsid(0)
        own = proc_stat(self.pid, proc)
        self.starttime = own.starttime if own else None

    def foreign(self, ids: CoreIds | None, shared: bool = False) -> str | None:
        """Why the core with `ids` is not the step's; None when it is (or may be).

        In a `shared` directory (other jobs dump there too) a core is the step's only when
        its notes prove it: ``proven``. Elsewhere (the job's own tree) it is the step's
        unless ``disproven``."""
        if shared:
            return self._unproven(ids)
        if ids is None or self.starttime is None:
            return None
        return self._disproven(ids)

    def _own(self, ids: CoreIds) -> bool:
        """The step itself, a child of it or of the wrapper (an orphan reparented to it),
        or a process of the wrapper's own process group (where the step runs)."""
        return (ids.pid == self.step_pid or ids.ppid in (self.step_pid, self.pid)
                or (ids.sid, ids.pgrp) == (self.sid, self.pgrp))

    def _descends(self, pid: int) -> bool:
        """Whether the live process `pid` started after the wrapper and its parents
        (proc(5) ppid, followed up to init) lead to the wrapper."""
        first = proc_stat(pid, self.proc)
        if first is None or self.starttime is None or first.starttime < self.starttime:
            return False
        seen = set()
        while pid > 1 and pid not in seen:
            if pid == self.pid:
                return True
            seen.add(pid)
            st = proc_stat(pid, self.proc)
            if st is None:
                return False
            pid = st.ppid
        return False

    def _unproven(self, ids: CoreIds | None) -> str | None:
        if ids is None:
            return "no process ids readable in its notes"
        if self._own(ids) or any(self._descends(p) for p in {ids.ppid, ids.pgrp, ids.sid} if p > 1):
            return None
        name = f" ({ids.fname})" if ids.fname else ""
        return (f"dumped by pid {ids.pid}{name} of session {ids.sid}, which is not a process of this step, "
                "in a directory other jobs share")

    def _disproven(self, ids: CoreIds) -> str | None:
        if ids.pid == self.step_pid or ids.ppid in (self.step_pid, self.pid):
            return None
        if ids.sid == self.sid:
            if ids.pgrp == self.pgrp:
                return None
            leader, what, field = ids.pgrp, "process group", "pgrp"
        else:
            leader, what, field = ids.sid, "session", "session"
        # pid 1 and the low pids are another pid namespace's (a container's) as often as ours.
        if leader <= 1:
            return None
        st = proc_stat(leader, self.proc)
        if st is None or getattr(st, field) != leader or st.starttime >= self.starttime:
            return None
        name = f" ({ids.fname})" if ids.fname else ""
        return (f"dumped by pid {ids.pid}{name} in {what} {leader} ({st.comm}), which existed "
                "before this step started")
