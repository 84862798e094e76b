"""
Rust samples
============

``c_samples/rust_panic.rs`` built by ``make -C c_samples rust`` and run for real kernel cores;
tests that need them skip where rustc is not installed.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Tuple

import pytest

from tests import cores

__all__ = ("RUST_BUILD", "rustc_path", "build_rust_samples", "make_rust_core")

RUST_BUILD = cores.BUILD / "rust"
_cache: Dict[Tuple[str, ...], Path] = {}


@functools.cache
def rustc_path():
    """rustc on PATH, else rustup's default place (~/.cargo/bin), else None; also None when
    the rustc found cannot run (a rustup proxy without its toolchain under this $HOME)."""
    found = shutil.which("rustc")
    if not found:
        home = Path.home() / ".cargo" / "bin" / "rustc"
        found = str(home) if home.exists() else None
    if found is None:
        return None
    try:
        works = subprocess.run([found, "--version"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        works = False
    return found if works else None


def build_rust_samples() -> Path:
    """build/rust/ with the samples built (skips the test without rustc)."""
    rustc = rustc_path()
    if rustc is None:
        pytest.skip("no working rustc (not installed, or no toolchain): the Rust samples cannot be built")
    if not all((RUST_BUILD / p).exists() for p in ("rust_panic", "rust_panic_legacy", "rust_panic_nodebug")) \
            or not _cache:
        cores.make_samples("rust", f"RUSTC={rustc}")
        _cache[()] = RUST_BUILD
    return RUST_BUILD


def make_rust_core(program: str, *args: str) -> Path:
    """A core of build/rust/<program> run with args, without RUST_BACKTRACE (std would map
    the executable and libc again to symbolize its own backtrace)."""
    reason = cores.core_skip_reason()
    if reason:
        pytest.skip(reason)
    key = (program, *args)
    if key in _cache and _cache[key].exists():
        return _cache[key]
    exe = build_rust_samples() / program
    workdir = Path(tempfile.mkdtemp(prefix=f"coredump-rust-{program}-"))
    env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
    rc, core = cores.run_crash([str(exe), *args], workdir, env=env)
    if core is None:
        raise RuntimeError(f"{exe} exited {rc} without leaving a core in {workdir}")
    _cache[key] = core
    return core
