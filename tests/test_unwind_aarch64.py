"""Tests of coredump.unwind.aarch64 on hand-built stacks.

The same fixture as ``test_unwind_x86_64.py`` (``tests/fakes.py``) (two fake modules, one stack per test) with
the aarch64 register record; code bytes are A64 instructions, little-endian.
"""

import struct

import pytest

from coredump.arch.aarch64 import AARCH64
from coredump.model import Frame, Trust
from coredump.unwind import aarch64, cfi
from coredump.unwind.common import SIGNAL_HANDLER_CALLED
from coredump.unwind.walk import walk_thread
from tests.cfiwriter import EhFrameWriter, FakeImage
from tests.fakes import APP, APP_END, LIB, ORPHAN, SP, FakeCore, FakeTarget

BL = struct.pack("<I", 0x94000010)      # bl .+0x40
BLR_X8 = struct.pack("<I", 0xD63F0100)  # blr x8
BLRAA = struct.pack("<I", 0xD73F0A21)   # blraa x17, x1
RET = struct.pack("<I", 0xD65F03C0)     # ret
NOP = struct.pack("<I", 0xD503201F)
# GCC's aarch64 CIE: DW_CFA_def_cfa sp+0; return address column 30.
CIE_A64 = bytes([0x0C, 31, 0])
# A prologue `stp x29, x30, [sp, #-32]!` described after its 4 bytes: CFA = sp + 32,
# x29 at CFA - 32, x30 at CFA - 24.
PROLOGUE_CFI = bytes([0x41, 0x0E, 32, 0x9D, 4, 0x9E, 3])


