"""DWARF limits on a real huge-DWARF program made at test time: the analysis stays within
its budget, says what a limit cut off, and still names the physical frames as gdb does.

The count caps are tested with the clocks lifted (tests/budgets.py), so that on a loaded
machine the time budget does not cut in first; the time budget with a budget too small for
any machine to finish the walk in; both by the DIEs the walks visited."""

import gc
import shutil
import subprocess

import pytest

from coredump.analysis import AnalyzeOptions, analyze_target
from coredump.dwarf import index as dwarf
from coredump.dwarf import limits as dwarflimits
from coredump.dwarf import lineprogram
from coredump.dwarf.limits import DWARF_TIME_BUDGET, DwarfBudget
from coredump.elf.core import open_core
from coredump.target import Target
from tests import cores
from tests.budgets import cpu_seconds, lift_clocks
from tests.gdb_oracle import run_gdb, strip_params

FUNCTIONS = 1_000


def _source(globals_: int, depth: int) -> str:
    """Top-level DIEs by the ten thousand (globals: cheap for gcc, each one a DIE a walk of
    the CU visits), a thousand functions, and an inline chain `depth` deep at the faulting
    store."""
    out = ["volatile int sink;"]
    out += [f"int v{i} = {i};" for i in range(globals_)]
    out += [f"__attribute__((noinline)) int f{i}(int x) {{ sink = x + {i}; return x * {i % 7 + 1}; }}"
            for i in range(FUNCTIONS)]
    out.append("static inline __attribute__((always_inline)) void g0(int *p, int v) { *(volatile int *)p = v; }")
    out += [f"static inline __attribute__((always_inline)) void g{k}(int *p, int v) {{ g{k - 1}(p, v + {k}); }}"
            for k in range(1, depth)]
    out.append(f"__attribute__((noipa)) void crash(int *p, int v) {{ g{depth - 1}(p, v); }}")
    out.append("int main(int argc, char **argv) {\n  (void)argv;\n  int s = 0;")
    out.append(f"  for (int i = 0; i < argc; i++) s += f{FUNCTIONS - 1}(i);")
    out.append("  crash((int *)0, s);\n  return 0;\n}")
    return "\n".join(out) + "\n"


