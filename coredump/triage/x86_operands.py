"""
x86_64 operands
===============

The memory operand of the instruction at a pc (the base register and displacement of its
ModRM/SIB addressing, Intel SDM Vol. 2 §2.1.5), and the loads just before it that filled a
register from a stack slot (``mov reg, [rbp+disp]``, what -O0 code does before every use of
a variable): what a reason needs to name the variable a faulting access went through.

Only forms whose meaning is certain are read; anything else is None, and the reason keeps
its generic wording.
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Optional

__all__ = ("MemoryOperand", "REGS", "memory_operand", "load_source")

# Intel SDM Vol. 2, Table 2-2: ModRM.rm / SIB register numbers (REX.B adds 8).
REGS = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
# One-byte opcodes followed by a ModRM byte (SDM Vol. 2, Appendix A, Table A-2).
_MODRM_1 = frozenset(list(range(0x00, 0x04)) + list(range(0x08, 0x0C)) + list(range(0x10, 0x14))
                     + list(range(0x18, 0x1C)) + list(range(0x20, 0x24)) + list(range(0x28, 0x2C))
                     + list(range(0x30, 0x34)) + list(range(0x38, 0x3C))
                     + [0x63, 0x69, 0x6B, 0x80, 0x81, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8B,
                        0xC0, 0xC1, 0xC6, 0xC7, 0xD0, 0xD1, 0xD2, 0xD3, 0xF6, 0xF7, 0xFE, 0xFF])
# Two-byte opcodes 0F xx with a ModRM byte that access memory through it: movzx, movsx,
# imul, and the SSE moves compilers use for copies (Table A-3).
_MODRM_0F = frozenset([0xB6, 0xB7, 0xBE, 0xBF, 0xAF, 0x10, 0x11, 0x28, 0x29, 0x6F, 0x7F, 0xD6, 0x7E, 0x6E])
_PREFIXES = (0x66, 0x67, 0xF2, 0xF3, 0x2E, 0x3E, 0x26, 0x36, 0x64, 0x65)


class MemoryOperand(namedtuple("MemoryOperand", "base disp has_index length reg opcode")):
    __slots__ = ()
    base: Optional[str]  # None: RIP-relative or absolute
    disp: int
    has_index: bool
    length: int  # of the whole instruction
    reg: int  # ModRM.reg with REX.R: the register operand (or the opcode extension)
    opcode: int


def memory_operand(code: bytes) -> Optional[MemoryOperand]:
    """The memory operand of the instruction at the start of `code`; None when it has
    none, or is not one of the forms above."""
    try:
        return _decode(code)
    except IndexError:
        return None


def _decode(code: bytes) -> Optional[MemoryOperand]:
    i = 0
    while code[i] in _PREFIXES and i < 4:
        i += 1
    rex = 0
    if 0x40 <= code[i] <= 0x4F:
        rex, i = code[i], i + 1
    op = code[i]
    if op == 0x0F:
        i += 1
        if code[i] not in _MODRM_0F:
            return None
        op = 0x0F00 | code[i]
    elif op not in _MODRM_1:
        return None
    modrm = code[i + 1]
    i += 2
    mod, reg, rm = modrm >> 6, (modrm >> 3) & 7 | (8 if rex & 4 else 0), modrm & 7
    if mod == 3:
        return None  # a register operand: no memory accessed
    base: Optional[str]
    has_index = False
    if rm == 4:
        sib = code[i]
        i += 1
        has_index = (sib >> 3) & 7 != 4 or bool(rex & 2)
        rm_base = sib & 7
        base = None if mod == 0 and rm_base == 5 else REGS[rm_base | (8 if rex & 1 else 0)]
        disp_size = 4 if mod == 0 and rm_base == 5 else {0: 0, 1: 1, 2: 4}[mod]
    elif mod == 0 and rm == 5:
        base, disp_size = None, 4  # RIP-relative
    else:
        base, disp_size = REGS[rm | (8 if rex & 1 else 0)], {0: 0, 1: 1, 2: 4}[mod]
    if len(code) < i + disp_size:
        return None
    disp = int.from_bytes(code[i:i + disp_size], "little", signed=True)
    i += disp_size + _immediate_size(op, reg & 7, bool(code[0] == 0x66))
    return MemoryOperand(base, disp, has_index, i, reg, op)


def _immediate_size(op: int, ext: int, operand16: bool) -> int:
    """Bytes of immediate after the ModRM operand (SDM Appendix A: Ib, Iz)."""
    if op in (0x80, 0x83, 0xC0, 0xC1, 0xC6, 0x6B):
        return 1
    if op in (0x81, 0xC7, 0x69):
        return 2 if operand16 else 4
    if op == 0xF6 and ext in (0, 1):
        return 1
    if op == 0xF7 and ext in (0, 1):
        return 2 if operand16 else 4
    return 0


def load_source(code: bytes, end: int, register: str, max_loads: int = 4) -> Optional[MemoryOperand]:
    """The ``mov register, [base+disp]`` (8B /r) that last wrote `register` among the loads
    ending at code[end] (decoded backwards: each must be a plain 8B load of another
    register, ending where the next begins), or None when something else comes between."""
    written = set()
    for _ in range(max_loads):
        found = None
        for length in (4, 3, 7, 6, 5, 8):
            start = end - length
            if start < 0:
                continue
            operand = memory_operand(code[start:end])
            if operand is not None and operand.length == length and operand.opcode == 0x8B \
                    and not operand.has_index and operand.base is not None:
                found = operand
                break
        if found is None:
            return None
        if REGS[found.reg] == register:
            # Its base must still hold what it held then: not written since, nor by this load.
            return found if found.base not in written and found.base != register else None
        written.add(REGS[found.reg])
        end -= found.length
    return None
