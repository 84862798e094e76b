"""
DWARF expressions
=================

A bounded evaluator for the DWARF stack-machine operations that call frame information
uses (DWARF 5 §2.5): glibc's PLT entries, signal trampolines and hand-written CFI.
"""

from __future__ import annotations

import struct

from coredump.errors import CoreDumpError
from coredump.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable, List, Optional, Sequence, Tuple, Union

__all__ = ("ExpressionError", "RegisterUnknown", "Piece", "LocationContext", "evaluate", "evaluate_location",
           "read_uleb128", "read_sleb128")

MASK = (1 << 64) - 1
SIGN = 1 << 63
# A CFI expression is a few dozen operations; a hostile loop (DW_OP_skip back) stops here.
MAX_STEPS = 10_000
MAX_STACK = 1_000

# DWARF 5 §7.7.1, Table 7.9 "DWARF operation encodings".
DW_OP_addr = 0x03
DW_OP_deref = 0x06
DW_OP_const1u, DW_OP_const1s, DW_OP_const2u, DW_OP_const2s = 0x08, 0x09, 0x0A, 0x0B
DW_OP_const4u, DW_OP_const4s, DW_OP_const8u, DW_OP_const8s = 0x0C, 0x0D, 0x0E, 0x0F
DW_OP_constu, DW_OP_consts = 0x10, 0x11
DW_OP_dup, DW_OP_drop, DW_OP_over, DW_OP_pick, DW_OP_swap, DW_OP_rot = 0x12, 0x13, 0x14, 0x15, 0x16, 0x17
DW_OP_abs, DW_OP_and, DW_OP_div, DW_OP_minus, DW_OP_mod, DW_OP_mul = 0x19, 0x1A, 0x1B, 0x1C, 0x1D, 0x1E
DW_OP_neg, DW_OP_not, DW_OP_or, DW_OP_plus, DW_OP_plus_uconst = 0x1F, 0x20, 0x21, 0x22, 0x23
DW_OP_shl, DW_OP_shr, DW_OP_shra, DW_OP_xor, DW_OP_bra = 0x24, 0x25, 0x26, 0x27, 0x28
DW_OP_eq, DW_OP_ge, DW_OP_gt, DW_OP_le, DW_OP_lt, DW_OP_ne = 0x29, 0x2A, 0x2B, 0x2C, 0x2D, 0x2E
DW_OP_skip = 0x2F
DW_OP_lit0, DW_OP_lit31 = 0x30, 0x4F
DW_OP_reg0, DW_OP_reg31 = 0x50, 0x6F
DW_OP_breg0, DW_OP_breg31 = 0x70, 0x8F
DW_OP_regx, DW_OP_bregx = 0x90, 0x92
DW_OP_deref_size, DW_OP_nop, DW_OP_call_frame_cfa, DW_OP_stack_value = 0x94, 0x96, 0x9C, 0x9F
DW_OP_fbreg, DW_OP_piece, DW_OP_bit_piece, DW_OP_implicit_value = 0x91, 0x93, 0x9D, 0x9E
DW_OP_implicit_pointer, DW_OP_entry_value = 0xA0, 0xA3
DW_OP_GNU_implicit_pointer, DW_OP_GNU_entry_value = 0xF2, 0xF3  # the GNU forms DWARF 5 adopted

_FIXED = {  # operand of DW_OP_constNx: struct format
    DW_OP_const1u: "<B", DW_OP_const1s: "<b", DW_OP_const2u: "<H", DW_OP_const2s: "<h",
    DW_OP_const4u: "<I", DW_OP_const4s: "<i", DW_OP_const8u: "<Q", DW_OP_const8s: "<q",
}


class ExpressionError(CoreDumpError):
    """A DWARF expression that is malformed, unsupported, or needs an unknown register."""


class RegisterUnknown(ExpressionError):
    """The expression needs a register whose value in this frame is not known (a
    caller-saved register of an outer frame): the value is unavailable, not malformed."""


def read_uleb128(data, pos: int):
    """(value, next position) of the ULEB128 at `pos` (DWARF 5 §7.6)."""
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ExpressionError("truncated LEB128")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def read_sleb128(data, pos: int):
    """(value, next position) of the SLEB128 at `pos` (DWARF 5 §7.6)."""
    result, end = read_uleb128(data, pos)
    bits = 7 * (end - pos)
    if result & (1 << (bits - 1)):
        result -= 1 << bits
    return result, end


def _signed(v: int) -> int:
    return v - (1 << 64) if v & SIGN else v


