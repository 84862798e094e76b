"""The walk on real kernel cores of c_samples/, frame by frame against gdb. (The elfutils
corpus goes through the whole CLI in test_gdb_oracle.py.)"""

import pytest

from coredump.elf.core import open_core
from coredump.symbols.finder import FileFinder, FinderOptions
from coredump.target import Target
from coredump.unwind import walk_thread, x86_64
from coredump.unwind.common import SIGNAL_HANDLER_CALLED
from tests.budgets import lift_clocks
from tests.cores import BUILD
from tests.gdb_oracle import run_gdb, run_gdb_deep

VARIANTS = ("O0", "O2", "stripped", "static")
PROGRAMS = ("segv", "threads", "sighandler", "abort_assert", "cxx_throw", "uselib")


def open_target(core, exe, search_paths=(), debug_files=None):
    kw = {"exe": str(exe), "search_paths": list(search_paths)}
    options = debug_files.finder_options(**kw) if debug_files else FinderOptions(**kw)
    return Target(open_core(str(core)), FileFinder(options))


def assert_matches_gdb(frames, gdb_thread, tid):
    """Our physical frames against gdb's: its inline frames share their caller's pc and its
    tail-call frames have no stack frame (GdbThread.physical_frames), so neither is walked
    (tail-call frames are put back after symbolization: test_tailcall.py)."""
    expected = [f for f in gdb_thread.physical_frames() if not f.is_inline]
    assert len(frames) == len(expected), (tid, [hex(f.pc) for f in frames], expected)
    for ours, theirs in zip(frames, expected):
        if theirs.is_signal:
            assert ours.function == SIGNAL_HANDLER_CALLED, (tid, theirs.index)
        assert ours.pc == theirs.frame_pc, (tid, theirs.index, hex(ours.pc), theirs)
        if theirs.pc is not None:  # the address gdb printed, where it printed one
            assert ours.pc == theirs.pc, (tid, theirs.index, hex(ours.pc), theirs)


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_frames_match_gdb(make_core, gdb, debug_files, variant, program):
    core = make_core(variant, program)
    exe = BUILD / variant / program
    target = open_target(core, exe, debug_files=debug_files)
    report = run_gdb(str(exe), str(core), gdb, debug=debug_files)
    assert {t.lwp for t in report.threads} == {t.tid for t in target.core.threads}
    for thread in target.core.threads:
        result = walk_thread(target, thread.registers)
        assert not result.truncated and result.warnings == []
        assert result.frames[0].pc == thread.registers["rip"]
        assert_matches_gdb(result.frames, report.thread_by_lwp(thread.tid), thread.tid)


def test_signal_frames(make_core):
    """The handler's caller is the trampoline, named as gdb names it; the frame it
    interrupted has an exact pc (trust signal)."""
    core = make_core("O2", "sighandler")
    target = open_target(core, BUILD / "O2" / "sighandler")
    frames = walk_thread(target, target.core.threads[0].registers).frames
    names = [f.function for f in frames]
    i = names.index(SIGNAL_HANDLER_CALLED)
    assert i == 1 and frames[i + 1].trust.tag == "signal" and frames[i + 1].lookup_pc == frames[i + 1].pc


@pytest.mark.parametrize("variant", VARIANTS)
def test_ucontext_decoding_agrees_with_glibc_cfi(make_core, variant):
    """glibc describes __restore_rt with CFI expressions over the same ucontext; the
    signal-frame strategy, which reads the kernel's struct layout, must agree with it."""
    core = make_core(variant, "sighandler")
    target = open_target(core, BUILD / variant / "sighandler")
    frames = walk_thread(target, target.core.threads[0].registers).frames
    by_ucontext = x86_64.caller_by_signal_frame(frames[1], target)
    assert by_ucontext is not None and by_ucontext.trust.tag == "signal"
    for name in ("rip", "rsp", "rbp", "rbx", "r12", "r15"):
        assert by_ucontext.registers[name] == frames[2].registers[name], name


@pytest.mark.parametrize("variant", VARIANTS)
def test_deep_recursion_top_and_bottom_match_gdb(make_core, gdb, debug_files, variant, monkeypatch):
    """Past the frame cap the walk goes on to the bottom: MAX_HIDDEN_FRAMES bounds it, not
    MAX_HIDDEN_SECONDS (lifted: on a loaded machine it cut the walk short of the bottom)."""
    lift_clocks(monkeypatch)
    core = make_core(variant, "recursion")
    exe = BUILD / variant / "recursion"
    target = open_target(core, exe, debug_files=debug_files)
    result = walk_thread(target, target.core.threads[0].registers)
    # The same gdb run as test_gdb_oracle's (cached): bt 1024 and bt -64.
    gdb_thread = run_gdb_deep(str(exe), str(core), gdb, 1024, 64, debug=debug_files).crashing
    by_index = {f.index: f.frame_pc if f.frame_pc is not None else f.pc for f in gdb_thread.frames}
    assert result.truncated and len(result.frames) == 1024
    assert result.frames[-1].index + 1 == gdb_thread.total
    assert result.frames_omitted == gdb_thread.total - len(result.frames)
    assert [f.pc for f in result.frames] == [by_index[f.index] for f in result.frames]
    assert result.frames[0].pc == target.core.threads[0].registers["rip"]
