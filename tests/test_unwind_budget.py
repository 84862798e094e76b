"""The unwinding limits of coredump.unwind.budget and coredump.unwind.walk on real cores, each
cut made certain: a clock set to zero (no machine finishes a walk in no time), a count set
small with the clocks lifted (tests/budgets.py). What is asserted is what was counted."""

from coredump.analysis import AnalyzeOptions, analyze_core
from coredump.elf.core import open_core
from coredump.target import Target
from coredump.unwind import budget, walk
from coredump.unwind.walk import MAX_FRAMES, walk_thread
from tests.budgets import lift_clocks
from tests.cores import BUILD

# walk._truncated looks at its limits every 1,024 frames past the cap (count & 0x3FF).
STRIDE = 1024


def _walk_recursion(make_core):
    core = make_core("O0", "recursion")
    target = Target(open_core(str(core)), AnalyzeOptions(exe=str(BUILD / "O0" / "recursion")).finder())
    return walk_thread(target, target.core.threads[0].registers)


def test_walk_past_the_cap_stops_at_its_clock(make_core, monkeypatch):
    """MAX_HIDDEN_SECONDS at zero: the walk on past MAX_FRAMES stops at its first look at
    the clock, keeps the top frames, counts the ones it walked and says it did not reach
    the bottom."""
    lift_clocks(monkeypatch)
    monkeypatch.setattr(walk, "MAX_HIDDEN_SECONDS", 0.0)
    result = _walk_recursion(make_core)
    assert result.truncated and len(result.frames) == MAX_FRAMES
    assert [f.index for f in result.frames] == list(range(MAX_FRAMES))
    assert result.frames_omitted == STRIDE
    assert f"stack walk stopped after {MAX_FRAMES + STRIDE} frames without reaching the outermost frame" \
        in result.warnings


def test_walk_past_the_cap_stops_at_its_frame_count(make_core, monkeypatch):
    """MAX_HIDDEN_FRAMES, with the clocks lifted: the walk stops at the first look past it."""
    lift_clocks(monkeypatch)
    monkeypatch.setattr(walk, "MAX_HIDDEN_FRAMES", 4 * STRIDE)
    result = _walk_recursion(make_core)
    assert result.truncated and len(result.frames) == MAX_FRAMES
    assert result.frames_omitted == 5 * STRIDE - MAX_FRAMES
    assert f"stack walk stopped after {5 * STRIDE} frames without reaching the outermost frame" in result.warnings


def test_bottom_is_reached_within_the_counts(make_core, monkeypatch):
    """The same stack with the clocks lifted and the real counts: the walk reaches the bottom."""
    lift_clocks(monkeypatch)
    result = _walk_recursion(make_core)
    assert result.truncated and result.frames_omitted > 50_000
    assert result.frames[-1].index == MAX_FRAMES + result.frames_omitted - 1


def test_unwinding_clock_leaves_every_thread_frame_0(make_core, monkeypatch):
    """UNWIND_TIME_BUDGET at zero: no thread is walked past frame 0 (its registers are in
    the core), and one warning counts them."""
    lift_clocks(monkeypatch)
    monkeypatch.setattr(budget, "UNWIND_TIME_BUDGET", 0.0)
    crash = analyze_core(str(make_core("O0", "threads")), AnalyzeOptions(exe=str(BUILD / "O0" / "threads")))
    assert len(crash.threads) > 1
    assert all(len([f for f in t.frames if not f.inline]) == 1 for t in crash.threads), crash.threads
    n = len(crash.threads)
    assert f"the analysis' unwinding time budget of 0 s is spent: {n} of {n} threads show frame 0 only" \
        in crash.warnings


def test_walked_threads_are_counted(make_core, monkeypatch):
    """MAX_WALKED_THREADS (as budget.WalkBudget reads it), with the clocks lifted: the
    crashing thread is walked first, the others keep frame 0."""
    lift_clocks(monkeypatch)
    monkeypatch.setattr(budget, "MAX_WALKED_THREADS", 1)
    crash = analyze_core(str(make_core("O0", "threads")), AnalyzeOptions(exe=str(BUILD / "O0" / "threads")))
    walked = [t for t in crash.threads if len([f for f in t.frames if not f.inline]) > 1]
    assert walked == [crash.threads[crash.crashing_thread]]
    n = len(crash.threads)
    assert f"only the first 1 threads are unwound: {n - 1} of {n} threads show frame 0 only" in crash.warnings