def _build(tmp_path_factory, globals_: int, depth: int):
    """(executable, core) of the generated program."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    reason = cores.core_skip_reason()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("hugedwarf")
    src, exe = work / "huge.c", work / "huge"
    src.write_text(_source(globals_, depth))
    subprocess.run(["gcc", "-O2", "-g", "-o", str(exe), str(src)], check=True)
    run_dir = work / "run"
    run_dir.mkdir()
    _, core = cores.run_crash([str(exe)], run_dir)
    assert core is not None
    return exe, core


@pytest.fixture(scope="module")
def huge(tmp_path_factory):
    """An inline chain past MAX_INLINE_DEPTH, 40,000 globals (~1 s to walk): gcc -O2 -g
    builds it in ~2-3 s here."""
    return _build(tmp_path_factory, 40_000, 300)


@pytest.fixture(scope="module")
def huger(tmp_path_factory):
    """More top-level DIEs than MAX_DIES_PER_WALK (gcc: ~4 s here)."""
    assert dwarf.MAX_DIES_PER_WALK < 110_000
    return _build(tmp_path_factory, 110_000, 10)


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """No parse cache and no compile unit parsed by an earlier test: each test walks (and
    no collection of an earlier test's DIEs pauses it)."""
    monkeypatch.setenv("COREDUMP_CACHE", "0")
    dwarf._UNITS.clear()
    gc.collect()
    yield
    dwarf._UNITS.clear()


def _analyze(exe, core):
    """(crash, target, CPU seconds) of a whole analysis."""
    options = AnalyzeOptions(exe=str(exe))
    with cpu_seconds() as spent:
        target = Target(open_core(str(core)), options.finder())
        crash = analyze_target(target, options)
    return crash, target, spent()


@pytest.fixture
def most_dies(monkeypatch):
    """most_dies() -> the most DIEs one walk of a CU visited (DwarfIndex._visit's count)."""
    seen = [0]
    visit = dwarf.DwarfIndex._visit

    def counting(self, count, unit=None):
        if unit is not None:
            seen[0] = max(seen[0], count)
        return visit(self, count, unit)

    monkeypatch.setattr(dwarf.DwarfIndex, "_visit", counting)
    return lambda: seen[0]


def _physical(frames):
    return [f for f in frames if not f.inline and not f.tailcall]


def _check_names(crash, exe, core, gdb):
    """Our physical frames carry gdb's function names, in gdb's order."""
    want = [f.function for f in run_gdb(str(exe), str(core), gdb).crashing.physical_frames() if not f.is_inline]
    ours = _physical(crash.threads[crash.crashing_thread].frames)
    assert [strip_params(f.function) for f in ours] == want
    assert "crash" in want and "main" in want


def _limit_warnings(crash, exe):
    return [w for w in crash.warnings if w.startswith(f"{exe}: DWARF too large")]


def test_default_limits(huge, gdb, monkeypatch):
    """The real caps: the inline chain past MAX_INLINE_DEPTH is cut, with a warning; its
    frame keeps its name, the rest of the file keeps its DWARF; the caps alone keep the
    analysis' CPU time within what the time budget would allow."""
    lift_clocks(monkeypatch)
    exe, core = huge
    crash, target, seconds = _analyze(exe, core)
    print(f"default caps: analysis {seconds:.2f} s CPU, DWARF {target.dwarf_budget.spent:.2f} s")
    assert seconds < DWARF_TIME_BUDGET
    [warning] = _limit_warnings(crash, exe)
    assert f"deeper than {dwarf.MAX_INLINE_DEPTH}" in warning
    _check_names(crash, exe, core, gdb)
    frames = crash.threads[crash.crashing_thread].frames
    assert not any(f.inline for f in frames)
    top = next(f for f in frames if f.function == "crash")
    assert top.line is None  # the row is g0's: without the chain it would name the wrong line
    main = next(f for f in frames if f.function == "main")
    assert main.file and main.file.endswith("huge.c") and main.line is not None


def test_default_die_cap(huger, gdb, monkeypatch, most_dies):
    """The real MAX_DIES_PER_WALK: the walk stops there, the frames are named from the symbol
    table, the analysis' CPU time stays within what the time budget would allow."""
    lift_clocks(monkeypatch)
    exe, core = huger
    crash, target, seconds = _analyze(exe, core)
    print(f"default caps, {dwarf.MAX_DIES_PER_WALK} DIEs: analysis {seconds:.2f} s CPU, "
          f"DWARF {target.dwarf_budget.spent:.2f} s")
    assert most_dies() == dwarf.MAX_DIES_PER_WALK + 1  # the DIE past the cap stops the walk
    assert seconds < DWARF_TIME_BUDGET
    [warning] = _limit_warnings(crash, exe)
    assert f"has more than {dwarf.MAX_DIES_PER_WALK} DIEs" in warning
    _check_names(crash, exe, core, gdb)
    assert all(f.line is None for f in crash.threads[crash.crashing_thread].frames if f.module == str(exe))


def test_die_cap(huge, gdb, monkeypatch, most_dies):
    lift_clocks(monkeypatch)
    monkeypatch.setattr(dwarf, "MAX_DIES_PER_WALK", 1000)
    exe, core = huge
    crash, _, _ = _analyze(exe, core)
    assert most_dies() == 1001
    [warning] = _limit_warnings(crash, exe)
    assert "has more than 1000 DIEs" in warning
    _check_names(crash, exe, core, gdb)  # from the symbol table
    assert all(f.line is None for f in crash.threads[crash.crashing_thread].frames if f.module == str(exe))


def test_time_budget(huger, gdb, monkeypatch, most_dies):
    """A budget far below the walk's cost (~0.45 s here for MAX_DIES_PER_WALK DIEs; on a
    loaded machine more): the walk stops short of the DIE cap, at the time budget, and
    frames fall back to the symbol table."""
    budget = 0.01
    monkeypatch.setattr(dwarflimits, "DWARF_TIME_BUDGET", budget)
    exe, core = huger
    crash, target, seconds = _analyze(exe, core)
    print(f"budget {budget} s: analysis {seconds:.2f} s CPU, DWARF {target.dwarf_budget.spent:.2f} s, "
          f"{most_dies()} DIEs in the longest walk")
    assert target.dwarf_budget.spent >= budget
    assert 0 < most_dies() < dwarf.MAX_DIES_PER_WALK // 4
    [warning] = _limit_warnings(crash, exe)
    assert f"time budget of {budget:g} s is spent" in warning
    _check_names(crash, exe, core, gdb)


def test_line_rows_cap(huge, monkeypatch):
    """A line program past MAX_LINE_ROWS: DWARF names stay, lines go."""
    monkeypatch.setattr(lineprogram, "MAX_LINE_ROWS", 100)
    exe, core = huge
    crash, _, _ = _analyze(exe, core)
    [warning] = _limit_warnings(crash, exe)
    assert "more than 100 rows" in warning
    main = next(f for f in crash.threads[crash.crashing_thread].frames if f.function == "main")
    assert main.line is None and main.file is None and main.symbol_offset is not None


def test_a_cut_is_neither_cached_nor_silent(huge, monkeypatch, tmp_path):
    """With the parse cache on, a cut walk is not stored as the CU's answer: the next
    analysis cuts (and warns) again, and one with the default cap reads it all."""
    monkeypatch.setenv("COREDUMP_CACHE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    exe, core = huge
    with monkeypatch.context() as m:
        m.setattr(dwarf, "MAX_DIES_PER_WALK", 1000)
        first, _, _ = _analyze(exe, core)
        second, _, _ = _analyze(exe, core)  # the CU's parse is kept in this process
        dwarf._UNITS.clear()
        third, _, _ = _analyze(exe, core)  # only the cache is left
    for crash in (first, second, third):
        assert "more than 1000 DIEs" in _limit_warnings(crash, exe)[0]
    dwarf._UNITS.clear()
    full, _, _ = _analyze(exe, core)
    assert "deeper than" in _limit_warnings(full, exe)[0]
    assert next(f for f in full.threads[full.crashing_thread].frames if f.function == "main").line is not None


def test_one_warning_per_file():
    budget = DwarfBudget(1.0)
    budget.warn("a.so", "first")
    budget.warn("a.so", "second")
    budget.warn("b.so", "third")
    assert budget.warnings == [
        "a.so: DWARF too large to read in full (first); some inline frames and lines are missing",
        "b.so: DWARF too large to read in full (third); some inline frames and lines are missing"]


def test_budget_is_shared_by_the_modules_of_a_target(make_core):
    target = Target(open_core(str(make_core("O2", "uselib"))), AnalyzeOptions().finder())
    indexes = [m.dwarf for m in target.modules if m.dwarf is not None]
    assert len(indexes) >= 2
    assert all(i.budget is target.dwarf_budget for i in indexes)
