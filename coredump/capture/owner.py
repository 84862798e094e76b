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

__all__ = ("CoreIds", "ProcStat", "read_core_ids", "proc_stat", "StepTree")

# include/uapi/linux/elf.h, and the gABI's program header type of a note segment.
NT_PRSTATUS, NT_PRPSINFO, PT_NOTE, PN_XNUM = 1, 3, 4, 0xFFFF
_MAX_NOTES = 64 << 20  # no kernel writes a note segment near this big

CoreIds = namedtuple("CoreIds", "pid ppid pgrp sid fname")
ProcStat = namedtuple("ProcStat", "comm ppid pgrp session starttime")


def _note_segments(f, head: bytes):
    """(p_offset, p_filesz) of each PT_NOTE (gABI ELF header and program header layouts)."""
    is64, end = head[4] == 2, "<" if head[5] == 1 else ">"
    if is64:
        phoff, = struct.unpack_from(end + "Q", head, 32)
        shoff, = struct.unpack_from(end + "Q", head, 40)
        phentsize, phnum = struct.unpack_from(end + "HH", head, 54)
    else:
        phoff, shoff = struct.unpack_from(end + "II", head, 28)
        phentsize, phnum = struct.unpack_from(end + "HH", head, 42)
    if phnum == PN_XNUM:  # gABI: the real count is sh_info of section header 0
        f.seek(shoff + (44 if is64 else 28))
        phnum, = struct.unpack(end + "I", f.read(4))
    f.seek(phoff)
    table = f.read(phentsize * phnum)
    for i in range(len(table) // phentsize if phentsize else 0):
        at = i * phentsize
        if struct.unpack_from(end + "I", table, at)[0] == PT_NOTE:
            if is64:
                yield struct.unpack_from(end + "Q", table, at + 8)[0], struct.unpack_from(end + "Q", table, at + 32)[0]
            else:
                yield struct.unpack_from(end + "I", table, at + 4)[0], struct.unpack_from(end + "I", table, at + 16)[0]


def _iter_notes(data: bytes, end: str):
    """(n_type, desc) of each note (gABI "Note Section": sizes padded to 4 bytes)."""
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, n_type = struct.unpack_from(end + "III", data, pos)
        start = pos + 12 + ((namesz + 3) & ~3)
        if start + descsz > len(data):
            return
        yield n_type, data[start:start + descsz]
        pos = start + ((descsz + 3) & ~3)


def _ids(notes, is64: bool, end: str):
    prstatus = None
    for n_type, desc in notes:
        # include/linux/elfcore.h struct elf_prpsinfo on a 64-bit ABI: pr_pid, pr_ppid,
        # pr_pgrp, pr_sid at 24..40, pr_fname[16] at 40.
        if n_type == NT_PRPSINFO and is64 and len(desc) >= 56:
            fname = desc[40:56].split(b"\0", 1)[0].decode("utf-8", "replace")
            return CoreIds(*struct.unpack_from(end + "iiii", desc, 24), fname)
        if n_type == NT_PRSTATUS and prstatus is None:
            prstatus = desc
    # struct elf_prstatus: pr_pid..pr_sid follow elf_siginfo, pr_cursig and the two
    # unsigned long signal sets: at 32 on a 64-bit ABI, at 24 on a 32-bit one.
    at = 32 if is64 else 24
    if prstatus is not None and len(prstatus) >= at + 16:
        return CoreIds(*struct.unpack_from(end + "iiii", prstatus, at), "")
    return None


def read_core_ids(path: str) -> CoreIds | None:
    """The process ids recorded in the core at `path`; None when it has none readable."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 52 or head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
                return None
            is64, end = head[4] == 2, "<" if head[5] == 1 else ">"
            notes = []
            for offset, size in list(_note_segments(f, head)):
                f.seek(offset)
                notes += _iter_notes(f.read(min(size, _MAX_NOTES)), end)
    except (OSError, struct.error):
        return None
    return _ids(notes, is64, end)


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

    A core is *not* the step's only when that is certain: it was dumped in a session (or,
    within ours, a process group) whose leader is alive and started before the wrapper
    did. No process of the step can join a group or session that existed before it
    (setsid(2) makes a new one, setpgid(2) joins one of the caller's session only), and
    the leader's pid cannot have been reused while it is alive. Anything else (no ids, a
    leader gone, a step descendant that made its own session) counts as the step's:
    nothing is ever lost by being too careful."""

    def __init__(self, step_pid: int, proc: str = "/proc"):
        self.step_pid, self.proc = step_pid, proc
        self.pid, self.pgrp, self.sid = os.getpid(), os.getpgrp(), os.getsid(0)
        own = proc_stat(self.pid, proc)
        self.starttime = own.starttime if own else None

    def foreign(self, ids: CoreIds | None) -> str | None:
        """Why the core with `ids` is not the step's; None when it is (or may be)."""
        if ids is None or self.starttime is None:
            return None
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
