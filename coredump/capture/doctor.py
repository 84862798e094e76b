"""
Doctor
======

A preflight check: will a crash on this machine leave a core where ``coredump run``
finds it? Each check says what it found, in plain words, and the fix when it is a problem.
"""

from __future__ import annotations

import os
import resource
import shutil

from coredump.capture.core_pattern import CorePattern, describe_core_pattern, pipe_kind, read_core_pattern
from coredump.capture.watch import reuses_names
from coredump.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Optional, Sequence, Tuple

__all__ = ("Check", "diagnose", "render_checks", "cores_capturable", "detect_container")

OK, WARN, PROBLEM = "ok", "warning", "problem"


@dataclass(frozen=True)
class Check:
    """One finding: ``level`` is ok, warning (cores are captured, with a caveat) or
    problem (cores would not be captured); ``fix`` says what to do about it."""

    name: str
    level: str
    message: str
    fix: Optional[str] = None
    caveat: Optional[str] = None  # what the verdict must add when cores are captured


def _limit(value: int) -> str:
    return "unlimited" if value == resource.RLIM_INFINITY else f"{value} bytes"


def check_rlimit(soft: int, hard: int) -> Check:
    text = f"RLIMIT_CORE is soft {_limit(soft)}, hard {_limit(hard)}"
    if hard == 0:
        return Check("rlimit", PROBLEM,
                     f"{text}: no process may dump core and `coredump run` cannot raise it",
                     "raise the hard limit where the job starts: `ulimit -Hc unlimited` as root, "
                     "`docker run --ulimit core=-1`, or LimitCORE=infinity for a systemd service")
    if hard != resource.RLIM_INFINITY:
        return Check("rlimit", WARN, f"{text}: cores larger than {_limit(hard)} will be truncated",
                     "raise the hard limit: `ulimit -Hc unlimited` as root or `docker run --ulimit core=-1`")
    if soft != hard:
        return Check("rlimit", OK, f"{text}: `coredump run` raises the soft limit for its step "
                     "(a bare step would dump no core)")
    return Check("rlimit", OK, text)


def check_pattern(pattern: Optional[CorePattern], in_container: bool) -> Check:
    if pattern is None:
        return Check("core_pattern", PROBLEM, "cannot read /proc/sys/kernel/core_pattern (not Linux?)")
    text = f"core_pattern is {pattern.raw!r}: {describe_core_pattern(pattern)}"
    where = ("on the host (a container shares the host's core_pattern) or in a privileged container"
             if in_container else "on this machine")
    file_fix = f"set a file pattern {where}: `sudo sysctl -w kernel.core_pattern=core.%p`"
    kind = pipe_kind(pattern)
    if kind == "systemd-coredump":
        if shutil.which("coredumpctl"):
            return Check("core_pattern", WARN, text + "; `coredump run` reads them back with coredumpctl",
                         file_fix)
        return Check("core_pattern", PROBLEM, text + "; coredumpctl is not installed to read them back",
                     f"install systemd-coredump's coredumpctl, or {file_fix}")
    if kind == "apport":
        return Check("core_pattern", PROBLEM, text + "; apport keeps no core for programs outside a package",
                     f"{file_fix} (and `sudo systemctl disable --now apport`)")
    if kind == "other":
        return Check("core_pattern", PROBLEM, text + "; coredump cannot read cores back from it",
                     f"{file_fix}, or pass --core-dir DIR if that program writes cores to DIR")
    if not pattern.path:
        return Check("core_pattern", PROBLEM, text, file_fix)
    if reuses_names(pattern):
        # format_corename() appends ".PID" only with kernel.core_uses_pid=1; otherwise every
        # crash in one directory writes the same file name, and do_coredump unlinks the
        # previous core before it writes the next: the last one wins.
        return Check("core_pattern", WARN, text + "; a second crash in the same directory overwrites the first "
                     "one's core. `coredump run` keeps each: while the step runs it moves every core to "
                     "NAME.PID as it is written (inotify); `coredump harvest` alone finds only the last",
                     f"`sudo sysctl -w kernel.core_pattern=core.%p` {where} (or kernel.core_uses_pid=1)",
                     caveat="a second crash in one directory overwrites the first one's core unless "
                            "`coredump run` is watching (it moves each core to NAME.PID)")
    return Check("core_pattern", OK, text)