class Target(FakeTarget):
    arch = AARCH64

    def __init__(self, pac_insn_mask=None):
        super().__init__(FakeCore(pac_insn_mask=pac_insn_mask))
        for region in self.memory.regions[:3]:
            region.data[:] = NOP * (len(region.data) // 4)

    def add_cfi(self, fdes, augmentation="zR"):
        """fdes: [(pc_begin, size, instructions)], or with a 4th item, the CIE augmentation."""
        w = EhFrameWriter(APP_END + 0x1000)
        cies = {}
        for pc, size, program, *aug in fdes:
            aug = aug[0] if aug else augmentation
            if aug not in cies:
                cies[aug] = w.add_cie(CIE_A64, augmentation=aug, code_align=4, ra=30)
            w.add_fde(cies[aug], pc, size, program)
        hdr = APP_END + 0x800
        self.modules[0].image = FakeImage({".eh_frame": (w.vaddr, w.eh_frame()),
                                           ".eh_frame_hdr": (hdr, w.eh_frame_hdr(hdr))})


@pytest.fixture
def target():
    cfi.clear_caches()
    return Target()


def call_before(target, return_address, insn=BL):
    target.memory.write(return_address - 4, insn)
    return return_address


def frame0(pc, **regs):
    regs = {"pc": pc, "sp": SP, **regs}
    return Frame(index=0, pc=pc, sp=regs["sp"], trust=Trust.CONTEXT, registers=regs)


def record(target, at, caller_fp, return_address):
    """A frame record (AAPCS64 §6.2.3): {x29, x30} at `at`."""
    target.memory.word(at, caller_fp)
    target.memory.word(at + 8, return_address)


def test_frame_record(target):
    ret = call_before(target, APP + 0x104)
    record(target, SP + 0x20, SP + 0x60, ret)
    caller = aarch64.caller_by_frame_pointer(frame0(APP + 0x50, x29=SP + 0x20), target)
    assert (caller.pc, caller.sp, caller.trust) == (ret, SP + 0x30, Trust.FP)
    assert caller.registers["x29"] == SP + 0x60


def test_frame_record_rejects_caller_fp_below_caller_sp(target):
    record(target, SP + 0x20, SP, APP + 0x104)
    assert aarch64.caller_by_frame_pointer(frame0(APP + 0x50, x29=SP + 0x20), target) is None


def test_walk_frame_record_chain(target):
    rets = [call_before(target, APP + 0x104 + 0x10 * i) for i in range(3)]
    for i, ret in enumerate(rets):
        record(target, SP + 0x20 * (i + 1), SP + 0x20 * (i + 2), ret)
    record(target, SP + 0x80, 0, 0)
    result = walk_thread(target, {"pc": APP + 0x50, "sp": SP, "x29": SP + 0x20, "x30": rets[0]})
    assert [f.pc for f in result.frames] == [APP + 0x50] + rets
    assert [f.trust for f in result.frames[1:]] == [Trust.FP] * 3


def test_leaf_return_address_in_x30(target):
    """A leaf without CFI never stored x30: the caller is x30 with the same sp and x29."""
    ret = call_before(target, LIB + 0x204)
    record(target, SP + 0x40, 0, APP + 0x999)  # the caller's own record: another return address
    caller = aarch64.caller_by_link_register(frame0(APP + 0x50, x29=SP + 0x40, x30=ret, x19=7), target)
    assert (caller.pc, caller.sp, caller.trust) == (ret, SP, Trust.FP)
    assert caller.registers["x29"] == SP + 0x40 and caller.registers["x19"] == 7


def test_link_register_declined_once_the_record_holds_it(target):
    ret = call_before(target, LIB + 0x204)
    record(target, SP + 0x40, 0, ret)  # a non-leaf pushed {x29, x30}: the frame record handles it
    assert aarch64.caller_by_link_register(frame0(APP + 0x50, x29=SP + 0x40, x30=ret), target) is None


def test_link_register_only_for_interrupted_frames(target):
    ret = call_before(target, LIB + 0x204)
    older = Frame(index=2, pc=APP + 0x50, sp=SP, trust=Trust.CFI, registers={"pc": APP + 0x50, "sp": SP, "x30": ret})
    assert aarch64.caller_by_link_register(older, target) is None


def test_walk_leaf_then_frame_records(target):
    leaf_ret = call_before(target, LIB + 0x204)
    outer_ret = call_before(target, APP + 0x304)
    record(target, SP + 0x40, SP + 0x80, outer_ret)
    record(target, SP + 0x80, 0, 0)
    result = walk_thread(target, {"pc": APP + 0x50, "sp": SP, "x29": SP + 0x40, "x30": leaf_ret})
    assert [f.pc for f in result.frames] == [APP + 0x50, leaf_ret, outer_ret]
    assert result.frames[1].sp == result.frames[0].sp  # equal sp: a context leaf whose pc changed


def test_call_through_null_uses_x30(target):
    ret = call_before(target, APP + 0x104, BLR_X8)
    result = walk_thread(target, {"pc": 0, "sp": SP, "x30": ret, "x29": 0})
    assert [f.pc for f in result.frames] == [0, ret]
    assert result.frames[1].sp == SP


def test_pac_stripped_from_frame_record(target):
    ret = call_before(target, APP + 0x104)
    signed = ret | (0x2A5B << 48)  # a PAC in bits 63..48
    record(target, SP + 0x20, SP + 0x60, signed)
    caller = aarch64.caller_by_frame_pointer(frame0(APP + 0x50, x29=SP + 0x20), target)
    assert caller.pc == ret


def test_pac_stripped_with_the_cores_mask(target):
    target.core.pac_insn_mask = 0x007F_8000_0000_0000  # 39-bit VA: bits 54..39 (no TBI byte)
    signed = (APP + 0x104) | (0x1F << 47)
    assert aarch64.strip_pac(signed, target) == APP + 0x104
    assert aarch64.strip_pac(0xFF00_0000_0040_0104, target) == 0xFF00_0000_0040_0104


def test_pac_stripped_from_cfi_return_address(target):
    target.add_cfi([(APP, 0x100, PROLOGUE_CFI)])
    ret = call_before(target, LIB + 0x104)
    target.memory.word(SP + 8, ret | (0x55 << 56) | (0x1234 << 40 << 8))
    target.memory.word(SP, SP + 0x80)
    caller = aarch64.caller_by_cfi(frame0(APP + 0x10), target)
    assert (caller.pc, caller.sp, caller.trust) == (ret, SP + 32, Trust.CFI)
    assert caller.registers["x29"] == SP + 0x80


def test_cfi_leaf_keeps_x30(target):
    """A leaf's CFI has no rule for x30: the return address is x30 itself (same value)."""
    target.add_cfi([(APP, 0x100, b"")])
    ret = call_before(target, LIB + 0x104)
    caller = aarch64.caller_by_cfi(frame0(APP + 0x10, x30=ret), target)
    assert (caller.pc, caller.sp) == (ret, SP)


@pytest.mark.parametrize("insn", [BL, BLR_X8, BLRAA, struct.pack("<I", 0xD63F081F),  # blraaz x0
                                  struct.pack("<I", 0x97FFFFFF)])                      # bl .-4
def test_is_after_call(insn):
    assert aarch64.is_after_call(NOP + insn)


@pytest.mark.parametrize("insn", [NOP, RET, struct.pack("<I", 0x14000010),   # b .+0x40
                                  struct.pack("<I", 0xD61F0100)])            # br x8
def test_is_not_after_call(insn):
    assert not aarch64.is_after_call(NOP + insn)


def test_scan_finds_return_after_bl_in_a_module(target):
    m = target.memory
    m.word(SP, APP + 0x200)                        # code, but no bl before it
    m.word(SP + 8, call_before(target, ORPHAN + 0x104))  # after a bl, but in no module
    ret = call_before(target, LIB + 0x104, BLR_X8)
    m.word(SP + 24, SP + 0x100)                    # the record's x29, just below x30
    m.word(SP + 32, ret)
    caller = aarch64.caller_by_scan(frame0(APP + 0x50), target)
    assert (caller.pc, caller.sp, caller.trust) == (ret, SP + 40, Trust.SCAN)
    assert caller.registers["x29"] == SP + 0x100


SIGFRAME_REGS = SP + aarch64.RT_SIGFRAME_UC + aarch64.UC_MCONTEXT + 8


def _sigframe(target, regs):
    """struct rt_sigframe at SP: siginfo (128), ucontext with uc_mcontext at 176, whose
    struct sigcontext starts with fault_address then regs[31], sp, pc, pstate."""
    for i, name in enumerate(aarch64.SIGCONTEXT_REGS):
        target.memory.word(SIGFRAME_REGS + 8 * i, regs.get(name, 0))


def test_signal_frame(target):
    trampoline = APP + 0x300
    target.memory.write(trampoline, aarch64.SIGRETURN_CODE)
    assert aarch64.SIGRETURN_CODE == bytes.fromhex("681180d2010000d4")
    _sigframe(target, {"pc": LIB + 0x77, "sp": SP + 0x800, "x29": SP + 0x900, "x30": APP + 0x40, "x0": 42})
    tramp = Frame(index=1, pc=trampoline, sp=SP, trust=Trust.CFI, registers={"pc": trampoline, "sp": SP})
    caller = aarch64.caller_by_signal_frame(tramp, target)
    assert (caller.pc, caller.sp, caller.trust) == (LIB + 0x77, SP + 0x800, Trust.SIGNAL)
    assert caller.registers["x29"] == SP + 0x900 and caller.registers["x0"] == 42
    assert caller.registers["x30"] == APP + 0x40
    assert caller.lookup_pc == caller.pc
    assert aarch64.caller_by_signal_frame(frame0(APP + 0x50), target) is None


def test_walk_through_signal_frame_before_cfi(target):
    """The trampoline's own CFI (the vDSO's: CFA = x29, x29/x30 from the frame record)
    would skip the interrupted frame; the sigcontext names it."""
    trampoline = APP + 0x304  # the vDSO puts a nop before it, covered by the same FDE
    target.memory.write(trampoline, aarch64.SIGRETURN_CODE)
    target.add_cfi([(APP, 0x100, b""),
                    (APP + 0x300, 0x10, bytes([0x0C, 29, 0, 0x9D, 0, 0x9E, 1]), "zRS")])
    interrupted = LIB + 0x10
    _sigframe(target, {"pc": interrupted, "sp": SP + 0x800, "x30": LIB + 0x80})
    record(target, SP + 0x40, 0, LIB + 0x80)  # the kernel's frame record: the interrupted x29, x30
    result = walk_thread(target, {"pc": APP + 0x10, "sp": SP, "x29": SP + 0x40, "x30": trampoline})
    frames = result.frames
    assert frames[1].pc == trampoline and frames[1].function == SIGNAL_HANDLER_CALLED
    assert frames[1].trust == Trust.CFI
    assert (frames[2].pc, frames[2].trust) == (interrupted, Trust.SIGNAL)
