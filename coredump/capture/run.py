"""
Run
===

Run one CI step with cores enabled: raise RLIMIT_CORE, spawn the command with its
standard streams untouched, forward the termination signals that did not reach it
directly (``forward``), return the step's own exit status (shell convention), then
harvest the cores that appeared while it ran; a stop signal during the harvest ends it
with the step's status all the same.

Only the standard library's cheapest modules are imported here: a step that does
not crash pays for a spawn, a wait and a directory walk, nothing else.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import time
from collections.abc import Callable, Sequence

from coredump.capture.console import echo as _echo
from coredump.capture.forward import FORWARDED_SIGNALS, Abandoned, Probe, abandon_on_signals, reaches_step

__all__ = ("FORWARDED_SIGNALS", "raise_core_limit", "exit_status", "run_step", "run")

# What the wrapper waits for while the step runs: its exit, and the signals it forwards.
_WAITED = (signal.SIGCHLD, *FORWARDED_SIGNALS)
# The signals Python itself ignores at start-up go back to SIG_DFL for the step, as
# subprocess's restore_signals does (Python/pylifecycle.c _Py_RestoreSignals). Everything else
# the wrapper inherited reaches the step unchanged: a SIGHUP that nohup ignored stays ignored,
# as it would without the wrapper (handlers are reset by exec anyway).
_PYTHON_IGNORED = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, name))


def _limit_text(value: int) -> str:
    return "unlimited" if value == resource.RLIM_INFINITY else f"{value} bytes"


def raise_core_limit() -> str | None:
    """Raise RLIMIT_CORE for this process and its children: both limits to unlimited
    when allowed (CAP_SYS_RESOURCE), else the soft limit to the hard one.

    Returns a sentence when cores stay limited, None when they are unlimited.
    """
    inf = resource.RLIM_INFINITY
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (inf, inf))
        return None
    except (ValueError, OSError):
        pass
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
    except (ValueError, OSError) as exc:
        return f"cannot raise RLIMIT_CORE (soft {_limit_text(soft)}, hard {_limit_text(hard)}): {exc}"
    if hard == 0:
        return ("the hard RLIMIT_CORE is 0: no process of this step can dump core (raise it with "
                "`ulimit -Hc unlimited` as root, or `docker run --ulimit core=-1`)")
    if hard != inf:
        return f"the hard RLIMIT_CORE is {_limit_text(hard)}: larger cores will be truncated"
    return None


def exit_status(wait_status: int) -> int:
    """The shell's status: N for exit(N), 128+N for death by signal N.

    >>> exit_status(7 << 8), exit_status(11)
    (7, 139)
    """
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def _coarse_now_ns() -> int:
    """Now, by the clock file timestamps use (the kernel's coarse realtime clock), so a
    core written right after this moment never has an earlier mtime."""
    clock = getattr(time, "CLOCK_REALTIME_COARSE", None)
    if clock is not None:
        return time.clock_gettime_ns(clock)
    return time.time_ns() - 20_000_000  # a jiffy or two of slack


def _execvp(argv: list[str]) -> None:
    """execvp(3) as POSIX specifies it: search PATH when the name has no slash, and run a
    file the kernel refuses as an executable format (ENOEXEC: a script without ``#!``) with
    /bin/sh, as glibc's execvp, sh, env, timeout and nohup do (``/bin/sh FILE ARGS…``).

    os.execvp has no such fallback, and tries the rest of PATH after a failure instead.
    Returns only by raising the first error other than "not found" (as execvp reports)."""
    name = argv[0]
    if not name:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
    # An empty PATH entry is the working directory (POSIX XBD 8.3, PATH).
    dirs = [None] if "/" in name else (os.environ.get("PATH") or os.defpath).split(os.pathsep)
    first = None
    for d in dirs:
        path = name if d is None else os.path.join(d or ".", name)
        try:
            os.execv(path, argv)
        except OSError as exc:
            if exc.errno == errno.ENOEXEC:
                os.execv("/bin/sh", ["/bin/sh", path, *argv[1:]])
            if first is None and exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                first = exc
            last = exc
    raise first or last


def _exec_child(argv: Sequence[str], report: int) -> None:
    """In the forked child: Python's own ignored signals back to their default action, an
    empty mask, then exec; on failure the errno goes to `report` and the child exits 127."""
    try:
        for signo in _PYTHON_IGNORED:
            signal.signal(signo, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        _execvp(list(argv))
    except OSError as exc:
        os.write(report, str(exc.errno or 0).encode())
    finally:
        os._exit(127)


def _spawn(argv: Sequence[str]) -> int:
    """Start the step in the wrapper's own process group and session (a terminal's ^C
    and a CI runner's kill of the group reach it as they would without the wrapper).

    fork and exec, not posix_spawn: glibc's posix_spawn sets its internal signals 32 and
    33 SIG_IGN in the child (sysdeps/unix/sysv/linux/spawni.c, is_internal_signal) and
    POSIX_SPAWN_SETSIGDEF cannot name them, so the step would get them ignored where its
    parent had not. A forked child keeps every fd (a make jobserver's pipe) and the tty."""
    report_r, report_w = os.pipe()  # O_CLOEXEC: closed by a successful exec
    try:
        pid = os.fork()
        if pid == 0:
            os.close(report_r)
            _exec_child(argv, report_w)
        os.close(report_w)
        report_w = -1
        with open(report_r, "rb", closefd=False) as f:
            failure = f.read()
    finally:
        os.close(report_r)
        if report_w >= 0:
            os.close(report_w)
    if failure:
        os.waitpid(pid, 0)
        code = int(failure)
        raise (FileNotFoundError if code == errno.ENOENT else OSError)(code, os.strerror(code))
    return pid


def _on_signal(info, pid: int, probe: Probe | None) -> int | None:
    """Act on one signal taken while the step runs: the step's wait status once SIGCHLD
    says it exited; a forwarded signal that did not reach it directly is passed on
    (``forward.reaches_step``)."""
    if info.si_signo == signal.SIGCHLD:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return status
        if probe is not None:
            probe.reap()
    elif not reaches_step(info, pid, probe):
        try:
            os.kill(pid, info.si_signo)
        except ProcessLookupError:
            pass
    return None


def _wait_forwarding(pid: int, probe: Probe | None) -> int:
    """Wait for `pid`, acting on each signal; its wait status.

    The signals are blocked and taken synchronously with sigwaitinfo, so none is lost
    between the spawn and the wait, and SIGCHLD ends the wait.
    """
    while True:
        status = _on_signal(signal.sigwaitinfo(_WAITED), pid, probe)
        if status is not None:
            return status


def _signal_poller(watcher):
    """A signalfd for the waited signals and a poll(2) on it and the watcher's inotify
    descriptor, made before the spawn (the first crash may come at once); None when
    signalfd is missing (the step is then waited for with sigwaitinfo)."""
    import select

    from coredump.capture.inotify import SignalFd

    try:
        sfd = SignalFd(_WAITED)
    except OSError:
        return None
    poller = select.poll()
    poller.register(sfd.fd, select.POLLIN)
    poller.register(watcher.fd, select.POLLIN)
    return sfd, poller


def _wait_watching(pid: int, probe: Probe | None, watcher, sfd, poller) -> int:
    """`_wait_forwarding`, with the watcher's inotify events handled as they come: the
    same blocked signals are read from the signalfd, and one poll(2) waits for both."""
    while True:
        poller.poll()
        if watcher is not None and not _watch_step(watcher):
            poller.unregister(watcher.fd)
            watcher = None
        for info in sfd.read():
            status = _on_signal(info, pid, probe)
            if status is not None:
                return status


def _watch_step(watcher, finish: bool = False) -> bool:
    """Handle the watcher's events (with `finish`, name the cores held); False (said
    once) when it failed and is given up: the wrapper's own problem never disturbs the
    step, and the cores stay where they are, found by the search after it."""
    if watcher.broken:
        return False
    try:
        watcher.finish() if finish else watcher.process()
        return True
    except Exception as exc:  # noqa: BLE001
        watcher.broken = True
        watcher.echo(f"coredump: warning: stopped watching for cores ({type(exc).__name__}: {exc})")
        return False


def _realtime():
    """Give the wrapper a real-time scheduling class while it watches (SCHED_RR at the
    lowest priority, reset for every child it forks: sched(7) SCHED_RESET_ON_FORK), where
    that is allowed (CAP_SYS_NICE, RLIMIT_RTPRIO); a function that undoes it, or None.

    The watcher sleeps but for the moment a core appears, and must then take hold of it
    before the shell has started the next crashing program, under a millisecond; on a
    loaded machine a default-priority wake-up often comes later (2-3 of 30 runs of three
    back-to-back crashes lost one at load 4-7 on 2 CPUs; none of 70 with SCHED_RR). Set
    before the spawn, so that the first crash is not missed; the step's own scheduling is
    the wrapper's as it was."""
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_RR | os.SCHED_RESET_ON_FORK, os.sched_param(1))
    except (OSError, AttributeError):
        return None
    return lambda: os.sched_setscheduler(0, policy, param)


def _nicer():
    """Else a lower niceness (setpriority(2); CAP_SYS_NICE or RLIMIT_NICE), set after the
    spawn (a child inherits it); a function that undoes it."""
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, max(nice - 10, -20))
    except OSError:
        pass
    return lambda: os.setpriority(os.PRIO_PROCESS, 0, nice)


def run_step(argv: Sequence[str], watcher=None) -> tuple[int, int, int, int | None]:
    """Run the step; (exit status, start and end in ns since the epoch, its pid).

    The caller has blocked SIGCHLD and FORWARDED_SIGNALS (they stay blocked on return).
    `watcher` (a ``watch.CoreWatcher``) moves each core aside as it is written.
    A command that cannot be started gets the shell's 127 (not found) or 126, and no pid.
    """
    started = _coarse_now_ns()
    probe = Probe(keep=watcher.fd if watcher is not None else -1)
    polled = _signal_poller(watcher) if watcher is not None else None
    undo = _realtime() if polled is not None else None
    try:
        try:
            pid = _spawn(argv)
        except OSError as exc:
            _echo(f"coredump: cannot run {argv[0]}: {exc.strerror}")
            return (127 if isinstance(exc, FileNotFoundError) else 126), started, time.time_ns(), None
        probe.forget(FORWARDED_SIGNALS)  # a group signal from before the step existed is passed on
        if polled is None:
            status = exit_status(_wait_forwarding(pid, probe))
        else:
            watcher.step_pid = pid
            undo = undo or _nicer()
            status = exit_status(_wait_watching(pid, probe, watcher, *polled))
            undo()
            undo = None
            if _watch_step(watcher):  # the last crash's core was closed before the step exited
                _watch_step(watcher, finish=True)
    finally:
        if undo is not None:
            undo()
        if polled is not None:
            polled[0].close()
        if watcher is not None:
            watcher.close()  # before the probe's copy: the probe makes the slow last close
        probe.close(wait=watcher is None)
    return status, started, time.time_ns(), pid


def _read_pattern():
    from coredump.capture.core_pattern import read_core_pattern

    try:
        return read_core_pattern()
    except OSError:
        return None


def _start_watcher(pattern, core_dirs: Sequence[str], output: str, echo):
    """A ``watch.CoreWatcher`` when `pattern` gives two crashes one file name, else None;
    where inotify cannot be used, None and a warning."""
    from coredump.capture.watch import CoreWatcher, reuses_names

    if not reuses_names(pattern):
        return None
    shared = [d for d in core_dirs if os.path.isdir(d)]
    try:
        return CoreWatcher([".", *shared], pattern, exclude=[output], echo=echo, shared=shared)
    except OSError as exc:
        echo(f"coredump: warning: cannot watch for cores ({exc.strerror or exc}): with core_pattern "
             f"{pattern.raw!r} a second crash in one directory overwrites the first one's core")
        return None


def run(argv: Sequence[str], output: str = "coredump-artifacts", core_dirs: Sequence[str] = (),
        make_options: Callable[[], object] | None = None, echo: Callable[[str], None] = _echo) -> int:
    """``coredump run``: the step's exit status, whatever happens to the harvest after it.

    Cores are searched in the working directory tree, `core_dirs` and core_pattern's
    directory; a core another job dumped meanwhile is left where it is. `make_options`
    builds the ``HarvestOptions`` once a core is found (the default stores into
    `output`); it is not called when nothing crashed. A stop signal after the step has
    exited abandons the harvest (the cores not stored stay where they were).
    """
    note = raise_core_limit()
    if note:
        echo(f"coredump: {note}")
    pattern = _read_pattern()
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, set(_WAITED))
    watcher = None
    try:
        watcher = _start_watcher(pattern, core_dirs, output, echo)
        status, started, _finished, pid = run_step(argv, watcher)
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        raise
    finally:
        if watcher is not None:
            watcher.close()
    abandon_on_signals()
    try:
        # A stop signal that came after the step's exit is taken here, by the handler.
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        moved = watcher.moved if watcher is not None else []
        from coredump.capture.collect import collect

        collect(argv, status, started, pid, output, core_dirs, make_options, echo, pattern, moved)
    except Abandoned as exc:
        echo(f"coredump: {signal.Signals(exc.signo).name} while collecting cores: stopped; "
             "the cores not stored yet stay where they were")
    except KeyboardInterrupt:
        echo("coredump: interrupted while collecting cores; they stay where they were")
    except Exception as exc:  # the wrapper's own problem never changes the step's status
        if os.environ.get("COREDUMP_DEBUG"):
            raise
        echo(f"coredump: error while collecting cores ({type(exc).__name__}: {exc}); "
             "the cores stay where they were")
    return status
