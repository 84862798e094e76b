"""
x86_64 divide faults
====================

Why a ``div``/``idiv`` raised #DE: a zero divisor, or a quotient that does not fit
(``INT_MIN / -1``). The kernel reports both as SIGFPE with FPE_INTDIV; the divisor, read from
the instruction's operand, tells them apart.
"""

from __future__ import annotations

from coredump.errors import MemoryFault

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Mapping, Optional

__all__ = ("decode_divide_fault",)

# Intel SDM Vol. 2, Table 2-2: ModRM.rm / SIB register numbers (REX.B adds 8).
_REGS = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
         "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")


def _operand_address(code: bytes, i: int, mod: int, rm: int, rex: int, regs: Mapping[str, int],
                     pc: int) -> Optional[int]:
    """The memory operand's address after the ModRM byte at code[i-1], without index
    registers (what compilers emit for a divisor in a local or a global)."""
    if rm == 4:  # SIB byte follows
        sib = code[i]
        i += 1
        if (sib >> 3) & 7 != 4 or (mod == 0 and sib & 7 == 5):
            return None  # an index register or no base: not handled
        rm = sib & 7
    if mod == 0 and rm == 5:  # RIP-relative disp32, from the next instruction's address
        disp = int.from_bytes(code[i:i + 4], "little", signed=True)
        return pc + i + 4 + disp
    base = regs.get(_REGS[rm + (8 if rex & 1 else 0)])
    if base is None:
        return None
    size = {0: 0, 1: 1, 2: 4}[mod]
    return base + int.from_bytes(code[i:i + size], "little", signed=True)


def decode_divide_fault(memory, pc: int, regs: Mapping[str, int]) -> Optional[str]:
    """``"zero"`` or ``"overflow"`` for the div/idiv at pc, or None when it is not one we read.

    Encodings: optional 0x66 and REX prefixes, then F6 /6 /7 (8-bit) or F7 /6 /7."""
    try:
        code = memory.read(pc, 15)
    except MemoryFault:
        return None
    i, width, rex = 0, 4, 0
    if code[i] == 0x66:
        width, i = 2, i + 1
    if 0x40 <= code[i] <= 0x4F:
        rex, i = code[i], i + 1
        if rex & 8:
            width = 8
    if code[i] not in (0xF6, 0xF7) or (code[i + 1] >> 3) & 7 not in (6, 7):
        return None
    if code[i] == 0xF6:
        width = 1
    signed = (code[i + 1] >> 3) & 7 == 7
    mod, rm = code[i + 1] >> 6, code[i + 1] & 7
    if mod == 3:
        value = regs.get(_REGS[rm + (8 if rex & 1 else 0)])
    else:
        addr = _operand_address(code, i + 2, mod, rm, rex, regs, pc)
        try:
            value = None if addr is None else int.from_bytes(memory.read(addr, width), "little")
        except MemoryFault:
            value = None
    if value is None:
        return None
    value &= (1 << 8 * width) - 1
    if value == 0:
        return "zero"
    # Only idiv by -1 overflows without a zero divisor (SDM: "quotient too large").
    return "overflow" if signed and value == (1 << 8 * width) - 1 else None
