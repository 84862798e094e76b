"""
Bench
=====

``make bench``: make a fixed set of real cores in a scratch directory, then time
``coredump analyze --format json`` against gdb, eu-stack and drgn on each, and measure the
capture path (``coredump run`` overhead, zstd throughput) and the on-disk parse cache.

Wall time is measured around each subprocess (best of BENCH_REPEAT=2 runs for cores under
64 MB, so coredump's parse cache is warm); peak RSS comes from ``os.wait4`` (the child's
``ru_maxrss``). Prints a table with ratios to gdb and their median; writes ``bench.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import cores  # noqa: E402

__all__ = ("main",)

PROGRAMS = ("segv", "threads", "abort_assert", "cxx_throw", "uselib", "sighandler")
VARIANTS = ("O0", "O2", "stripped", "static")
TOOLS = ("coredump", "gdb", "eu-stack", "drgn")
# Byte-compiled modules, as an installed package has them (a developer's shell may forbid them).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = str(ROOT)

PY_THREADS_ABORT = """
import os, threading, time
ts = [threading.Thread(target=time.sleep, args=(30,), daemon=True) for _ in range(4)]
[t.start() for t in ts]
time.sleep(0.2)
os.abort()
"""

DRGN_SCRIPT = """
import sys, drgn
prog = drgn.Program()
prog.set_core_dump(sys.argv[1])
try:
    prog.load_debug_info([sys.argv[2]], default=True)
except drgn.MissingDebugInfoError:
    pass
for thread in prog.threads():
    try:
        str(thread.stack_trace())
    except Exception:
        pass
"""


def measure(argv: List[str], env=None, timeout: float = 600) -> Tuple[float, int, int]:
    """(wall seconds, peak RSS in KiB, exit status) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, env=env)
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.002)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss, proc.returncode


def tool_commands(exe: str, core: str, have: Dict[str, bool]) -> Dict[str, Optional[List[str]]]:
    return {
        "coredump": [sys.executable, "-m", "coredump.cli.main", "analyze", "--format", "json", "--exe", exe, core],
        "gdb": ["gdb", "-batch", "-nx", "-ex", "thread apply all bt", exe, core] if have["gdb"] else None,
        "eu-stack": ["eu-stack", "-s", "-i", "-e", exe, "--core", core] if have["eu-stack"] else None,
        "drgn": [sys.executable, "-c", DRGN_SCRIPT, core, exe] if have["drgn"] else None,
    }


def _wanted(name: str) -> bool:
    only = [w for w in os.environ.get("BENCH_ONLY", "").split(",") if w]
    return not only or any(w in name for w in only)


def make_cores(scratch: Path) -> List[Tuple[str, str, str]]:
    """(name, executable, core) for every core of the fixed set (BENCH_ONLY: a subset)."""
    out = []
    for variant in VARIANTS:
        for program in PROGRAMS:
            if _wanted(f"{variant}/{program}"):
                core = cores.make_core(variant, program)
                out.append((f"{variant}/{program}", str(cores.BUILD / variant / program), str(core)))
    for name, program in (("O0/bigheap (large heap)", "bigheap"), ("O0/recursion (deep)", "recursion")):
        if _wanted(name):
            out.append((name, str(cores.BUILD / "O0" / program), str(cores.make_core("O0", program))))
    python = os.path.realpath(sys.executable)
    for name, code in (
        ("python ctypes NULL read", "import ctypes; ctypes.string_at(0)"),
        ("python threads + abort", PY_THREADS_ABORT),
    ):
        if not _wanted(name):
            continue
        work = scratch / name.split()[1]
        work.mkdir()
        _, core = cores.run_crash([python, "-c", code], work)
        if core is not None:
            out.append((name, python, str(core)))
    return out


