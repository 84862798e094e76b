"""Every c_samples crash against gdb's ``thread apply all bt`` on the same core, with the
machine's debug files (libc6-dbg's, where installed): the same threads, and per thread the
same frames (physical, inline and tail-call), names, file:line as gdb spells them and pcs.

Where we differ, it is for one reason: a tail call the code proves and gdb cannot see (the
caller has no DWARF call sites, an -O0 main calling pthread_join; a call gdb resolves to an
ifunc's resolver, name_length's strlen; a static libc without DWARF). Each such frame must sit
right after a direct jmp, by objdump (tests/test_callsites.py ``_jump_before``)."""

import pytest

from coredump.analysis import AnalyzeOptions, analyze_core
from tests import cores
from tests.gdb_oracle import run_gdb, strip_params
from tests.test_callsites import _jump_before, vaddr

PROGRAMS = ["segv", "fpe", "abort_assert", "threads", "sighandler", "illegal", "bigheap", "rodata_write",
            "exec_heap", "misaligned", "double_free", "heap_overflow", "fortify", "int_overflow", "wild",
            "div_overflow", "trap", "session", "name_length", "tail_paths", "cxx_throw", "cxx_throw_kinds",
            "uselib"]
# recursion and mutual_recursion overflow the stack (~10^5 frames: test_gdb_oracle compares the
# top and the bottom); wait_kill waits to be killed (test_gdb_oracle's sleep case).
VARIANTS = ["O0", "O2", "stripped", "static"]
CASES = [(v, p) for v in VARIANTS for p in PROGRAMS]


def _row(f):
    """A frame as gdb's bt shows it: pc (gdb's frame.pc(), shared by inline frames), kind,
    name (without the parameter list DWARF names have in ours), file:line."""
    name = strip_params(f.function) if f.file else f.function
    return (f.pc, f.inline, f.tailcall, name, f.file, f.line)


def _gdb_row(g):
    return (g.frame_pc, g.is_inline, g.is_tailcall, g.function, g.file, g.line)


def _proved(crash, frame) -> bool:
    return frame.module is not None and _jump_before(frame.module, vaddr(crash, frame)) is not None


def _compare(thread, gdb_thread):
    """Our frames with gdb's, ours that gdb lacks set aside: (differences, ours set aside)."""
    theirs = list(gdb_thread.frames)
    extra, diffs, i = [], [], 0
    for f in thread.frames:
        g = theirs[i] if i < len(theirs) else None
        if g is not None and _row(f) == _gdb_row(g):
            i += 1
        elif f.tailcall and (g is None or not g.is_tailcall):
            extra.append(f)
        else:
            diffs.append((f.index, _row(f), g and _gdb_row(g)))
            i += 1
    diffs += [(None, None, _gdb_row(g)) for g in theirs[i:]]
    return diffs, extra


@pytest.mark.parametrize("variant,program", CASES, ids=[f"{v}-{p}" for v, p in CASES])
def test_every_frame_is_gdbs_with_debug_info(make_core, gdb, variant, program):
    core = make_core(variant, program)
    exe = cores.BUILD / variant / program
    crash = analyze_core(str(core), AnalyzeOptions(exe=str(exe)))
    report = run_gdb(str(exe), str(core), gdb)
    assert {t.tid for t in crash.threads} == {t.lwp for t in report.threads}
    assert crash.threads[crash.crashing_thread].tid == report.current_lwp
    for thread in crash.threads:
        diffs, extra = _compare(thread, report.thread_by_lwp(thread.tid))
        assert not diffs, (thread.tid, diffs)
        assert extra == [f for f in extra if _proved(crash, f)]
