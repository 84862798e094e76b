"""
Forward
=======

Which of the signals the ``run`` wrapper receives it passes on to the step, and what a
signal does once the step has exited.

The step runs in the wrapper's process group, so a signal sent to the group (``kill
-TERM -PGID``, ``kill(0, …)``, a terminal's ^C), to every process (``kill(-1, …)``) or to
each process of a cgroup (systemd's KillMode=control-group) reaches the step directly;
forwarding it as well would deliver it twice, and a step that shuts down gracefully on
the first SIGTERM treats the second as "now, forcefully". A signal sent to the
wrapper's pid alone (``docker stop`` of a wrapper that is PID 1, ``timeout``, ``kill
PID``) reaches only the wrapper and must be forwarded.

Both arrive with the same siginfo (SI_USER, the sender's si_pid and si_uid), so the
wrapper asks a witness: the *probe*, a forked child in the same process group that
blocks the forwarded signals and never takes one. A signal sent to the group is queued
to every member (kernel/signal.c ``__kill_pgrp_info``, members in the pgrp list from the
newest: the probe before the older wrapper, under tasklist_lock), so it is pending in the
probe (proc(5) ShdPnd) by the time the wrapper dequeues its own. The rule:

- the step is no longer in the wrapper's process group (it called setpgid or setsid):
  forward, a group signal did not reach it;
- the signal is pending in the probe, or si_code is SI_KERNEL (the tty driver signals the
  foreground group): the step has it already, do not forward;
- otherwise it was sent to the wrapper alone: forward.

A sender that signals the group's processes one by one from user space (pkill -g,
systemd) may reach the wrapper before the probe; then the step gets it twice, as it
would without this rule.
"""

from __future__ import annotations

import os
import signal

from coredump.capture.procfs import read_proc

__all__ = ("FORWARDED_SIGNALS", "SI_KERNEL", "Probe", "reaches_step", "Abandoned", "abandon_on_signals")

# The signals a CI runner or a user sends to stop a step; each is passed on to the step.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
# include/uapi/asm-generic/siginfo.h: SI_KERNEL, a signal the kernel sent (a terminal's
# ^C or ^\, a hangup) to the whole foreground process group.
SI_KERNEL = 0x80


def _pending(pid: int) -> int | None:
    """proc(5) /proc/PID/status: the signals pending for the thread (SigPnd) or the whole
    process (ShdPnd, where kill(2) queues them), as a mask of bit signo-1."""
    text = read_proc(pid, "status")
    if text is None:
        return None
    mask, found = 0, False
    for line in text.splitlines():
        if line.startswith((b"SigPnd:", b"ShdPnd:")):
            mask |= int(line.split()[1], 16)
            found = True
    return mask if found else None


class Probe:
    """The witness child: forked with the forwarded signals blocked (the caller blocks
    them first), it holds no descriptor but its end of a pipe (and `keep`) and exits when
    the wrapper closes the other end (or dies). ``spawned``: every probe's pid, for
    ``leftover`` (a probe is no process of the step).

    `keep` is a descriptor whose last close is slow and best paid by the probe as it
    exits, not by the wrapper: an inotify instance's (fsnotify_destroy_group waits for an
    SRCU grace period, some 20 ms)."""

    spawned: set = set()

    def __init__(self, keep: int = -1):
        self.pid: int | None = None
        self._control, self._keep = -1, keep
        self._start()

    def _start(self) -> None:
        try:
            read_end, self._control = os.pipe()
            pid = os.fork()
        except OSError:
            self.pid = None
            return
        if pid == 0:
            try:
                low = 0
                for fd in sorted({read_end, self._keep} - {-1}):
                    os.closerange(low, fd)
                    low = fd + 1
                os.closerange(low, 1 << 16)
                os.read(read_end, 1)
            finally:
                os._exit(0)
        os.close(read_end)
        self.pid = pid
        Probe.spawned.add(pid)

    def has_pending(self, signo: int) -> bool | None:
        """Whether `signo` was queued to the probe; None when it cannot be told."""
        if self.pid is None:
            return None
        mask = _pending(self.pid)
        return None if mask is None else bool(mask >> (signo - 1) & 1)

    def forget(self, signals) -> None:
        """Renew the probe if one of `signals` is pending in it: it came before the step
        existed, so it did not reach the step (the wrapper forwards its own copy)."""
        mask = _pending(self.pid) if self.pid is not None else None
        if mask and any(mask >> (s - 1) & 1 for s in signals):
            self.renew()

    def renew(self) -> None:
        """A new probe, with nothing pending (a pending signal would stay there forever)."""
        self.close()
        self._start()

    def reap(self) -> None:
        """Reap the probe if a signal killed it (SIGKILL to the group) and start another."""
        if self.pid is not None:
            try:
                done, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                done = self.pid
            if done == self.pid:
                os.close(self._control)
                self.pid = None
                self._start()

    def close(self, wait: bool = True) -> None:
        """Let the probe exit; reaped unless not `wait` (it then stays a zombie until the
        wrapper exits, and the wrapper does not wait for its slow last close of `keep`)."""
        if self.pid is not None:
            os.close(self._control)
            try:
                if wait:
                    os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = None


def reaches_step(info, step_pid: int, probe: Probe | None) -> bool:
    """Whether the signal described by `info` (a sigwaitinfo result) reached the step
    directly, so that forwarding it would deliver it twice (the rule in the module text)."""
    try:
        in_group = os.getpgid(step_pid) == os.getpgrp()
    except OSError:
        return False
    if not in_group:
        return False
    pending = probe.has_pending(info.si_signo) if probe is not None else None
    if pending:
        probe.renew()
        return True
    return info.si_code == SI_KERNEL


class Abandoned(BaseException):
    """A stop signal arrived after the step exited: the harvest is abandoned (a
    BaseException, so that the harvest's own ``except Exception`` does not swallow it)."""

    def __init__(self, signo: int):
        super().__init__(signo)
        self.signo = signo


def _raise_abandoned(signo, _frame):
    for other in FORWARDED_SIGNALS:  # one is enough: a second must not cut the report short
        signal.signal(other, signal.SIG_IGN)
    raise Abandoned(signo)


def abandon_on_signals() -> None:
    """From now on a forwarded signal ends the wrapper's work by raising Abandoned, so the
    wrapper still exits with the step's status. A signal the wrapper inherited as ignored
    (nohup's SIGHUP) stays ignored."""
    for signo in FORWARDED_SIGNALS:
        if signal.getsignal(signo) is not signal.SIG_IGN:
            signal.signal(signo, _raise_abandoned)