_BINARY: dict = {
    DW_OP_and: lambda a, b: a & b,
    DW_OP_or: lambda a, b: a | b,
    DW_OP_xor: lambda a, b: a ^ b,
    DW_OP_plus: lambda a, b: a + b,
    DW_OP_minus: lambda a, b: a - b,
    DW_OP_mul: lambda a, b: a * b,
    DW_OP_shl: lambda a, b: a << b if b < 64 else 0,
    DW_OP_shr: lambda a, b: a >> b if b < 64 else 0,
    DW_OP_shra: lambda a, b: _signed(a) >> min(b, 63),
    # DWARF 5 §2.5.1.4: the relational operators compare as signed values.
    DW_OP_eq: lambda a, b: int(a == b),
    DW_OP_ne: lambda a, b: int(a != b),
    DW_OP_ge: lambda a, b: int(_signed(a) >= _signed(b)),
    DW_OP_gt: lambda a, b: int(_signed(a) > _signed(b)),
    DW_OP_le: lambda a, b: int(_signed(a) <= _signed(b)),
    DW_OP_lt: lambda a, b: int(_signed(a) < _signed(b)),
}
_UNARY: dict = {
    DW_OP_neg: lambda a: -_signed(a),
    DW_OP_not: lambda a: ~a,
    DW_OP_abs: lambda a: abs(_signed(a)),
}


def _divide(op: int, a: int, b: int) -> int:
    if b == 0:
        raise ExpressionError("division by zero")
    if op == DW_OP_div:  # signed, truncating toward zero as in C
        sa, sb = _signed(a), _signed(b)
        q = abs(sa) // abs(sb)
        return q if (sa < 0) == (sb < 0) else -q
    return a % b  # DW_OP_mod is unsigned


def evaluate(expr, memory, get_register: Callable[[int], int], initial: Sequence[int] = (),
             cfa: Optional[int] = None, max_steps: int = MAX_STEPS) -> int:
    """The value on top of the stack after running `expr`.

    `memory` has ``read(address, size)``; `get_register(dwarf_regno)` raises KeyError for an
    unknown register; `initial` is pushed first (CFI pushes the CFA, DWARF 5 §6.4.2.3).

    >>> evaluate(bytes([0x31, 0x32, 0x22]), None, {}.__getitem__)  # lit1 lit2 plus
    3
    """
    stack: List[int] = [v & MASK for v in initial]
    pos, steps, end = 0, 0, len(expr)
    while pos < end:
        steps = _count_step(steps, stack, max_steps)
        op = expr[pos]
        pos += 1
        try:
            pos = _step(op, expr, pos, stack, memory, get_register, cfa)
        except _OPERATION_ERRORS as exc:
            raise _operation_error(exc, op) from None
        if pos < 0 or pos > end:
            raise ExpressionError("branch outside the expression")
    if not stack:
        raise ExpressionError("expression left an empty stack")
    return stack[-1] & MASK


def _count_step(steps: int, stack: List[int], max_steps: int) -> int:
    """One more operation; a loop (DW_OP_skip back) or a stack grown past MAX_STACK stops."""
    if steps + 1 > max_steps or len(stack) > MAX_STACK:
        raise ExpressionError("expression exceeds its step limit")
    return steps + 1


# The Python errors one operation may raise, and what each means for the expression.
_OPERATION_ERRORS = (IndexError, KeyError, struct.error)


def _operation_error(exc: Exception, op: int) -> Exception:
    """One operation's Python error as the expression's: an empty stack, a truncated
    operand, a register this frame does not know. (A try block, not a context manager: a
    with statement per operation cost a tenth of reading a value.)"""
    if isinstance(exc, IndexError):
        return ExpressionError(f"stack underflow or truncated operand at DW_OP {op:#x}")
    if isinstance(exc, KeyError):
        return RegisterUnknown(f"register {exc.args[0]} unknown")
    return ExpressionError(f"truncated operand of DW_OP {op:#x}")


