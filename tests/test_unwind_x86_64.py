"""Tests of coredump.unwind.x86_64 and the walk's stop rules on hand-built stacks.

Like rust-minidump's ``amd64_unittest.rs``: a fixture with two fake modules at fixed
addresses (``tests/fakes.py``) and one stack laid out per test, each test named for the one
case it covers.
"""

import pytest

from coredump.arch.x86_64 import X86_64
from coredump.model import Frame, Trust
from coredump.unwind import cfi, x86_64
from coredump.unwind.common import SIGNAL_HANDLER_CALLED, OutermostFrame
from coredump.unwind.walk import walk_thread
from tests.cfiwriter import EhFrameWriter, FakeImage, sleb
from tests.fakes import APP, APP_END, LIB, ORPHAN, SP, STACK, FakeTarget

CIE_X86 = bytes([0x0C, 7, 8, 0x90, 1])  # def_cfa rsp+8; rip at cfa-8


class Target(FakeTarget):
    arch = X86_64

    def add_cfi(self, fdes, augmentation="zR"):
        """CFI for the app: fdes is [(pc_begin, size, instructions)]."""
        w = EhFrameWriter(APP_END + 0x1000)
        cie = w.add_cie(CIE_X86, augmentation=augmentation)
        for pc, size, program in fdes:
            w.add_fde(cie, pc, size, program)
        hdr = APP_END + 0x800
        self.modules[0].image = FakeImage({".eh_frame": (w.vaddr, w.eh_frame()),
                                           ".eh_frame_hdr": (hdr, w.eh_frame_hdr(hdr))})


@pytest.fixture
def target():
    """A fresh target per test: the walk caches rows and stack pages, so memory is laid
    out before the first walk, as a core's is."""
    cfi.clear_caches()
    return Target()


def frame0(pc, **regs):
    regs = {"rip": pc, "rsp": SP, **regs}
    return Frame(index=0, pc=pc, sp=regs["rsp"], trust=Trust.CONTEXT, registers=regs)


def test_caller_pushed_rbp(target):
    m = target.memory
    ret = m.call_before(APP + 0x105)
    m.word(SP + 0x20, SP + 0x60)
    m.word(SP + 0x28, ret)
    m.word(SP + 0x60, 0)
    caller = x86_64.caller_by_frame_pointer(frame0(APP + 0x50, rbp=SP + 0x20), target)
    assert (caller.pc, caller.sp, caller.trust) == (ret, SP + 0x30, Trust.FP)
    assert caller.registers["rbp"] == SP + 0x60
    assert caller.index == 1


def test_frame_pointer_rejects_caller_bp_below_caller_sp(target):
    target.memory.word(SP + 0x20, SP)  # the "saved rbp" lies below the caller's sp
    target.memory.word(SP + 0x28, APP + 0x105)
    assert x86_64.caller_by_frame_pointer(frame0(APP + 0x50, rbp=SP + 0x20), target) is None


def test_frame_pointer_rejects_non_canonical_ip(target):
    target.memory.word(SP + 0x20, SP + 0x60)
    target.memory.word(SP + 0x28, 0x8000_0000_0000_1234)
    assert x86_64.caller_by_frame_pointer(frame0(APP + 0x50, rbp=SP + 0x20), target) is None


def test_frame_pointer_needs_rbp(target):
    assert x86_64.caller_by_frame_pointer(frame0(APP + 0x50), target) is None


def test_scan_without_symbols(target):
    m = target.memory
    m.word(SP, 0x1234)
    m.word(SP + 8, APP + 0x200)  # into code, but not after a call
    m.word(SP + 16, ORPHAN + 0x105)  # after a call, but in no module
    m.call_before(ORPHAN + 0x105)
    ret = m.call_before(LIB + 0x105, b"\x41\xff\xd4")  # call *%r12
    m.word(SP + 24, ret)
    caller = x86_64.caller_by_scan(frame0(APP + 0x50), target)
    assert (caller.pc, caller.sp, caller.trust) == (ret, SP + 32, Trust.SCAN)


def test_scan_looks_further_below_trusted_frames(target):
    ret = target.memory.call_before(APP + 0x105)
    target.memory.word(SP + 100 * 8, ret)
    found = x86_64.caller_by_scan(frame0(APP + 0x50), target)
    assert found is not None and found.sp == SP + 101 * 8
    scanned = Frame(index=3, pc=APP + 0x50, sp=SP, trust=Trust.SCAN, registers={"rip": APP + 0x50, "rsp": SP})
    assert x86_64.caller_by_scan(scanned, target) is None


