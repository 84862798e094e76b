"""
Go samples
==========

``c_samples/go_nil/`` built by ``make -C c_samples go`` (offline: GOPATH mode, caches under
``build/go/``) and run with ``GOTRACEBACK=crash`` for real kernel cores, with what the Go
runtime printed on stderr: its own traceback is the oracle past the point gdb can unwind.
Tests that need them skip where go is not installed.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from tests import cores

__all__ = ("GO_BUILD", "GoRun", "GoFrame", "build_go_samples", "make_go_core", "parse_go_traceback")

GO_BUILD = cores.BUILD / "go"
_cache: Dict[Tuple[str, ...], GoRun] = {}


@dataclass(frozen=True)
class GoFrame:
    """One frame of the runtime's traceback: ``function(args)`` then ``\\tfile:line +0x.. pc=0x..``
    (no pc for an inlined call, printed ``function(...)``)."""

    function: str
    file: str
    line: int
    pc: Optional[int]


@dataclass(frozen=True)
class GoRun:
    exe: Path
    core: Path
    returncode: int
    stderr: str


@functools.cache
def go_path() -> Optional[str]:
    return shutil.which("go")


def build_go_samples() -> Path:
    """build/go/ with the samples built (skips the test without go)."""
    if go_path() is None:
        pytest.skip("go is not installed (Debian: golang-go): the Go samples cannot be built")
    if not all((GO_BUILD / p).exists() for p in ("go_nil", "go_nil_nodwarf")) or not _cache:
        cores.make_samples("go")
    return GO_BUILD


def make_go_core(program: str = "go_nil", *args: str) -> GoRun:
    """A core of build/go/<program> run with GOTRACEBACK=crash, and its stderr."""
    reason = cores.core_skip_reason()
    if reason:
        pytest.skip(reason)
    key = (program, *args)
    if key in _cache and _cache[key].core.exists():
        return _cache[key]
    exe = build_go_samples() / program
    workdir = cores.scratch_dir(f"go-{program}-")  # removed with the session's cores
    env = dict(os.environ, GOTRACEBACK="crash")
    proc = subprocess.run([str(exe), *args], cwd=workdir, env=env, preexec_fn=cores._raise_core_limit,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    found = sorted(p for p in workdir.iterdir() if p.name == "core" or p.name.startswith("core."))
    if not found:
        raise RuntimeError(f"{exe} exited {proc.returncode} without leaving a core in {workdir}")
    _cache[key] = GoRun(exe, found[0], proc.returncode, proc.stderr)
    return _cache[key]


_GOROUTINE = re.compile(r"^goroutine (\d+) \[")
# The name runs to the argument list's "(": the last one the name reaches, since a method's
# receiver has its own (``main.(*ledger).post(0x60?, ...)``).
_CALL = re.compile(r"^(\S+)\((.*)\)$")
_WHERE = re.compile(r"^\t(\S+):(\d+)(?: \+0x[0-9a-f]+)?(?: fp=0x[0-9a-f]+ sp=0x[0-9a-f]+ pc=(0x[0-9a-f]+))?$")


def parse_go_traceback(stderr: str) -> Dict[int, List[GoFrame]]:
    """goroutine id -> its frames, innermost first, from the runtime's traceback
    (runtime/traceback.go printFuncName / print of file:line with GOTRACEBACK>=system)."""
    out: Dict[int, List[GoFrame]] = {}
    current: Optional[List[GoFrame]] = None
    pending: Optional[str] = None
    for line in stderr.splitlines():
        if (m := _GOROUTINE.match(line)) is not None:
            current = out.setdefault(int(m.group(1)), [])
            pending = None
        elif current is not None and (m := _CALL.match(line)) is not None:
            pending = m.group(1)
        elif current is not None and pending and (m := _WHERE.match(line)) is not None:
            pc = int(m.group(3), 16) if m.group(3) else None
            current.append(GoFrame(pending, m.group(1), int(m.group(2)), pc))
            pending = None
        elif not line.strip():
            current = None
    return out
