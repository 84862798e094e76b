"""Every sample core, every build variant: signal, crashing thread and frame 0 agree with gdb."""

import json
import subprocess
import sys

import pytest

from tests.cores import BUILD
from tests.gdb_oracle import run_gdb

PROGRAMS = ["segv", "fpe", "abort_assert", "recursion", "threads", "sighandler", "illegal",
            "cxx_throw", "uselib"]
VARIANTS = ["O0", "O2", "stripped", "static"]
CASES = [(v, p) for v in VARIANTS for p in PROGRAMS] + [("O0", "bigheap")]


def analyze_json(core, exe):
    out = subprocess.run([sys.executable, "-m", "coredump.cli", "analyze", "--format", "json",
                          "--exe", str(exe), str(core)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return json.loads(out.stdout)


def base_name(name):
    """gdb prints C++ names without their parameter list when it has DWARF."""
    return name.split("(", 1)[0] if name else name


@pytest.mark.parametrize("variant,program", CASES, ids=[f"{v}-{p}" for v, p in CASES])
def test_signal_thread_and_frame0_match_gdb(make_core, gdb, variant, program):
    core = make_core(variant, program)
    exe = BUILD / variant / program
    ours = analyze_json(core, exe)
    theirs = run_gdb(str(exe), str(core), gdb)

    assert ours["signal"]["name"] == theirs.signal
    crashed = ours["threads"][ours["crashing_thread"]]
    gdb_thread = next(t for t in theirs.threads if t.number == theirs.current)
    assert crashed["tid"] == gdb_thread.lwp
    assert {t["tid"] for t in ours["threads"]} == {t.lwp for t in theirs.threads}

    # Frame 0 of every thread: same pc, function name and file:line as gdb's #0.
    for thread in ours["threads"]:
        g = theirs.thread_by_lwp(thread["tid"])
        ours0 = thread["frames"][0]
        gdb0 = g.frames[0]
        if gdb0.pc is not None:
            assert int(ours0["pc"], 16) == gdb0.pc
        gdb_name = None if gdb0.function == "??" else gdb0.function
        assert base_name(ours0["function"]) == gdb_name, (ours0, gdb0)
        if gdb0.file:
            assert (ours0["file"], ours0["line"]) == (gdb0.file, gdb0.line), (ours0, gdb0)
