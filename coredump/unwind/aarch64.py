"""
aarch64 unwinding
=================

How to find the caller of an AArch64 frame, one strategy per function, tried in the order
of ``STRATEGIES`` (rust-minidump's ``arm64.rs``, kept parallel to ``x86_64.py`` on purpose):
signal frame, CFI, link register, frame record, scan.

Callers are looked up at ``pc - 1`` as on x86_64 (``Frame.lookup_pc``), not at ``pc - 4``
as rust-minidump does: A64 instructions are 4 bytes and aligned, so ``pc - 1`` lies inside
the ``bl`` that made the call, and CFI rows and line-table rows cover whole instructions,
so any byte of the ``bl`` finds the same row as its first byte.
"""

from __future__ import annotations

import struct

from coredump.elf.core import AT_EXECFN
from coredump.errors import MemoryFault
from coredump.model import Frame, Trust
from coredump.unwind.cfi import apply_row, cfi_row_at
from coredump.unwind.common import UnwindState, public_caller

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable, Optional

    from coredump.unwind.common import Strategy

__all__ = (
    "caller_by_cfi", "caller_by_signal_frame", "caller_by_link_register", "caller_by_frame_pointer",
    "caller_by_scan", "caller_by_bad_call", "STRATEGIES", "is_after_call", "strip_pac",
)

POINTER_WIDTH = 8
PC, SP, FP, LR = "pc", "sp", "x29", "x30"
# AAPCS64 §6.1.1: x19-x28 are callee-saved; x29 (frame pointer) is preserved too.
CALLEE_SAVED = tuple(f"x{i}" for i in range(19, 30))

# The kernel's __kernel_rt_sigreturn (arch/arm64/kernel/vdso/sigreturn.S), glibc's and
# qemu-user's trampolines alike: mov x8, #__NR_rt_sigreturn (139); svc #0.
SIGRETURN_CODE = struct.pack("<II", 0xD2801168, 0xD4000001)
# arch/arm64/kernel/signal.c: struct rt_sigframe { struct siginfo info; struct ucontext uc; },
# and setup_return() leaves sp at the rt_sigframe when the handler runs (and returns).
# siginfo is 128 bytes; arch/arm64/include/uapi/asm/ucontext.h: uc_flags (8), uc_link (8),
# uc_stack (24), uc_sigmask (8), __unused[120], then uc_mcontext, a struct sigcontext that
# __reserved's __aligned__(16) puts at 176 (gdb's AARCH64_UCONTEXT_SIGCONTEXT_OFFSET).
# qemu-user's target_rt_sigframe (linux-user/aarch64/signal.c) copies the kernel's layout.
RT_SIGFRAME_UC = 128
UC_MCONTEXT = 176
# arch/arm64/include/uapi/asm/sigcontext.h, struct sigcontext: fault_address, regs[31],
# sp, pc, pstate, one u64 each.
SIGCONTEXT_REGS = tuple(f"x{i}" for i in range(31)) + ("sp", "pc", "pstate")
SIGCONTEXT_REGS_OFFSET = 8

# Without NT_ARM_PAC_MASK: user addresses have 48 bits (Linux gives a process addresses
# above 2^48 only when it asks for them with an mmap hint, Documentation/arch/arm64/
# memory.rst); the pointer-authentication code and the top byte (TBI) sit above them.
DEFAULT_VA_BITS = 48

# rust-minidump's scan ranges: 40 words, four times as far below a trusted frame.
SCAN_WORDS = 40
SCAN_WORDS_TRUSTED = 4 * SCAN_WORDS
# 128 KiB between frames is already generous (rust-minidump's MAX_REASONABLE_GAP_BETWEEN_FRAMES).
MAX_FRAME_GAP = 128 * 1024

# How far below pc an unchecked x30 is taken for a stale one of the same function (no
# symbols to say where it starts): most functions are smaller.
STALE_LR_SPAN = 4096

_CFI, _SIGNAL = Trust.CFI, Trust.SIGNAL


def strip_pac(address: int, target) -> int:
    """A return address without its pointer-authentication code (Arm ARM D8.8): the
    core's NT_ARM_PAC_MASK insn_mask when it has one, else every bit above the VA range."""
    mask = target.core.pac_insn_mask
    if mask:
        return address & ~mask & ((1 << 64) - 1)
    return address & ((1 << DEFAULT_VA_BITS) - 1)


def _is_sigreturn(pc: int, target) -> bool:
    try:
        return target.memory.read(pc, len(SIGRETURN_CODE)) == SIGRETURN_CODE
    except MemoryFault:
        return False


def _cfi(state: UnwindState, target, reader) -> Optional[UnwindState]:
    regs = state.regs
    if regs.get(SP) is None:
        return None
    row = cfi_row_at(target, state.lookup_pc)
    if row is None:
        return None
    result = apply_row(row, regs, reader, target.arch)
    if result is None:
        return None
    state.cfa, caller = result
    # The return-address column is x30 (GCC's CIEs); the pc is that value, unsigned.
    caller[PC] = strip_pac(caller[PC], target)
    # An FDE whose CIE has the "S" augmentation describes a signal trampoline: the
    # caller's pc is the interrupted instruction itself (LSB Core §10.6.1.1).
    return UnwindState(caller[PC], caller, _SIGNAL if row.signal else _CFI)


