"""The CFI fast paths (per-target row memo, apply_row's precomputed plan) on real cores:
they must give exactly what the uncached, general path gives."""

import pytest

from coredump.analysis import AnalyzeOptions
from coredump.elf.core import open_core
from coredump.errors import MemoryFault
from coredump.target import Target
from coredump.unwind import cfi
from coredump.unwind.common import OutermostFrame, get_reader
from coredump.unwind.walk import walk_thread
from tests import cores
from tests.budgets import lift_clocks


def _target(make_core, variant, program):
    core = open_core(str(make_core(variant, program)))
    return core, Target(core, AnalyzeOptions(exe=str(cores.BUILD / variant / program)).finder())


def _general(row, regs, reader, arch):
    try:
        return cfi._apply_general(row, regs, reader, arch)
    except (OutermostFrame, MemoryFault, KeyError) as exc:
        return type(exc)


def _fast(row, regs, reader, arch):
    try:
        return cfi.apply_row(row, regs, reader, arch)
    except (OutermostFrame, MemoryFault, KeyError) as exc:
        return type(exc)


@pytest.mark.parametrize("variant,program", [("O0", "segv"), ("O2", "cxx_throw"), ("O0", "threads"),
                                             ("O2", "sighandler")])
def test_apply_row_plan_matches_general_path(make_core, variant, program):
    """At every frame of every thread: the same CFA, the same registers in the same order."""
    cfi.clear_caches()
    core, target = _target(make_core, variant, program)
    try:
        reader = get_reader(target)
        checked = planned = 0
        for thread in core.threads:
            for frame in walk_thread(target, thread.registers).frames:
                row = cfi.cfi_row_at(target, frame.lookup_pc)
                if row is None:
                    continue
                regs = dict(frame.registers)
                fast, general = _fast(row, regs, reader, target.arch), _general(row, regs, reader, target.arch)
                assert fast == general, (program, frame.index, hex(frame.pc))
                if isinstance(fast, tuple):
                    assert list(fast[1]) == list(general[1])  # insertion order, as frames keep it
                checked += 1
                planned += row.plan[1] is not None
        assert checked >= 2 and planned >= 1
    finally:
        core.close()


def test_rows_are_remembered_per_target_and_pc(make_core):
    cfi.clear_caches()
    core, target = _target(make_core, "O2", "cxx_throw")
    try:
        pc = walk_thread(target, core.threads[0].registers).frames[1].lookup_pc
        row = cfi.cfi_row_at(target, pc)
        assert row is not None
        assert cfi.cfi_row_at(target, pc) is row  # the memo
        module = target.find_module(pc)
        assert cfi.find_cfi_row(module, pc, target.arch) == row  # the row the uncached lookup gives
        # Another target (the same core opened again) starts its own memo, with equal rows.
        other = Target(core, AnalyzeOptions(exe=str(cores.BUILD / "O2" / "cxx_throw")).finder())
        assert cfi.cfi_row_at(other, pc) == row
        cfi.clear_caches()
        fresh = cfi.cfi_row_at(target, pc)
        assert fresh == row and fresh is not row
    finally:
        core.close()


def test_pc_outside_modules_has_no_row(make_core):
    cfi.clear_caches()
    core, target = _target(make_core, "O0", "segv")
    try:
        assert cfi.cfi_row_at(target, 8) is None
        assert cfi.cfi_row_at(target, 8) is None
    finally:
        core.close()


def test_recursion_walk_is_the_same_with_cold_and_warm_caches(make_core, monkeypatch):
    """A deep recursion (tens of thousands of frames, the case the memo is for) walks to
    the same frames whether the row caches start empty or full. The walk's clock is lifted:
    the cold walk is the slower, and on a loaded machine MAX_HIDDEN_SECONDS cut it alone."""
    lift_clocks(monkeypatch)
    cfi.clear_caches()
    core, target = _target(make_core, "O0", "recursion")
    try:
        regs = core.threads[0].registers
        cold = walk_thread(target, regs)
        warm = walk_thread(target, regs)
        assert cold.truncated and cold.frames_omitted > 1000
        assert [(f.pc, f.sp, f.cfa, f.trust, f.registers) for f in cold.frames] == \
            [(f.pc, f.sp, f.cfa, f.trust, f.registers) for f in warm.frames]
        assert cold.frames_omitted == warm.frames_omitted
    finally:
        core.close()