def _step(op, expr, pos, stack, memory, get_register, cfa) -> int:
    """Run one operation; returns the position of the next one. Literals, constants and
    registers here (DWARF 5 §2.5.1.1, §2.5.1.2), the rest in ``_compute``."""
    if DW_OP_lit0 <= op <= DW_OP_lit31:
        stack.append(op - DW_OP_lit0)
    elif DW_OP_breg0 <= op <= DW_OP_breg31:
        off, pos = read_sleb128(expr, pos)
        stack.append((get_register(op - DW_OP_breg0) + off) & MASK)
    elif DW_OP_reg0 <= op <= DW_OP_reg31:
        # A register location: the value lives in the register, so its contents are the result.
        stack.append(get_register(op - DW_OP_reg0) & MASK)
    elif op in _FIXED:
        fmt = _FIXED[op]
        stack.append(struct.unpack_from(fmt, expr, pos)[0] & MASK)
        pos += struct.calcsize(fmt)
    elif op == DW_OP_addr:
        stack.append(struct.unpack_from("<Q", expr, pos)[0])
        pos += 8
    elif op in (DW_OP_constu, DW_OP_plus_uconst, DW_OP_regx):
        value, pos = read_uleb128(expr, pos)
        if op == DW_OP_constu:
            stack.append(value & MASK)
        elif op == DW_OP_plus_uconst:
            stack.append((stack.pop() + value) & MASK)
        else:
            stack.append(get_register(value) & MASK)
    elif op == DW_OP_consts:
        value, pos = read_sleb128(expr, pos)
        stack.append(value & MASK)
    elif op == DW_OP_bregx:
        regno, pos = read_uleb128(expr, pos)
        off, pos = read_sleb128(expr, pos)
        stack.append((get_register(regno) + off) & MASK)
    else:
        pos = _compute(op, expr, pos, stack, memory, cfa)
    return pos


def _compute(op, expr, pos, stack, memory, cfa) -> int:
    """Arithmetic, memory and control-flow operations (DWARF 5 §2.5.1.4, §2.5.1.5)."""
    if op in _BINARY:
        b = stack.pop()
        a = stack.pop()
        stack.append(_BINARY[op](a, b) & MASK)
    elif op in _UNARY:
        stack.append(_UNARY[op](stack.pop()) & MASK)
    elif op in (DW_OP_div, DW_OP_mod):
        b = stack.pop()
        stack.append(_divide(op, stack.pop(), b) & MASK)
    elif op in (DW_OP_deref, DW_OP_deref_size):
        size = 8
        if op == DW_OP_deref_size:
            size = expr[pos]
            pos += 1
            if not 1 <= size <= 8:
                raise ExpressionError(f"DW_OP_deref_size of {size} bytes")
        stack.append(int.from_bytes(memory.read(stack.pop(), size), "little"))
    elif op in (DW_OP_skip, DW_OP_bra):
        off = struct.unpack_from("<h", expr, pos)[0]
        pos += 2
        if op == DW_OP_skip or stack.pop() != 0:
            pos += off
    else:
        pos = _stack_op(op, expr, pos, stack, cfa)
    return pos


def _stack_op(op, expr, pos, stack, cfa) -> int:
    if op == DW_OP_dup:
        stack.append(stack[-1])
    elif op == DW_OP_drop:
        stack.pop()
    elif op == DW_OP_swap:
        stack[-1], stack[-2] = stack[-2], stack[-1]
    elif op == DW_OP_over:
        stack.append(stack[-2])
    elif op == DW_OP_pick:
        index = expr[pos]
        pos += 1
        stack.append(stack[-1 - index])
    elif op == DW_OP_rot:
        # DWARF 5 §2.5.1.3: the top entry becomes the third, the second and third move up.
        stack[-3], stack[-2], stack[-1] = stack[-1], stack[-3], stack[-2]
    elif op == DW_OP_call_frame_cfa:
        if cfa is None:
            raise ExpressionError("DW_OP_call_frame_cfa outside a frame")
        stack.append(cfa & MASK)
    elif op in (DW_OP_nop, DW_OP_stack_value):
        # DW_OP_stack_value marks the top as the value itself; CFI callers know which they want.
        pass
    else:
        raise ExpressionError(f"unsupported DWARF operation {op:#x}")
    return pos


