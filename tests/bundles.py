"""
Crash directories built at test time, the way ``coredump run`` leaves them, from a build
tree that is then deleted: the analysis must work from the bundle alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Tuple

from tests.cores import SAMPLES, run_crash

__all__ = ("build_uselib", "crash_uselib", "make_crash_dir", "analyze_json")


def build_uselib(out: Path, cflags=("-O0", "-g"), define: str = "") -> Tuple[Path, Path]:
    """Compile uselib + libcrash.so into `out` (rpath $ORIGIN); returns (exe, lib)."""
    out.mkdir(parents=True, exist_ok=True)
    lib, exe = out / "libcrash.so", out / "uselib"
    extra = [f"-D{define}"] if define else []
    subprocess.run(["gcc", *cflags, *extra, "-fPIC", "-shared", "-o", str(lib), str(SAMPLES / "libcrash.c")],
                   check=True)
    subprocess.run(["gcc", *cflags, *extra, "-o", str(exe), str(SAMPLES / "uselib.c"), f"-L{out}", "-lcrash",
                    "-Wl,-rpath,$ORIGIN"], check=True)
    return exe, lib


def crash_uselib(exe: Path, workdir: Path) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    rc, core = run_crash([str(exe)], workdir)
    assert core is not None, f"{exe} exited {rc} without a core"
    return core


def analyze_json(target, *args: str) -> Dict:
    out = subprocess.run([sys.executable, "-m", "coredump.cli.main", "analyze", "--format", "json", *args,
                          str(target)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def make_crash_dir(core: Path, root: Path, crash_id: str = "1-uselib") -> Path:
    """coredump-artifacts/<id>/{crash.json,core.zst} and files/<build-id>/<name>[.debug]
    for every module the build machine's analysis found; returns the crash directory."""
    import zstandard

    from coredump.analysis import AnalyzeOptions, analyze_core
    from coredump.report.json import dumps

    crash = analyze_core(str(core), AnalyzeOptions())
    crash_dir = root / crash_id
    crash_dir.mkdir(parents=True)
    (crash_dir / "crash.json").write_text(dumps(crash))
    with open(core, "rb") as fin, open(crash_dir / "core.zst", "wb") as fout:
        zstandard.ZstdCompressor(level=3).copy_stream(fin, fout)
    for m in crash.modules:
        if not m.file or m.path.startswith("[") or not m.build_id or m.status != "ok":
            continue
        dest = root / "files" / m.build_id
        dest.mkdir(parents=True, exist_ok=True)
        name = os.path.basename(m.path)
        shutil.copyfile(m.file, dest / name)
        if m.debug_file:
            shutil.copyfile(m.debug_file, dest / (name + ".debug"))
    return crash_dir