@pytest.mark.parametrize("code", [
    "e8 00 00 00 00",           # call rel32
    "ff d0", "41 ff d4",        # call *%rax, call *%r12
    "ff 15 00 10 00 00",        # call *disp32(%rip)
    "ff 50 08",                 # call *0x8(%rax)
    "ff 54 24 08",              # call *0x8(%rsp)
    "ff 90 00 01 00 00",        # call *0x100(%rax)
    "ff 14 25 00 10 40 00",     # call *0x401000
    "ff 10",                    # call *(%rax)
])
def test_is_after_call(code):
    assert x86_64.is_after_call(b"\x90" * 7 + bytes.fromhex(code))


@pytest.mark.parametrize("code", ["90 90", "ff e0", "ff 20", "c3", "48 89 c7"])  # jmp *%rax, jmp *(%rax)
def test_is_not_after_call(code):
    assert not x86_64.is_after_call(b"\x90" * 7 + bytes.fromhex(code))


def _ucontext(target, at, regs):
    for i, name in enumerate(x86_64.SIGCONTEXT_REGS):
        target.memory.word(at + 40 + 8 * i, regs.get(name, 0))


def test_signal_frame(target):
    trampoline = APP + 0x300
    target.memory.write(trampoline, x86_64.SIGRETURN_CODE)
    _ucontext(target, SP, {"rip": APP + 0x77, "rsp": SP + 0x800, "rbp": SP + 0x900, "rax": 42})
    tramp = Frame(index=1, pc=trampoline, sp=SP, trust=Trust.CFI, registers={"rip": trampoline, "rsp": SP})
    caller = x86_64.caller_by_signal_frame(tramp, target)
    assert (caller.pc, caller.sp, caller.trust) == (APP + 0x77, SP + 0x800, Trust.SIGNAL)
    assert caller.registers["rbp"] == SP + 0x900 and caller.registers["rax"] == 42
    assert caller.lookup_pc == caller.pc  # an interrupted pc is exact
    assert x86_64.caller_by_signal_frame(frame0(APP + 0x50), target) is None


def test_cfi_caller(target):
    target.add_cfi([(APP, 0x100, bytes([0x41, 0x0E, 16]))])
    ret = APP + 0x505
    target.memory.word(SP + 8, ret)
    caller = x86_64.caller_by_cfi(frame0(APP + 0x10, rbx=7), target)
    assert (caller.pc, caller.sp, caller.trust) == (ret, SP + 16, Trust.CFI)
    assert caller.registers["rbx"] == 7
    # The caller's own lookups use pc - 1, the callee's the exact pc (at APP the CFA is rsp+8).
    assert x86_64.caller_by_cfi(frame0(APP), target).pc == target.memory.read_word(SP)


def test_cfi_signal_augmentation_marks_interrupted_frame(target):
    target.add_cfi([(APP, 0x100, b"")], augmentation="zRS")
    target.memory.word(SP, APP + 0x505)
    assert x86_64.caller_by_cfi(frame0(APP + 0x10), target).trust == Trust.SIGNAL


def test_cfi_outermost(target):
    target.add_cfi([(APP, 0x100, bytes([0x07, 16]))])
    with pytest.raises(OutermostFrame):
        x86_64.caller_by_cfi(frame0(APP + 0x10), target)


def test_bad_call_pops_return_address(target):
    ret = target.memory.call_before(APP + 0x105, b"\xff\xd0")
    target.memory.word(SP, ret)
    caller = x86_64.caller_by_bad_call(frame0(0, rbx=3), target)
    assert (caller.pc, caller.sp, caller.registers["rbx"]) == (ret, SP + 8, 3)


# -- the walk's stop rules --------------------------------------------------------------


def walk(target, pc, max_frames=1024, **regs):
    return walk_thread(target, {"rip": pc, "rsp": SP, **regs}, max_frames)


def test_walk_call_through_null(target):
    ret = target.memory.call_before(APP + 0x105, b"\xff\xd0")
    target.memory.word(SP, ret)
    result = walk(target, 0)
    assert [f.pc for f in result.frames] == [0, ret]
    assert result.frames[0].trust == Trust.CONTEXT


def test_walk_frame0_is_the_context(target):
    result = walk(target, APP + 0x50, rbx=5)
    assert result.frames[0].trust == Trust.CONTEXT
    assert dict(result.frames[0].registers) == {"rip": APP + 0x50, "rsp": SP, "rbx": 5}
    assert result.warnings  # nothing found a caller of a context frame: abnormal


def test_walk_stops_at_outermost_cfi_rule(target):
    target.add_cfi([(APP, 0x100, bytes([0x07, 16]))])
    result = walk(target, APP + 0x10)
    assert len(result.frames) == 1 and result.warnings == [] and not result.truncated