def _signal_frame(state: UnwindState, target, reader) -> Optional[UnwindState]:
    """At ``__kernel_rt_sigreturn``, the interrupted registers from the rt_sigframe at sp.

    Tried before CFI: the vDSO's CFI for the trampoline (``.cfi_signal_frame``, CFA = x29)
    only restores x29 and x30 from the frame record the kernel pushed, i.e. it names the
    interrupted function's caller and skips the interrupted function itself."""
    sp = state.regs.get(SP)
    if sp is None or not _is_sigreturn(state.pc, target):
        return None
    sigcontext = sp + RT_SIGFRAME_UC + UC_MCONTEXT + SIGCONTEXT_REGS_OFFSET
    caller = {name: reader.read_word(sigcontext + i * POINTER_WIDTH) for i, name in enumerate(SIGCONTEXT_REGS)}
    state.cfa = sp
    return UnwindState(caller[PC], caller, Trust.SIGNAL)


def _plausible_return(ip: int, target) -> bool:
    if ip < 4096 or target.find_module(ip) is None or not target.memory.is_executable(ip):
        return False
    try:
        # Target.read_code: from the core, else from the module's file (qemu-user cores dump no text).
        return is_after_call(target.read_code(ip - 4, 4))
    except MemoryFault:
        return False


def _unverifiable_return(ip: int, target) -> Optional[str]:
    """The file that would tell whether `ip` returns after a call, when it is missing: ip
    lies in executable memory of the core (a PT_LOAD with PF_X) whose code neither the core
    nor a file holds. None when the code is there to check, or ip is no code at all."""
    if ip < 4096 or not target.memory.is_executable(ip):
        return None
    try:
        target.read_code(ip - 4, 4)
        return None
    except MemoryFault:
        pass
    mod = target.find_module(ip)
    return mod.path if mod is not None else _program_name(target)


def _program_name(target) -> str:
    """The program's name as the core records it: AT_EXECFN's string (qemu-user writes it
    as the kernel does), else a placeholder."""
    at = target.core.get_auxv(AT_EXECFN)
    try:
        return target.memory.read_cstring(at, 4096).decode("utf-8", "surrogateescape") if at else "the executable"
    except MemoryFault:
        return "the executable"


def _link_register(state: UnwindState, target, reader) -> Optional[UnwindState]:
    """An interrupted leaf without CFI has not saved x30: it still holds the return
    address, and sp and x29 are the caller's. Used when x30 returns after a ``bl``/``blr``
    (or at the sigreturn trampoline: a signal handler's x30, arch/arm64/kernel/signal.c
    setup_return) and is not the return address of the frame record x29 points at (a
    function that has pushed its record has x30 == [x29 + 8]; the frame-record strategy
    handles it). Where no code is there to check x30 against (the executable missing),
    x30 is taken all the same, trusted as a scanned word, with a warning naming the file."""
    if state.trust not in (Trust.CONTEXT, Trust.SIGNAL):
        return None
    lr, sp = state.regs.get(LR), state.regs.get(SP)
    if lr is None or sp is None:
        return None
    ip = strip_pac(lr, target)
    if ip == state.pc:
        return None
    fp = state.regs.get(FP)
    if fp is not None:
        try:
            if strip_pac(reader.read_word(fp + POINTER_WIDTH), target) == ip:
                return None
        except MemoryFault:
            pass
    if _is_sigreturn(ip, target):
        return _leaf_caller(state, ip, _find_sigframe(sp, fp, reader), Trust.FP)
    if _plausible_return(ip, target):
        return _leaf_caller(state, ip, sp, Trust.FP)
    # Unchecked, x30 is taken for frame 0 only, and not when it lies just below pc: there it
    # is rather the stale return address of a call the function made earlier and that
    # returned (an interrupted non-leaf, say in a signal frame, has long saved its own).
    if state.trust != Trust.CONTEXT or 0 <= state.pc - ip < STALE_LR_SPAN:
        return None
    missing = _unverifiable_return(ip, target)
    if missing is None:
        return None
    _warn(target, f"{missing} not found: frame 0's caller is taken from x30 ({ip:#x}) unchecked")
    return _leaf_caller(state, ip, sp, Trust.SCAN)


def _find_sigframe(sp: int, fp: Optional[int], reader) -> int:
    """Where the rt_sigframe lies when a handler without CFI may have moved sp below it:
    the 16-byte aligned sp' in [sp, x29) whose sigcontext holds the x29 and x30 of the frame
    record x29 points at (arch/arm64/kernel/signal.c setup_sigframe and qemu-user's
    target_setup_frame write the interrupted x29, x30 there and point the handler's x29 at
    it); sp itself when none does."""
    if fp is None or not sp < fp <= sp + MAX_FRAME_GAP:
        return sp
    regs = RT_SIGFRAME_UC + UC_MCONTEXT + SIGCONTEXT_REGS_OFFSET
    try:
        record = reader.read_word(fp), reader.read_word(fp + POINTER_WIDTH)
        for at in range(sp, fp, 16):
            if (reader.read_word(at + regs + 29 * POINTER_WIDTH),
                    reader.read_word(at + regs + 30 * POINTER_WIDTH)) == record:
                return at
    except MemoryFault:
        pass
    return sp


