"""
Culprits
========

The DWARF variable a fault went through, for a reason that names it (issue #17): the base
register of the faulting memory access (a null or wild pointer) or the divisor of the
faulting ``div``/``idiv`` on x86_64. A variable is named only where the DWARF proves it:
its location at the pc is that very register (DW_OP_regN), or it lives in memory and the
register was loaded from its slot by the instructions just before (-O0 code) and still holds
the slot's contents, or the divisor is the variable's own memory. Otherwise None, and the
reason keeps its generic wording.

On aarch64 an integer division by zero does not trap (ARM ARM C3.4.8: SDIV/UDIV return 0),
so only x86_64 divisions are read.
"""

from __future__ import annotations

import re

from coredump.dwarf.frame_values import variable_locations
from coredump.errors import MemoryFault
from coredump.triage.x86_operands import REGS, load_source, memory_operand

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Mapping, Optional, Sequence, Tuple

__all__ = ("pointer_culprit", "divisor_culprit")

MASK = (1 << 64) - 1
# What a reason prints of a name read from DWARF (hostile input): a C/C++ identifier.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_BEFORE = 32  # bytes of code read before the pc for the loads that fed the access


def pointer_culprit(target, frames: Sequence, regs: Mapping[str, int], pc: int,
                    address: int) -> Optional[Tuple[str, int]]:
    """(variable, offset) when the access at `pc` that faulted at `address` went through a
    base register that holds a named variable."""
    if target.arch is None or target.arch.name != "x86_64":
        return None
    code = _read(target.memory, pc, 15)
    operand = memory_operand(code) if code else None
    if operand is None or operand.base is None or operand.has_index or operand.base not in regs:
        return None
    value = regs[operand.base]
    if (value + operand.disp) & MASK != address:
        return None  # not the access that faulted (a string instruction, a second operand)
    name = _holder(target, frames, regs, pc, operand.base, value)
    return (name, operand.disp) if name is not None else None


def divisor_culprit(target, frames: Sequence, regs: Mapping[str, int], pc: int) -> Optional[str]:
    """The variable that is the divisor of the x86_64 ``div``/``idiv`` at `pc`."""
    if target.arch is None or target.arch.name != "x86_64":
        return None
    code = _read(target.memory, pc, 15)
    i = 1 if code[:1] == b"\x66" else 0
    rex = code[i] if len(code) > i and 0x40 <= code[i] <= 0x4F else 0
    i += 1 if rex else 0
    if len(code) < i + 2 or code[i] not in (0xF6, 0xF7) or (code[i + 1] >> 3) & 7 not in (6, 7):
        return None
    modrm = code[i + 1]
    if modrm >> 6 == 3:  # SDM Vol. 2 DIV/IDIV r/m: the divisor in a register
        reg = REGS[modrm & 7 | (8 if rex & 1 else 0)]
        return _holder(target, frames, regs, pc, reg, regs.get(reg), load=False)
    operand = memory_operand(code)
    if operand is None or operand.has_index:
        return None
    if operand.base is None:
        address = pc + operand.length + operand.disp  # RIP-relative: from the next instruction
    elif operand.base in regs:
        address = regs[operand.base] + operand.disp
    else:
        return None
    return _in_memory(target, frames, address & MASK)


def _holder(target, frames, regs, pc: int, register: str, value: Optional[int], load: bool = True
            ) -> Optional[str]:
    """The variable `register` holds at `pc`: one whose location is the register, else (with
    `load`) one whose memory the register was loaded from and still equals."""
    names = target.arch.dwarf_regs
    found = variable_locations(target, frames)
    for name, piece in found:
        if piece.kind == "register" and names.get(piece.value) == register:
            return _shown(name)
    before = _read(target.memory, pc - _BEFORE, _BEFORE) if load and value is not None else b""
    source = load_source(before, len(before), register) if len(before) == _BEFORE else None
    if source is None or source.base not in regs:
        return None
    slot = (regs[source.base] + source.disp) & MASK
    contents = _read(target.memory, slot, 8)
    width = 8 if len(contents) == 8 and int.from_bytes(contents, "little") == value else None
    return _in_memory(target, frames, slot, found) if width else None


def _in_memory(target, frames, address: int, found=None) -> Optional[str]:
    for name, piece in found if found is not None else variable_locations(target, frames):
        if piece.kind == "memory" and piece.value == address:
            return _shown(name)
    return None


def _shown(name: str) -> Optional[str]:
    return name if _NAME.fullmatch(name) else None


def _read(memory, address: int, size: int) -> bytes:
    try:
        return memory.read(address, size)
    except (MemoryFault, OverflowError, ValueError):
        return b""
