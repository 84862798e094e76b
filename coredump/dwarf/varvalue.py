"""
Variable values
===============

The value of a planned variable (``coredump.dwarf.variables``) in one frame: its location
evaluated with the frame's registers and the core's memory (``coredump.dwarf.expr``), its
pieces put together, and the bytes printed by type (``coredump.dwarf.values``) as gdb's
``bt`` and ``bt full`` print them.

A value that cannot be known is ``<optimized out>`` (no location at the pc, an empty
location, a register the frame does not know); a location that cannot be evaluated (an
unknown opcode, a stack underflow, a loop past the step limit) is ``<error>`` for that one
value; its own bytes unreadable, gdb's ``<error reading variable: ...>``; never a traceback.
"""

from __future__ import annotations

from coredump.dwarf.expr import ExpressionError, LocationContext, Piece, RegisterUnknown
from coredump.dwarf.simple_locations import evaluate_simple
from coredump.dwarf.types import TypeInfo
from coredump.dwarf.valprint import MAX_VALUE_BYTES, format_full
from coredump.dwarf.values import format_value
from coredump.errors import MemoryFault
from coredump.model import Variable

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable, List, Optional, Tuple

__all__ = ("OPTIMIZED_OUT", "read_planned", "read_pieces", "read_pieces_masked")

OPTIMIZED_OUT = "<optimized out>"


class Unavailable(Exception):
    """The value does not exist at this pc (gdb's ``<optimized out>``)."""


def read_planned(plan: tuple, make_context: Callable[[], LocationContext], symbolize=None,
                 full: bool = False) -> Variable:
    """The Variable a plan ``(name, type data, source, payload)`` describes, in this frame
    (`full`: a struct, union or array printed as ``bt full`` prints a local)."""
    name, type_data, source, payload = plan
    vtype = TypeInfo.from_data(type_data)
    try:
        if full and not vtype.is_scalar or full and vtype.kind == "reference":
            text, raw = _full_value(vtype, source, payload, make_context, symbolize), None
        else:
            text, raw = _value(vtype, source, payload, make_context, symbolize)
    except (Unavailable, RegisterUnknown):
        text, raw = OPTIMIZED_OUT, None
    except MemoryFault as exc:
        # The variable's own bytes unreadable: gdb's print_frame_arg says so for an argument,
        # print_variable_and_value (bt full) names the local.
        error = f"Cannot access memory at address {exc.address:#x}"
        text = f"<error reading variable {name} ({error})>" if full else f"<error reading variable: {error}>"
        raw = None
    except (ExpressionError, ValueError, IndexError, KeyError, OverflowError, NotImplementedError, TypeError):
        text, raw = "<error>", None
    return Variable(name, vtype.name, text, raw)


def _value(vtype: TypeInfo, source: str, payload, make_context, symbolize) -> Tuple[str, Optional[int]]:
    if source == "const":
        return format_value(vtype, payload, None, symbolize)
    if source == "aggregate":
        return "...", None
    ctx, pieces = _located(source, payload, make_context)
    data = read_pieces(pieces, vtype.size or 8, ctx)
    return format_value(vtype, data, ctx.memory, symbolize)


def _located(source: str, payload, make_context) -> Tuple[LocationContext, List[Piece]]:
    """The frame's context and the pieces of a ``loc`` plan's expression."""
    if source == "none":
        raise Unavailable()
    if source != "loc":
        raise ExpressionError("unreadable location")
    ctx = make_context()
    return ctx, evaluate_simple(payload, ctx)


def _full_value(vtype: TypeInfo, source: str, payload, make_context, symbolize) -> str:
    size = vtype.size or 0
    if size > MAX_VALUE_BYTES or source == "aggregate":
        return "..."
    if source == "const":
        return format_full(vtype, payload.ljust(size, b"\0"), None, None, None, symbolize)
    ctx, pieces = _located(source, payload, make_context)
    data, mask = read_pieces_masked(pieces, size, ctx)
    address = pieces[0].value if len(pieces) == 1 and pieces[0].kind == "memory" else None
    return format_full(vtype, data, mask, address, ctx.memory, symbolize)


def read_pieces_masked(pieces: List[Piece], size: int, ctx: LocationContext) -> Tuple[bytes, Optional[bytes]]:
    """The `size` bytes the pieces hold and, where some piece does not hold its bytes (an
    optimized-out piece, a register the frame does not know), a mask: 1 per byte it holds."""
    if any(p.bits is not None for p in pieces):
        return _read_bit_pieces(pieces, size, ctx)
    out, mask = bytearray(), bytearray()
    for piece in pieces:
        want = piece.size if piece.size is not None else size - len(out)
        if want <= 0 or want > MAX_VALUE_BYTES:
            raise ExpressionError(f"a piece of {want} bytes")
        try:
            out += read_pieces([piece], want, ctx)
            mask += b"\1" * want
        except Unavailable:
            out += bytes(want)
            mask += bytes(want)
    if len(out) < size:
        mask += bytes(size - len(out))
        out += bytes(size - len(out))
    return bytes(out[:size]), (None if all(mask[:size]) else bytes(mask[:size]))


def _read_bit_pieces(pieces: List[Piece], size: int, ctx: LocationContext) -> Tuple[bytes, Optional[bytes]]:
    """Pieces some of which are DW_OP_bit_piece (DWARF 5 §2.6.1.2): each piece's bits follow
    the previous piece's, the first at bit 0 of the object (little-endian)."""
    value = held = at = 0
    for piece in pieces:
        nbits, offset = piece.bits if piece.bits is not None else ((piece.size or size - at // 8) * 8, 0)
        if nbits <= 0 or at + nbits > size * 8:
            raise ExpressionError(f"a piece of {nbits} bits past the object")
        try:
            whole = read_pieces([Piece(piece.kind, piece.value, (offset + nbits + 7) // 8)],
                                (offset + nbits + 7) // 8, ctx)
            value |= ((int.from_bytes(whole, "little") >> offset) & ((1 << nbits) - 1)) << at
            held |= ((1 << nbits) - 1) << at
        except Unavailable:
            pass
        at += nbits
    mask = bytes(1 if (held >> 8 * i) & 0xFF == 0xFF else 0 for i in range(size))
    return value.to_bytes(size, "little"), (None if all(mask) else mask)


def read_pieces(pieces: List[Piece], size: int, ctx: LocationContext) -> bytes:
    """The `size` bytes the pieces of a location hold: memory read from the core, registers
    from the frame's known registers (little-endian, as x86_64 and aarch64 store them)."""
    out = bytearray()
    for piece in pieces:
        want = piece.size if piece.size is not None else size - len(out)
        if want <= 0 or want > MAX_VALUE_BYTES or piece.bits is not None:
            raise ExpressionError(f"a piece of {want} bytes")
        if piece.kind == "memory":
            out += ctx.memory.read(piece.value, want)
        elif piece.kind == "register":
            try:
                contents = ctx.get_register(piece.value)
            except KeyError:
                raise Unavailable() from None  # a register this frame does not know (or we do not read)
            out += (contents & ((1 << 64) - 1)).to_bytes(8, "little")[:want].ljust(want, b"\0")
        elif piece.kind == "value":
            out += piece.value.to_bytes(8, "little")[:want].ljust(want, b"\0")
        elif piece.kind == "implicit":
            out += piece.value[:want].ljust(want, b"\0")
        else:
            raise Unavailable()  # an optimized-out piece, or an implicit pointer
    if len(out) < size:
        raise Unavailable()
    return bytes(out[:size])
