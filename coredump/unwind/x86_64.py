"""
x86_64 unwinding
================

How to find the caller of an x86_64 frame, one strategy per function, tried in the order
of ``STRATEGIES`` (rust-minidump's ``amd64.rs``): CFI, signal frame, frame pointer, scan.
"""

from __future__ import annotations

from coredump.errors import MemoryFault
from coredump.model import Frame, Trust
from coredump.unwind.cfi import apply_row, cfi_row_at
from coredump.unwind.common import UnwindState, public_caller

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable, Optional

    from coredump.unwind.common import Strategy

__all__ = (
    "caller_by_cfi", "caller_by_signal_frame", "caller_by_frame_pointer", "caller_by_scan",
    "caller_by_bad_call", "STRATEGIES", "is_after_call",
)

POINTER_WIDTH = 8
PC, SP, FP = "rip", "rsp", "rbp"
# psABI §3.2.1, Figure 3.4: preserved across calls.
CALLEE_SAVED = ("rbx", "rbp", "r12", "r13", "r14", "r15")

# glibc's __restore_rt (sysdeps/unix/sysv/linux/x86_64/libc_sigaction.c):
# mov $__NR_rt_sigreturn (15), %rax; syscall.
SIGRETURN_CODE = bytes.fromhex("48c7c00f000000" "0f05")
# The handler returns into __restore_rt having popped rt_sigframe.pretcode
# (arch/x86/include/asm/sigframe.h: char *pretcode; struct ucontext uc; struct siginfo info),
# so sp points at uc. include/uapi/asm-generic/ucontext.h (which x86's uapi/asm/ucontext.h
# includes): uc_flags (8), uc_link (8), uc_stack (stack_t: 8 + 4 + pad 4 + 8 = 24), then
# uc_mcontext at offset 40.
UC_MCONTEXT = 40
# arch/x86/include/uapi/asm/sigcontext.h, struct sigcontext (64-bit): one word each from
# offset 0: r8 ... r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip (128), eflags (136).
SIGCONTEXT_REGS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
                   "rdi", "rsi", "rbp", "rbx", "rdx", "rax", "rcx", "rsp", "rip", "eflags")

# rust-minidump's scan ranges: 40 words, four times as far below a trusted frame.
SCAN_WORDS = 40
SCAN_WORDS_TRUSTED = 4 * SCAN_WORDS
# 128 KiB between frames is already generous (rust-minidump's MAX_REASONABLE_GAP_BETWEEN_FRAMES).
MAX_FRAME_GAP = 128 * 1024


def is_non_canonical(address: int) -> bool:
    """Bits 63..47 of a user-space address are all equal (4-level paging; 5-level is not
    used by Linux user space unless a program asks for it)."""
    top = address >> 47
    return top not in (0, 0x1FFFF)


_CFI, _SIGNAL = Trust.CFI, Trust.SIGNAL


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
    # An FDE whose CIE has the "S" augmentation describes a signal trampoline: the
    # caller's pc is the interrupted instruction itself (LSB Core §10.6.1.1).
    return UnwindState(caller[PC], caller, _SIGNAL if row.signal else _CFI)


def _signal_frame(state: UnwindState, target, reader) -> Optional[UnwindState]:
    sp = state.regs.get(SP)
    if sp is None or target.memory.read(state.pc, len(SIGRETURN_CODE)) != SIGRETURN_CODE:
        return None
    mcontext = sp + UC_MCONTEXT
    caller = {name: reader.read_word(mcontext + i * POINTER_WIDTH) for i, name in enumerate(SIGCONTEXT_REGS)}
    state.cfa = sp
    return UnwindState(caller[PC], caller, Trust.SIGNAL)


def _frame_pointer(state: UnwindState, target, reader) -> Optional[UnwindState]:
    """The standard prologue ``push %rbp; mov %rsp,%rbp``: the caller's rbp is at [rbp],
    its return address at [rbp + 8], its sp at rbp + 16 (rust-minidump's checks)."""
    bp, sp = state.regs.get(FP), state.regs.get(SP)
    if bp is None or sp is None or bp >= (1 << 64) - 2 * POINTER_WIDTH:
        return None
    caller_ip = reader.read_word(bp + POINTER_WIDTH)
    caller_bp = reader.read_word(bp)
    caller_sp = bp + 2 * POINTER_WIDTH
    # Coherent frame pointers are well ordered, and the new one still points into memory.
    if caller_sp <= bp or caller_bp < caller_sp:
        return None
    reader.read_word(caller_bp)
    if is_non_canonical(caller_ip) or caller_sp <= sp:
        return None
    reader.read_word(caller_sp)
    state.cfa = caller_sp
    return UnwindState(caller_ip, {PC: caller_ip, SP: caller_sp, FP: caller_bp}, Trust.FP)