# ---- location descriptions (DWARF 5 §2.6) ----------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """One piece of an object's location (DWARF 5 §2.6.1.2): ``memory`` (value: the address),
    ``register`` (value: the DWARF register number), ``value`` (DW_OP_stack_value: the value
    itself), ``implicit`` (DW_OP_implicit_value: its bytes), ``optimized`` (an empty
    description: the piece does not exist) or ``implicit_pointer`` (DW_OP_implicit_pointer:
    gdb's ``<synthetic pointer>``). ``size`` in bytes; None: the whole object. A
    DW_OP_bit_piece that is not whole bytes (§2.6.1.2) has ``bits`` (its size, the offset of
    its first bit in the location) and no size."""

    kind: str
    value: Union[int, bytes, None] = None
    size: Optional[int] = None
    bits: Optional[Tuple[int, int]] = None


@dataclass(frozen=True)
class LocationContext:
    """What a location expression may ask of its frame: memory (``read(address, size)``),
    registers by DWARF number (KeyError: unknown), the frame base (DW_AT_frame_base, for
    DW_OP_fbreg), the CFA and the value a DW_OP_entry_value block had at the function's entry
    (from the caller's DW_TAG_call_site_parameter; KeyError: unknown)."""

    memory: object
    get_register: Callable[[int], int]
    frame_base: Optional[Callable[[], int]] = None
    cfa: Optional[int] = None
    entry_value: Optional[Callable[[bytes], int]] = None
    bias: int = 0  # the module's load bias: DW_OP_addr names an address of the file (§2.5.1.1)


def evaluate_location(expr, ctx: LocationContext, max_steps: int = MAX_STEPS) -> List[Piece]:
    """The pieces of the location `expr` describes: one piece of size None for a simple
    location. Raises ``RegisterUnknown`` where a register (or entry value) is unknown, and
    ``ExpressionError`` for a malformed expression."""
    if not len(expr):
        return [Piece("optimized")]  # DWARF 5 §2.6.1.1.1: an empty description
    stack: List[int] = []
    pieces: List[Piece] = []
    pending: Optional[Piece] = None
    pos, steps, end = 0, 0, len(expr)
    while pos < end:
        steps = _count_step(steps, stack, max_steps)
        op = expr[pos]
        try:
            if op in (DW_OP_piece, DW_OP_bit_piece):
                size, pos = read_uleb128(expr, pos + 1)
                bits = None
                if op == DW_OP_bit_piece:
                    offset, pos = read_uleb128(expr, pos)
                    if size % 8 or offset:
                        if not 0 < size <= 64 or offset > 64:
                            raise ExpressionError("DW_OP_bit_piece wider than a register")
                        bits = (size, offset)
                    size //= 8
                piece = _piece(pending, stack, size)
                pieces.append(Piece(piece.kind, piece.value, None, bits) if bits else piece)
                pending = None
                continue
            pending, pos = _location_op(op, expr, pos, stack, ctx, pending)
        except _OPERATION_ERRORS as exc:
            raise _operation_error(exc, op) from None
        if pos < 0 or pos > end:
            raise ExpressionError("branch outside the expression")
    if pieces:
        return pieces
    if pending is None and not stack:
        raise ExpressionError("expression left an empty stack")
    return [_piece(pending, stack, None)]


def _piece(pending: Optional[Piece], stack: List[int], size: Optional[int]) -> Piece:
    """The piece a DW_OP_piece (or the end) closes: the register or value named before it,
    else the memory address on top of the stack, else nothing (DWARF 5 §2.6.1.2)."""
    if pending is not None:
        if pending.kind == "value" and stack:
            stack.pop()  # DW_OP_stack_value's value is this piece's alone (gdb pops it at DW_OP_piece)
        return Piece(pending.kind, pending.value, size)
    if not stack:
        return Piece("optimized", None, size)
    return Piece("memory", stack.pop() & MASK, size)


def _location_op(op, expr, pos, stack, ctx: LocationContext, pending):
    """One operation of a location description: (the register or value it names, next position)."""
    if DW_OP_reg0 <= op <= DW_OP_reg31:
        return Piece("register", op - DW_OP_reg0), pos + 1
    if op == DW_OP_regx:
        regno, pos = read_uleb128(expr, pos + 1)
        return Piece("register", regno), pos
    if op == DW_OP_stack_value:
        return Piece("value", stack[-1] & MASK), pos + 1
    if op == DW_OP_implicit_value:
        size, pos = read_uleb128(expr, pos + 1)
        if pos + size > len(expr):
            raise ExpressionError("truncated DW_OP_implicit_value")
        return Piece("implicit", bytes(expr[pos:pos + size])), pos + size
    if op in (DW_OP_implicit_pointer, DW_OP_GNU_implicit_pointer):
        # DWARF 5 §2.6.1.1.4: a 4-byte DIE reference (offset size 4) and an SLEB offset.
        _, pos = read_sleb128(expr, pos + 5)
        return Piece("implicit_pointer"), pos
    if op == DW_OP_addr:
        stack.append((struct.unpack_from("<Q", expr, pos + 1)[0] + ctx.bias) & MASK)
        return pending, pos + 9
    if op == DW_OP_fbreg:
        if ctx.frame_base is None:
            raise ExpressionError("DW_OP_fbreg without DW_AT_frame_base")
        off, pos = read_sleb128(expr, pos + 1)
        stack.append((ctx.frame_base() + off) & MASK)
        return pending, pos
    if op in (DW_OP_entry_value, DW_OP_GNU_entry_value):
        size, pos = read_uleb128(expr, pos + 1)
        block = bytes(expr[pos:pos + size])
        if ctx.entry_value is None or len(block) != size:
            raise KeyError("entry value")
        stack.append(ctx.entry_value(block) & MASK)
        return pending, pos + size
    return pending, _step(op, expr, pos + 1, stack, ctx.memory, ctx.get_register, ctx.cfa)
