"""
Real kernel cores made at test time from ``c_samples/``.

``make_core(variant, program, *args)`` builds the samples once (``make -C c_samples``), runs
the program in a fresh directory with RLIMIT_CORE raised, and returns the core the kernel
wrote. Cores are cached per session. Where this machine cannot write cores into the working
directory (core_pattern pipes to a program, or names another directory), ``core_skip_reason``
says why and the tests that need cores skip.
"""

from __future__ import annotations

import fcntl
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "c_samples"
BUILD = SAMPLES / "build"

__all__ = ("ROOT", "SAMPLES", "BUILD", "core_skip_reason", "make_samples", "build_samples", "make_core",
           "run_crash", "run_and_kill")


def core_skip_reason() -> Optional[str]:
    """None when the kernel writes cores into the crashing process's working directory."""
    try:
        pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    except OSError:
        return "cannot read /proc/sys/kernel/core_pattern (not Linux?)"
    if pattern.startswith("|"):
        return f"core_pattern pipes cores to a program ({pattern.split()[0]}); the kernel writes no core file here"
    if "/" in pattern:
        return f"core_pattern {pattern!r} writes cores outside the working directory"
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    if hard == 0:
        return "the hard RLIMIT_CORE is 0: no process here may dump core"
    return None


def make_samples(*args: str) -> None:
    """``make -C c_samples ARGS`` holding an flock(2) on build/.make.lock: the processes of one
    run (pytest-xdist workers) share the checkout, and two makes writing one file race; the
    second finds what the first built."""
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / ".make.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(["make", "-s", "-C", str(SAMPLES), *args], check=True, stdout=subprocess.DEVNULL)


_built = False


def build_samples() -> None:
    global _built
    if not _built:
        make_samples(f"-j{os.cpu_count() or 2}")
        _built = True


def _raise_core_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))


def run_crash(argv, cwd: Path, env=None, timeout: float = 60) -> Tuple[int, Optional[Path]]:
    """Run argv in cwd with cores enabled; (returncode, core path or None)."""
    proc = subprocess.run(argv, cwd=cwd, preexec_fn=_raise_core_limit, env=env, timeout=timeout,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    cores = sorted(p for p in cwd.iterdir() if p.name == "core" or p.name.startswith("core."))
    return proc.returncode, (cores[0] if cores else None)


def _state(pid: int) -> str:
    """The state letter of /proc/PID/stat (proc(5): the field after the parenthesized comm)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def run_and_kill(argv, cwd: Path, signo: int = signal.SIGABRT, timeout: float = 60) -> Optional[Path]:
    """Run argv in cwd with cores enabled, send it `signo` once it sleeps in the kernel
    (state S: it is past exec and loading, blocked in its own code), and return its core."""
    proc = subprocess.Popen(argv, cwd=cwd, preexec_fn=_raise_core_limit, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while (state := _state(proc.pid)) != "S":
            if state in "ZX" or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} never went to sleep (state {state})")
            os.sched_yield()
        os.kill(proc.pid, signo)
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    found = sorted(p for p in cwd.iterdir() if p.name == "core" or p.name.startswith("core."))
    return found[0] if found else None


_cache: Dict[Tuple, Path] = {}
_tmp_root: Optional[Path] = None


def make_core(variant: str, program: str, *args: str) -> Path:
    """A core of c_samples/build/<variant>/<program> run with args (cached per session)."""
    global _tmp_root
    key = (variant, program, args)
    if key in _cache and _cache[key].exists():
        return _cache[key]
    build_samples()
    if _tmp_root is None:
        _tmp_root = Path(tempfile.mkdtemp(prefix="coredump-cores-"))
    exe = BUILD / variant / program
    workdir = _tmp_root / f"{variant}-{program}-{len(_cache)}"
    workdir.mkdir()
    rc, core = run_crash([str(exe), *args], workdir)
    if core is None:
        raise RuntimeError(f"{exe} exited {rc} without leaving a core in {workdir}")
    _cache[key] = core
    return core


def scratch_dir(prefix: str) -> Path:
    """A new directory under this session's core directory, removed with it by cleanup()."""
    global _tmp_root
    if _tmp_root is None:
        _tmp_root = Path(tempfile.mkdtemp(prefix="coredump-cores-"))
    return Path(tempfile.mkdtemp(prefix=prefix, dir=_tmp_root))


def cleanup() -> None:
    if _tmp_root is not None:
        shutil.rmtree(_tmp_root, ignore_errors=True)


AARCH64_SYSROOT = "/usr/aarch64-linux-gnu"


def qemu_skip_reason() -> Optional[str]:
    """None when aarch64 samples can be built and run under qemu-user here."""
    for tool in ("qemu-aarch64", "aarch64-linux-gnu-gcc", "aarch64-linux-gnu-g++"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: qemu-user, gcc-aarch64-linux-gnu, g++-aarch64-linux-gnu)"
    if not Path(AARCH64_SYSROOT).is_dir():
        return f"{AARCH64_SYSROOT} is missing (Debian: libc6-dev-arm64-cross)"
    return None


_built_aarch64 = False


def make_qemu_core(variant: str, program: str, *args: str) -> Path:
    """A core written by qemu-aarch64 for c_samples/build/aarch64-<variant>/<program>.

    qemu-user writes the guest's core itself, as qemu_<prog>_<date>-<time>_<pid>.core in the
    working directory (no NT_FILE, no NT_SIGINFO, no text pages)."""
    global _built_aarch64, _tmp_root
    key = ("aarch64", variant, program, args)
    if key in _cache and _cache[key].exists():
        return _cache[key]
    if not _built_aarch64:
        make_samples("-j2", "aarch64")
        _built_aarch64 = True
    if _tmp_root is None:
        _tmp_root = Path(tempfile.mkdtemp(prefix="coredump-cores-"))
    exe = BUILD / f"aarch64-{variant}" / program
    workdir = _tmp_root / f"aarch64-{variant}-{program}-{len(_cache)}"
    workdir.mkdir()
    subprocess.run(["qemu-aarch64", "-L", AARCH64_SYSROOT, str(exe), *args], cwd=workdir,
                   preexec_fn=_raise_core_limit, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   stdin=subprocess.DEVNULL, timeout=60)
    for host_core in workdir.glob("core*"):
        host_core.unlink()  # qemu itself died of the same signal: the host's core of qemu
    cores = sorted(workdir.glob("qemu_*.core"))
    if not cores:
        raise RuntimeError(f"qemu-aarch64 {exe} left no guest core in {workdir}")
    _cache[key] = cores[0]
    return cores[0]