def bench_analysis(core_set, have, repeat: int) -> List[dict]:
    rows = []
    for name, exe, core in core_set:
        size = os.path.getsize(core)
        row = {"core": name, "size": size}
        for tool, argv in tool_commands(exe, core, have).items():
            if argv is None:
                row[tool] = None
                continue
            runs = [measure(argv, ENV) for _ in range(repeat if size < 64 << 20 else 1)]
            best = min(runs)
            row[tool] = {"seconds": round(best[0], 4), "max_rss_kib": max(r[1] for r in runs), "status": best[2]}
        gdb = row.get("gdb")
        if gdb and row["coredump"]:
            row["ratio_to_gdb"] = round(row["coredump"]["seconds"] / gdb["seconds"], 3)
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def format_row(row: dict) -> str:
    def cell(v):
        return "n/a" if not v else f"{v['seconds']:7.3f}s {v['max_rss_kib'] // 1024:4d}M"

    ratio = row.get("ratio_to_gdb")
    return (f"{row['core'][:30]:30} {row['size'] / 2**20:7.1f}M  "
            + "  ".join(f"{cell(row[t]):>14}" for t in TOOLS)
            + (f"  {ratio:6.2f}x" if ratio is not None else "     n/a"))


RUN_ENTRY = "import sys; from coredump.cli.entry import main; main(sys.argv[1:])"


def _file_tree(root: str, dirs: int, files: int) -> None:
    """`dirs` directories of `files` empty files each, made before the step starts."""
    for d in range(dirs):
        sub = os.path.join(root, f"d{d}")
        os.mkdir(sub)
        for f in range(files):
            open(os.path.join(sub, f"f{f}"), "wb").close()


