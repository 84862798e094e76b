"""
Bench install
=============

The copy of coredump that ``make bench`` times: the checkout built as a user's ``pip install
coredump`` gets it (sdist, then a wheel built from it) and installed with its runtime
dependencies into a scratch virtual environment made from the running interpreter.

Why not the developer's ``.venv``: it has the project installed editable, and setuptools'
``__editable___coredump_…_finder.pth`` imports pathlib, re, urllib.parse … at every start of
that interpreter (~16 ms of its ~26 ms ``site``), a cost no installed copy has.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import List, Tuple

__all__ = ("install_copy",)

PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]


def _run(argv: List[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, **kwargs)


def _build_wheel(root: Path, out: Path) -> Path:
    """A wheel built from the checkout's sdist (pip builds it in a directory of its own, so
    the checkout gets no build/; the sdist's egg-info is .gitignore'd), with the running
    interpreter's setuptools: no download."""
    code = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    sdist = _run([sys.executable, "-c", code, str(out)], cwd=root, check=True).stdout.strip().splitlines()[-1]
    _run(PIP + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(out / sdist)], check=True)
    return next(out.glob("coredump-*.whl"))


def _dependency_dirs() -> List[str]:
    """Where the running interpreter has coredump's runtime dependencies (its metadata's
    Requires-Dist without an extra marker)."""
    dirs = []
    for req in metadata.requires("coredump") or ():
        if "extra ==" in req:
            continue
        name = req.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip()
        where = str(metadata.distribution(name).locate_file(""))
        if where not in dirs:
            dirs.append(where)
    return dirs


def install_copy(root: Path, scratch: Path) -> Tuple[str, str]:
    """(python of a scratch venv with coredump installed from a wheel, how its dependencies
    came). The dependencies come from the package index (pip's cache makes a second bench
    quick); offline, from the running interpreter's copies, named by a plain path .pth."""
    venv = scratch / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    wheel = _build_wheel(root, Path(tempfile.mkdtemp(prefix="wheel-", dir=scratch)))
    target = PIP + ["--python", python, "install", "--no-warn-script-location"]
    if _run(target + [str(wheel)], timeout=600).returncode == 0:
        return python, f"{wheel.name} with its dependencies from the package index"
    _run(target + ["--no-deps", str(wheel)], check=True)
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                check=True).stdout.strip()
    # A path line only (site.addpackage): no import runs at start-up, as in a user's venv.
    (Path(site) / "coredump-bench-deps.pth").write_text("".join(d + "\n" for d in _dependency_dirs()))
    return python, f"{wheel.name}; offline: its dependencies are the running interpreter's, by a path .pth"