def check_directory(pattern: Optional[CorePattern], cwd: str) -> Check:
    """The directory the kernel writes into must exist and be writable by the crasher."""
    if pattern is None or pattern.is_pipe or not pattern.path:
        return Check("directory", OK, "no core directory to check")
    if pattern.is_absolute:
        d, whose = pattern.directory or "/", "core_pattern's directory"
    else:
        d, whose = os.path.join(cwd, os.path.dirname(pattern.path)), "the working directory"
    if "%" in pattern.path.rsplit("/", 1)[0] and pattern.is_absolute:
        whose += " (its subdirectories must exist: the kernel creates no directory)"
    if not os.path.isdir(d):
        return Check("directory", PROBLEM, f"{whose} {d} does not exist: the kernel creates no directory",
                     f"`mkdir -p {d} && chmod 1777 {d}`")
    if not os.access(d, os.W_OK | os.X_OK):
        return Check("directory", PROBLEM, f"{whose} {d} is not writable by this user",
                     f"`sudo chmod 1777 {d}` or run the step where it can write")
    free = shutil.disk_usage(d).free
    return Check("directory", OK, f"{whose} {d} is writable ({free // (1 << 20)} MiB free)")


def check_output(output: str) -> Check:
    parent = os.path.dirname(os.path.abspath(output)) or "/"
    target = output if os.path.isdir(output) else parent
    if os.path.isdir(target) and os.access(target, os.W_OK | os.X_OK):
        return Check("output", OK, f"the artifact directory {output} can be written")
    return Check("output", PROBLEM, f"the artifact directory {output} cannot be written",
                 "pass --output DIR somewhere writable")


def detect_container() -> Optional[str]:
    """The container runtime this process seems to run in, else None."""
    if os.path.exists("/.dockerenv"):
        return "docker"
    if os.path.exists("/run/.containerenv"):
        return "podman"
    if os.environ.get("container"):
        return os.environ["container"]
    try:
        with open("/proc/1/cgroup") as f:
            cgroup = f.read()
    except OSError:
        return None
    for name in ("docker", "kubepods", "containerd", "lxc", "libpod"):
        if name in cgroup:
            return name
    return None


def check_container(container: Optional[str]) -> Check:
    if container is None:
        return Check("container", OK, "not in a container (as far as can be told)")
    return Check("container", OK, f"in a container ({container}): core_pattern and its directory are the "
                 "host's, so a path it names is a path on the host")


def diagnose(pattern: Optional[CorePattern] = None, limits: Optional[Tuple[int, int]] = None,
             cwd: Optional[str] = None, output: str = "coredump-artifacts",
             container: Optional[str] = "detect") -> List[Check]:
    """Every check, on this machine unless the arguments say otherwise."""
    if pattern is None:
        try:
            pattern = read_core_pattern()
        except OSError:
            pattern = None
    if container == "detect":
        container = detect_container()
    soft, hard = limits if limits is not None else resource.getrlimit(resource.RLIMIT_CORE)
    return [
        check_rlimit(soft, hard),
        check_pattern(pattern, container is not None),
        check_directory(pattern, cwd or os.getcwd()),
        check_container(container),
        check_output(output),
    ]


def cores_capturable(checks: Sequence[Check]) -> bool:
    return all(c.level != PROBLEM for c in checks)


def render_checks(checks: Sequence[Check]) -> str:
    mark = {OK: "ok     ", WARN: "warning", PROBLEM: "PROBLEM"}
    lines = []
    for c in checks:
        lines.append(f"[{mark[c.level]}] {c.message}")
        if c.fix and c.level != OK:
            lines.append(f"          fix: {c.fix}")
    caveats = [c.caveat for c in checks if c.caveat]
    verdict = ("cores will be captured" + "".join(f"; but {c}" for c in caveats) if cores_capturable(checks)
               else "cores would NOT be captured: fix the problems above")
    lines.append(f"=> {verdict}")
    return "\n".join(lines) + "\n"
