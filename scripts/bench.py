"""
Bench
=====

``make bench``: make a fixed set of real cores in a scratch directory (the c_samples
cores, and real programs' cores: a python3 ctypes crash, python with 200 threads, a node
``process.abort()``, a Rust release binary), then time ``coredump analyze --format json``
cold (an empty ``XDG_CACHE_HOME`` each run, as on a fresh CI machine) and warm (its cache
filled by an earlier run), warm with ``--no-values`` (what arguments cost), against gdb,
eu-stack and drgn on each, and measure the capture
path (``coredump run`` overhead, zstd throughput), 50 cores of one binary in one
``harvest`` process, and the start-up (``python -X importtime``).

What is timed is an installed copy, as a user's ``pip install coredump`` has it: a wheel of
the checkout with its runtime dependencies in a scratch virtual environment made from the
running interpreter, once per bench (``scripts/bench_install.py``), run by its ``coredump``
console script from a directory outside the checkout. Not the developer's editable install,
whose ``.pth`` finder costs every start-up ~16 ms that no user pays. The output's first line
says which copy it timed.

Wall time is measured around each subprocess, best of BENCH_REPEAT=3 runs (1 for cores
over 64 MB), the tools interleaved run by run; peak RSS comes from ``os.wait4`` (the
child's ``ru_maxrss``). Prints a table with ratios to gdb and eu-stack and their medians;
writes ``bench.json``.
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

from scripts.bench_install import install_copy  # noqa: E402
from scripts.bench_startup import import_times, startup_steps  # noqa: E402
from tests import cores  # noqa: E402

__all__ = ("main",)

PROGRAMS = ("segv", "threads", "abort_assert", "cxx_throw", "uselib", "sighandler")
VARIANTS = ("O0", "O2", "stripped", "static")
TOOLS = ("cold", "warm", "novalues", "gdb", "eu-stack", "drgn")  # cold, warm, novalues: ours
# Byte-compiled modules, as an installed package has them (a developer's shell may forbid them);
# no PYTHONPATH: the installed copy is what runs.
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
# The scratch venv's python and console script (main sets them: bench_install.install_copy).
PYTHON = sys.executable
COREDUMP = [str(Path(sys.executable).with_name("coredump"))]

PY_THREADS_ABORT = """
import os, threading, time
ts = [threading.Thread(target=time.sleep, args=(30,), daemon=True) for _ in range(4)]
[t.start() for t in ts]
time.sleep(0.2)
os.abort()
"""

# 200 threads blocked in the kernel, then a NULL read on the main thread.
PY_200_THREADS = """
import ctypes, threading
threading.stack_size(1 << 16)  # 64 KiB stacks: a core of the threads' registers, not of 8 MiB stacks
ready = threading.Barrier(201)
def wait():
    ready.wait()
    threading.Event().wait()
for _ in range(200):
    threading.Thread(target=wait, daemon=True).start()
ready.wait()
ctypes.string_at(0)
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


def analyze_argv(exe: str, core: str) -> List[str]:
    # The console script's way in (cli.entry: analyze without click), as a user runs it.
    return COREDUMP + ["analyze", "--format", "json", "--exe", exe, core]