def _modrm_length(code: bytes) -> int:
    """Bytes taken by a ModRM byte, its SIB and displacement (Intel SDM vol. 2, §2.1.5)."""
    modrm = code[0]
    mod, rm = modrm >> 6, modrm & 7
    if mod == 3:
        return 1
    length = 1
    if rm == 4:  # a SIB byte follows
        length += 1
        if mod == 0 and len(code) > 1 and code[1] & 7 == 5:
            length += 4
    elif mod == 0 and rm == 5:  # rip-relative disp32
        length += 4
    return length + {0: 0, 1: 1, 2: 4}[mod]


def is_after_call(code: bytes) -> bool:
    """Whether the 7 bytes before a return address end with a call: ``e8 rel32`` or
    ``ff /2`` (an indirect call through a register or memory, any ModRM form)."""
    if len(code) >= 5 and code[-5] == 0xE8:
        return True
    for k in range(2, min(len(code), 7) + 1):
        if code[-k] == 0xFF and (code[-k + 1] >> 3) & 7 == 2 and _modrm_length(code[-k + 1:]) == k - 1:
            return True
    return False


def _looks_like_return_address(ip: int, target) -> bool:
    if ip < 4096 or is_non_canonical(ip):
        return False
    if target.find_module(ip) is None or not target.memory.is_executable(ip):
        return False
    try:
        return is_after_call(target.memory.read(ip - 7, 7))
    except MemoryFault:
        return False


def _scan(state: UnwindState, target, reader) -> Optional[UnwindState]:
    """A word on the stack that returns just after a call into a known module."""
    sp = state.regs.get(SP)
    if sp is None:
        return None
    last_bp = state.regs.get(FP)
    words = SCAN_WORDS_TRUSTED if state.trust in (Trust.CONTEXT, Trust.CFI) else SCAN_WORDS
    for i in range(words):
        address_of_ip = sp + i * POINTER_WIDTH
        try:
            ip = reader.read_word(address_of_ip)
        except MemoryFault:
            return None
        if not _looks_like_return_address(ip, target):
            continue
        caller_sp = address_of_ip + POINTER_WIDTH
        caller = {PC: ip, SP: caller_sp}
        # rust-minidump: rbp was either pushed just below the return address by a standard
        # prologue, or left alone by a function that does not use it.
        if last_bp is not None and i > 0:
            bp = reader.read_word(address_of_ip - POINTER_WIDTH)
            pushed = last_bp == address_of_ip - POINTER_WIDTH
            if pushed and address_of_ip < bp <= address_of_ip + MAX_FRAME_GAP:
                caller[FP] = bp
            elif last_bp >= caller_sp:
                caller[FP] = last_bp
        state.cfa = caller_sp
        return UnwindState(ip, caller, Trust.SCAN)
    return None


def _bad_call(state: UnwindState, target, reader) -> Optional[UnwindState]:
    """A call through a bad pointer (drgn's ``bad_call_unwind``): nothing ran at the target,
    so [sp] is the return address the call pushed and every other register is the caller's."""
    sp = state.regs.get(SP)
    if sp is None:
        return None
    ip = reader.read_word(sp)
    caller = {name: state.regs[name] for name in CALLEE_SAVED if name in state.regs}
    caller[PC], caller[SP] = ip, sp + POINTER_WIDTH
    state.cfa = sp + POINTER_WIDTH
    return UnwindState(ip, caller, Trust.SCAN)


STRATEGIES = (_cfi, _signal_frame, _frame_pointer, _scan)
BAD_CALL = _bad_call


def _public(strategy: Strategy) -> Callable[[Frame, object], Optional[Frame]]:
    return public_caller(strategy, PC, SP)


caller_by_cfi = _public(_cfi)
caller_by_cfi.__doc__ = """The caller by DWARF CFI; raises ``OutermostFrame`` at the end of the stack."""
caller_by_signal_frame = _public(_signal_frame)
caller_by_signal_frame.__doc__ = """The interrupted frame when `frame` is at ``__restore_rt``."""
caller_by_frame_pointer = _public(_frame_pointer)
caller_by_scan = _public(_scan)
caller_by_bad_call = _public(_bad_call)