def _warn(target, message: str) -> None:
    if message not in target.warnings:
        target.warnings.append(message)


def _leaf_caller(state: UnwindState, ip: int, sp: int, trust: Trust = Trust.FP) -> UnwindState:
    caller = {name: state.regs[name] for name in CALLEE_SAVED if name in state.regs}
    caller[PC], caller[SP] = ip, sp
    state.cfa = sp
    return UnwindState(ip, caller, trust)


def _frame_pointer(state: UnwindState, target, reader) -> Optional[UnwindState]:
    """A frame record (AAPCS64 §6.2.3): x29 points at {caller's x29, return address}. The
    record may sit anywhere in the frame, so x29 + 16 is only a lower bound of the caller's
    sp (rust-minidump and Breakpad use it the same way)."""
    fp, sp = state.regs.get(FP), state.regs.get(SP)
    if fp is None or sp is None or fp >= (1 << 64) - 2 * POINTER_WIDTH:
        return None
    caller_ip = strip_pac(reader.read_word(fp + POINTER_WIDTH), target)
    caller_fp = reader.read_word(fp)
    caller_sp = fp + 2 * POINTER_WIDTH
    # Coherent frame records are well ordered (the outermost one holds 0), and lie in memory.
    if caller_sp <= sp or (caller_fp != 0 and caller_fp < caller_sp):
        return None
    if caller_fp:
        reader.read_word(caller_fp)
    state.cfa = caller_sp
    return UnwindState(caller_ip, {PC: caller_ip, SP: caller_sp, FP: caller_fp}, Trust.FP)


def is_after_call(code: bytes) -> bool:
    """Whether the 4-byte instruction before a return address is a branch with link
    (Arm ARM C6.2: BL imm26, BLR Xn, and the pointer-authenticating BLRAA/BLRAAZ/BLRAB/BLRABZ)."""
    if len(code) < 4:
        return False
    insn = struct.unpack_from("<I", code, len(code) - 4)[0]
    return (insn & 0xFC000000 == 0x94000000            # BL
            or insn & 0xFFFFFC1F == 0xD63F0000          # BLR
            or insn & 0xFFFFF81F == 0xD63F081F          # BLRAAZ, BLRABZ
            or insn & 0xFFFFF800 == 0xD73F0800)         # BLRAA, BLRAB


def _scan(state: UnwindState, target, reader) -> Optional[UnwindState]:
    """A word on the stack that returns just after a ``bl``/``blr`` into a known module."""
    sp = state.regs.get(SP)
    if sp is None:
        return None
    words = SCAN_WORDS_TRUSTED if state.trust in (Trust.CONTEXT, Trust.CFI) else SCAN_WORDS
    for i in range(words):
        address_of_ip = sp + i * POINTER_WIDTH
        try:
            ip = strip_pac(reader.read_word(address_of_ip), target)
        except MemoryFault:
            return None
        if not _plausible_return(ip, target):
            continue
        caller_sp = address_of_ip + POINTER_WIDTH
        caller = {PC: ip, SP: caller_sp}
        # A return address on the stack was stored by ``stp x29, x30`` as the second word
        # of a frame record; the first is the caller's x29 when it points further up.
        if i > 0:
            fp = reader.read_word(address_of_ip - POINTER_WIDTH)
            if address_of_ip < fp <= address_of_ip + MAX_FRAME_GAP:
                caller[FP] = fp
        state.cfa = caller_sp
        return UnwindState(ip, caller, Trust.SCAN)
    return None


def _bad_call(state: UnwindState, target, reader) -> Optional[UnwindState]:
    """A branch to a bad pointer (drgn's ``bad_call_unwind``): nothing ran at the target,
    so x30 holds the return address the ``blr`` set and every other register is the caller's."""
    lr, sp = state.regs.get(LR), state.regs.get(SP)
    if lr is None or sp is None:
        return None
    return _leaf_caller(state, strip_pac(lr, target), sp)


STRATEGIES = (_signal_frame, _cfi, _link_register, _frame_pointer, _scan)
BAD_CALL = _bad_call


def _public(strategy: Strategy) -> Callable[[Frame, object], Optional[Frame]]:
    return public_caller(strategy, PC, SP)


caller_by_cfi = _public(_cfi)
caller_by_cfi.__doc__ = """The caller by DWARF CFI; raises ``OutermostFrame`` at the end of the stack."""
caller_by_signal_frame = _public(_signal_frame)
caller_by_link_register = _public(_link_register)
caller_by_frame_pointer = _public(_frame_pointer)
caller_by_scan = _public(_scan)
caller_by_bad_call = _public(_bad_call)