def tool_commands(exe: str, core: str, have: Dict[str, bool]) -> Dict[str, Optional[List[str]]]:
    return {
        "cold": analyze_argv(exe, core),
        "warm": analyze_argv(exe, core),
        "novalues": analyze_argv(exe, core) + ["--no-values"],  # warm, without arguments (issue #17)
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
    real = [("python ctypes NULL read", [python, "-c", "import ctypes; ctypes.string_at(0)"]),
            ("python threads + abort", [python, "-c", PY_THREADS_ABORT]),
            ("python 200 threads", [python, "-c", PY_200_THREADS])]
    node = shutil.which("node")
    if node:
        real.append(("node process.abort()", [os.path.realpath(node), "-e", "process.abort()"]))
    rust = cores.BUILD / "rust" / "rust_panic_release"
    subprocess.run(["make", "-s", "-C", str(cores.SAMPLES), "rust"], stdout=subprocess.DEVNULL, check=False)
    if rust.exists():
        real.append(("rust release null write", [str(rust), "segv"]))
    for n, (name, argv) in enumerate(real):
        if not _wanted(name):
            continue
        work = scratch / f"real{n}"
        work.mkdir()
        _, core = cores.run_crash(argv, work)
        if core is not None:
            out.append((name, argv[0], str(core)))
        else:
            print(f"bench: {name}: no core", file=sys.stderr)
    return out


def bench_analysis(core_set, have, repeat: int, scratch: Path) -> List[dict]:
    """Per core, best of `repeat` runs of each tool, interleaved (one run of each, then the
    next round): ours cold with an empty XDG_CACHE_HOME each run, ours warm with a cache
    one untimed run filled."""
    rows = []
    for n, (name, exe, core) in enumerate(core_set):
        size = os.path.getsize(core)
        warm_env = dict(ENV, XDG_CACHE_HOME=str(scratch / f"warm{n}"))
        commands = tool_commands(exe, core, have)
        measure(commands["warm"], warm_env)
        runs: Dict[str, list] = {t: [] for t, argv in commands.items() if argv is not None}
        for _ in range(repeat if size < 64 << 20 else 1):
            for tool in runs:
                if tool == "cold":
                    with tempfile.TemporaryDirectory(prefix="coredump-cold-") as cold:
                        runs[tool].append(measure(commands[tool], dict(ENV, XDG_CACHE_HOME=cold)))
                else:
                    runs[tool].append(measure(commands[tool], warm_env if tool in ("warm", "novalues") else ENV))
        row = {"core": name, "size": size}
        for tool in TOOLS:
            got = runs.get(tool)
            row[tool] = None if not got else {"seconds": round(min(got)[0], 4),
                                              "max_rss_kib": max(r[1] for r in got), "status": min(got)[2]}
        for ours in ("cold", "warm"):
            for other in ("gdb", "eu-stack"):
                if row[ours] and row[other]:
                    row[f"{ours}/{other}"] = round(row[ours]["seconds"] / row[other]["seconds"], 3)
        if row["warm"] and row["novalues"]:  # what arguments cost: at most 1.25x on the median core
            row["warm/novalues"] = round(row["warm"]["seconds"] / row["novalues"]["seconds"], 3)
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


RATIOS = ("cold/gdb", "warm/gdb", "warm/eu-stack", "warm/novalues")


def format_row(row: dict) -> str:
    def cell(v):
        return "n/a" if not v else f"{v['seconds']:6.3f}s {v['max_rss_kib'] // 1024:4d}M"

    return (f"{row['core'][:26]:26} {row['size'] / 2**20:7.1f}M "
            + " ".join(f"{cell(row[t]):>13}" for t in TOOLS)
            + "".join(f" {row[r]:8.2f}x" if row.get(r) is not None else "      n/a" for r in RATIOS))


def summarize(rows: List[dict]) -> dict:
    """Medians of each tool's seconds and of each ratio; the worst cold/gdb ratio."""
    out: dict = {"median_seconds": {t: statistics.median(r[t]["seconds"] for r in rows if r[t])
                                    for t in TOOLS if any(r[t] for r in rows)}}
    for ratio in RATIOS:
        values = [r[ratio] for r in rows if r.get(ratio) is not None]
        out[f"median {ratio}"] = statistics.median(values) if values else None
    worst = max((r for r in rows if r.get("cold/gdb") is not None), key=lambda r: r["cold/gdb"], default=None)
    out["worst cold/gdb"] = (worst["core"], worst["cold/gdb"]) if worst else None
    out["peak_rss_mib"] = max((r["cold"]["max_rss_kib"] for r in rows if r["cold"]), default=0) // 1024
    return out


def bench_many_cores(scratch: Path, count: int = 50) -> Optional[dict]:
    """`harvest` of `count` cores of one binary in one process, against one cold analysis
    plus `count - 1` warm ones (the issue's bar: <= 1.2x)."""
    exe = str(cores.BUILD / "O2" / "segv")
    tree = scratch / "many"
    made = []
    for i in range(count):
        work = tree / f"job{i}"
        work.mkdir(parents=True)
        _, core = cores.run_crash([exe], work)
        if core is not None:
            made.append(str(core))
    if len(made) < count:
        return None
    with tempfile.TemporaryDirectory(prefix="coredump-many-") as cache:
        env = dict(ENV, XDG_CACHE_HOME=cache)
        single = measure(analyze_argv(exe, made[0]), env)[0]
        singles = single + sum(measure(analyze_argv(exe, c), env)[0] for c in made[1:])
    with tempfile.TemporaryDirectory(prefix="coredump-many-") as cache:
        out = scratch / "many-artifacts"
        argv = [PYTHON, "-m", "coredump.cli.main", "harvest", "--path", str(tree), "-o", str(out),
                "--keep-cores"]
        seconds, rss, status = measure(argv, dict(ENV, XDG_CACHE_HOME=cache))
    return {"cores": count, "harvest_s": round(seconds, 3), "cores_per_s": round(count / seconds, 2),
            "harvest_rss_mib": rss // 1024, "status": status, "one_cold_plus_warm_s": round(singles, 3),
            "ratio": round(seconds / singles, 3)}


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
    t_python = med([PYTHON, "-c", "pass"])
    run = COREDUMP + ["run", "--", true]
    t_run = med(run)
    result = {"available": True, "true_s": round(t_true, 4), "python_startup_s": round(t_python, 4),
              "run_true_s": round(t_run, 4), "overhead_beyond_python_ms": round((t_run - t_python) * 1000, 1)}
    for dirs, files in ((10, 5000), (5000, 10)):
        t_tree = med(run, (dirs, files))
        result[f"run_true_{dirs}x{files}_files_s"] = round(t_tree, 4)
        result[f"overhead_{dirs}x{files}_files_beyond_empty_ms"] = round((t_tree - t_run) * 1000, 1)
    return result


def bench_startup(exe: str, core: str, repeat: int = 10) -> List[dict]:
    """``scripts/bench_startup.py``'s steps, best of `repeat` wall times each, warm."""
    def best(argv, env):
        return min(measure(argv, env)[0] for _ in range(repeat))

    analyze = analyze_argv(exe, core)
    return startup_steps(PYTHON, sys.executable, analyze, ENV, best)


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
            argv = analyze_argv(exe, core)
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
    repeat = int(os.environ.get("BENCH_REPEAT", "3"))
    have = {"gdb": bool(shutil.which("gdb")), "eu-stack": bool(shutil.which("eu-stack")),
            "drgn": subprocess.run([sys.executable, "-c", "import drgn"], capture_output=True).returncode == 0}
    cores.build_samples()
    scratch = Path(tempfile.mkdtemp(prefix="coredump-bench-"))
    # A parse cache of our own for what is neither cold nor warm on purpose (run, cache rows).
    ENV["XDG_CACHE_HOME"] = str(scratch / "cache")
    global PYTHON, COREDUMP
    try:
        PYTHON, installed = install_copy(ROOT, scratch)
        COREDUMP = [str(Path(PYTHON).with_name("coredump"))]
        print(f"timing an installed copy: {installed}, in {Path(PYTHON).parent.parent}", flush=True)
        # `python -c` and `-m` put the working directory first on sys.path: not the checkout.
        os.chdir(scratch)
        core_set = make_cores(scratch)
        print(f"{'core':26} {'size':>8} " + " ".join(f"{t:>13}" for t in TOOLS)
              + "".join(f" {r:>9}" for r in RATIOS))
        rows = bench_analysis(core_set, have, repeat, scratch)
        summary = summarize(rows)
        print("medians: " + ", ".join(f"{t} {v:.3f}s" for t, v in summary["median_seconds"].items()))
        print("; ".join(f"{k}: {v}" for k, v in summary.items() if k != "median_seconds"))
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
        many = None if os.environ.get("BENCH_ONLY") else bench_many_cores(scratch)
        if many:
            print(f"50 cores of one binary in one harvest: {many}")
        segv = next(((exe, c) for n, exe, c in sorted(core_set, key=lambda r: r[0] not in ("O0/segv", "O2/segv"))
                     if n.endswith("/segv")), None)
        startup = bench_startup(*segv) if segv else []
        for row in startup:
            print(f"start-up: {row['step']:36} {row['seconds'] * 1000:7.1f} ms")
        imports = import_times(PYTHON, analyze_argv(*segv), ENV) if segv else []
        for row in imports:
            print(f"import time (cumulative): {row['module']:36} {row['cumulative_us'] / 1000:7.1f} ms")
        cache = bench_cache(core_set)
        for row in cache:
            print(f"parse cache: {row}")
        result = {"installed": installed, "tools": have, "cores": rows, "summary": summary, "many_cores": many,
                  "run_overhead": run, "zstd": zstd, "parse_cache": cache, "startup": startup,
                  "importtime": imports}
        (ROOT / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {ROOT / 'bench.json'}")
    finally:
        os.chdir(ROOT)
        cores.cleanup()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