def bench_run_overhead(repeat: int = 20) -> dict:
    """`coredump run -- /bin/true` (through the console entry, as the installed script runs
    it) against /bin/true and a bare Python start-up, medians of `repeat` runs; then the
    same in a working directory of 50,000 files (10 x 5,000 and 5,000 x 10): a step that
    does not crash must not pay for the size of the tree."""
    import importlib.util

    true = shutil.which("true") or "/bin/true"
    if importlib.util.find_spec("coredump.cli.entry") is None:
        return {"available": False}

    def med(argv, shape=None):
        with tempfile.TemporaryDirectory(prefix="coredump-run-") as cwd:
            if shape:
                _file_tree(cwd, *shape)
            runs = []
            for _ in range(repeat):
                start = time.perf_counter()
                subprocess.run(argv, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                runs.append(time.perf_counter() - start)
        return statistics.median(runs)

    t_true = med([true])
    t_python = med([sys.executable, "-c", "pass"])
    run = [sys.executable, "-c", RUN_ENTRY, "run", "--", true]
    t_run = med(run)
    result = {"available": True, "true_s": round(t_true, 4), "python_startup_s": round(t_python, 4),
              "run_true_s": round(t_run, 4), "overhead_beyond_python_ms": round((t_run - t_python) * 1000, 1)}
    for dirs, files in ((10, 5000), (5000, 10)):
        t_tree = med(run, (dirs, files))
        result[f"run_true_{dirs}x{files}_files_s"] = round(t_tree, 4)
        result[f"overhead_{dirs}x{files}_files_beyond_empty_ms"] = round((t_tree - t_run) * 1000, 1)
    return result


# What `analyze` pays before it reads a byte of the core, step by step (each line imports
# what the one before did and more): where the time goes when we miss gdb on small cores.
STARTUP_STEPS = (
    ("python -S (no site)", ["-S", "-c", "pass"]),
    ("python (site, .pth files)", ["-c", "pass"]),
    ("+ click", ["-c", "import click"]),
    ("+ pyelftools ELFFile", ["-c", "import click, elftools.elf.elffile"]),
    ("+ coredump analyze's modules", ["-c", "import click, elftools.elf.elffile, coredump.cli.main, coredump.analysis, "
                                      "coredump.report.json, coredump.triage.explain, coredump.unwind.walk, "
                                      "coredump.symbols.symbolize, coredump.store.bundle"]),
)


def bench_startup(exe: str, core: str, repeat: int = 10) -> List[dict]:
    """Best-of-`repeat` wall time of each start-up step, then of the whole analysis."""
    rows = []
    steps = [(label, [sys.executable, *args]) for label, args in STARTUP_STEPS]
    steps.append(("whole analyze --format json", tool_commands(exe, core, {"gdb": False, "eu-stack": False,
                                                                             "drgn": False})["coredump"]))
    for label, argv in steps:
        best = min(measure(argv, ENV)[0] for _ in range(repeat))
        rows.append({"step": label, "seconds": round(best, 4)})
    return rows


def bench_zstd(core: str) -> dict:
    import zstandard

    size = os.path.getsize(core)
    out = {"input_bytes": size}
    for label, threads in (("single_thread", 0), ("multithreaded", -1)):
        cctx = zstandard.ZstdCompressor(level=3, threads=threads)
        written = 0
        start = time.perf_counter()
        with open(core, "rb") as fin, open(os.devnull, "wb") as fout:
            _, written = cctx.copy_stream(fin, fout, size=size, read_size=1 << 20, write_size=1 << 20)
        seconds = time.perf_counter() - start
        out[label] = {"seconds": round(seconds, 3), "mb_per_s": round(size / seconds / 1e6, 1),
                      "ratio": round(size / max(1, written), 2)}
    return out


def bench_cache(core_set) -> List[dict]:
    """First and second analysis of a core with an empty parse cache, and with the cache off."""
    rows = []
    for name, exe, core in core_set:
        if not name.startswith(("O2/cxx_throw", "python ctypes", "O0/uselib")):
            continue
        with tempfile.TemporaryDirectory(prefix="coredump-cache-") as cache_home:
            env = dict(ENV, XDG_CACHE_HOME=cache_home)
            argv = [sys.executable, "-m", "coredump.cli.main", "analyze", "--format", "json", "--exe", exe, core]
            off = min(measure(argv, dict(env, COREDUMP_CACHE="0"))[0] for _ in range(3))
            first = measure(argv, env)[0]
            second = min(measure(argv, env)[0] for _ in range(3))
        rows.append({"core": name, "cache_off_s": round(off, 4), "first_s": round(first, 4),
                     "second_s": round(second, 4)})
    return rows


def main() -> int:
    reason = cores.core_skip_reason()
    if reason:
        print(f"bench: cannot make cores here: {reason}", file=sys.stderr)
        return 1
    repeat = int(os.environ.get("BENCH_REPEAT", "2"))
    have = {"gdb": bool(shutil.which("gdb")), "eu-stack": bool(shutil.which("eu-stack")),
            "drgn": subprocess.run([sys.executable, "-c", "import drgn"], capture_output=True).returncode == 0}
    cores.build_samples()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "coredump")], env=ENV, check=False)
    scratch = Path(tempfile.mkdtemp(prefix="coredump-bench-"))
    # A parse cache of our own: the first run of each binary's first core is cold, later ones warm.
    ENV["XDG_CACHE_HOME"] = str(scratch / "cache")
    try:
        core_set = make_cores(scratch)
        print(f"{'core':30} {'size':>8}  " + "  ".join(f"{t:>14}" for t in TOOLS) + "  vs gdb")
        rows = bench_analysis(core_set, have, repeat)
        ratios = [r["ratio_to_gdb"] for r in rows if r.get("ratio_to_gdb") is not None]
        median = statistics.median(ratios) if ratios else None
        medians = {t: statistics.median(r[t]["seconds"] for r in rows if r[t]) for t in TOOLS
                   if any(r[t] for r in rows)}
        print(f"median ratio coredump/gdb: {median}; median seconds: "
              + ", ".join(f"{t} {s:.3f}" for t, s in medians.items()))
        run = zstd = None
        bigheap = next((c for n, _, c in core_set if "bigheap" in n), None)
        if not os.environ.get("BENCH_ONLY"):
            run = bench_run_overhead()
            print(f"run overhead: {run}")
            # The large-heap core is one repeated byte (7900:1): it flatters the rate. A Python
            # interpreter's core (code, objects, strings) compresses as real programs do.
            python = next((c for n, _, c in core_set if n.startswith("python")), None)
            zstd = {"large_heap": bench_zstd(bigheap), "python_interpreter": bench_zstd(python) if python else None}
            for label, row in zstd.items():
                print(f"zstd on the {label.replace('_', ' ')} core: {row}")
        segv = next(((exe, c) for n, exe, c in core_set if n == "O0/segv"), None)
        startup = bench_startup(*segv) if segv else []
        for row in startup:
            print(f"start-up: {row['step']:32} {row['seconds'] * 1000:7.1f} ms")
        cache = bench_cache(core_set)
        for row in cache:
            print(f"parse cache: {row}")
        result = {"tools": have, "cores": rows, "median_ratio_to_gdb": median, "median_seconds": medians,
                  "run_overhead": run, "zstd": zstd, "parse_cache": cache, "startup": startup}
        (ROOT / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {ROOT / 'bench.json'}")
    finally:
        cores.cleanup()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