def test_walk_stops_at_pc_in_first_page(target):
    target.memory.word(SP + 0x20, SP + 0x60)
    target.memory.word(SP + 0x28, 0x10)
    result = walk(target, APP + 0x50, rbp=SP + 0x20)
    assert len(result.frames) == 1
    assert "first page" in result.warnings[0]


def test_walk_stops_at_zero_return_address_quietly(target):
    target.add_cfi([(APP, 0x100, b"")])
    result = walk(target, APP + 0x10)  # [rsp] is 0
    assert len(result.frames) == 1 and result.warnings == []


def test_walk_stops_at_pc_outside_executable_mappings(target):
    target.memory.word(SP + 0x20, SP + 0x60)
    target.memory.word(SP + 0x28, STACK + 0x10)
    result = walk(target, APP + 0x50, rbp=SP + 0x20)
    assert len(result.frames) == 1  # a frame-pointer guess that leaves code is dropped
    assert "not in an executable mapping" in result.warnings[0]


def test_walk_shows_cfi_caller_outside_executable_mappings(target):
    target.add_cfi([(APP, 0x100, b"")])
    target.memory.word(SP, STACK + 0x10)
    result = walk(target, APP + 0x10)
    assert [f.pc for f in result.frames] == [APP + 0x10, STACK + 0x10]  # CFI's answer is shown
    assert "not in an executable mapping" in result.warnings[0]


def test_walk_stops_when_sp_does_not_increase(target):
    target.add_cfi([(APP, 0x100, bytes([0x12, 7]) + sleb(2))])  # CFA = rsp - 16
    target.memory.word(SP - 24, APP + 0x80)
    result = walk(target, APP + 0x10)
    assert len(result.frames) == 1
    assert "did not increase" in result.warnings[0]


def test_walk_allows_equal_sp_for_context_leaf_whose_pc_changed(target):
    # CFA = rsp; the return address is still in rax (DW_CFA_register rip <- rax).
    target.add_cfi([(APP, 0x100, bytes([0x0E, 0, 0x09, 16, 0]))])
    result = walk(target, APP + 0x10, rax=LIB + 0x40)
    assert [f.pc for f in result.frames[:2]] == [APP + 0x10, LIB + 0x40]
    assert result.frames[1].sp == result.frames[0].sp


def test_walk_memory_fault_tries_next_strategy(target):
    target.add_cfi([(APP, 0x100, bytes([0x0C, 3, 0]))])  # CFA = rbx, which is unmapped
    ret = target.memory.call_before(APP + 0x105)
    target.memory.word(SP + 0x20, SP + 0x60)
    target.memory.word(SP + 0x28, ret)
    result = walk(target, APP + 0x10, rbx=0x10, rbp=SP + 0x20)
    assert [(f.pc, f.trust) for f in result.frames[:2]] == [(APP + 0x10, Trust.CONTEXT), (ret, Trust.FP)]


def test_walk_names_signal_trampoline(target):
    trampoline = APP + 0x300
    target.memory.write(trampoline, x86_64.SIGRETURN_CODE)
    target.add_cfi([(APP, 0x100, b"")])
    target.memory.word(SP, trampoline)  # the handler returns into __restore_rt
    _ucontext(target, SP + 8, {"rip": LIB + 0x10, "rsp": SP + 0x800})
    result = walk(target, APP + 0x10)
    frames = result.frames
    assert frames[1].pc == trampoline and frames[1].function == SIGNAL_HANDLER_CALLED
    assert (frames[2].pc, frames[2].trust) == (LIB + 0x10, Trust.SIGNAL)


def _fp_chain(target, n):
    ret = target.memory.call_before(APP + 0x105)
    for i in range(n):
        bp = SP + 0x20 + 0x20 * i
        target.memory.word(bp, bp + 0x20 if i < n - 1 else 0)
        target.memory.word(bp + 8, ret if i < n - 1 else 0)


def test_walk_frame_cap_keeps_top_and_bottom_frames(target):
    _fp_chain(target, 200)
    full = walk(target, APP + 0x50, rbp=SP + 0x20)
    assert len(full.frames) == 200 and not full.truncated
    capped = walk(target, APP + 0x50, max_frames=20, rbp=SP + 0x20)
    assert capped.truncated and len(capped.frames) == 20
    assert capped.frames_omitted == 200 - 20
    assert [f.index for f in capped.frames] == list(range(15)) + list(range(195, 200))
    assert [f.sp for f in capped.frames] == [full.frames[f.index].sp for f in capped.frames]
    assert any("omitted" in w for w in capped.warnings)
