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

from typing import Callable, List, Optional, Tuple

from coredump.dwarf.expr import ExpressionError, LocationContext, Piece, RegisterUnknown, evaluate_location
from coredump.dwarf.types import TypeInfo
from coredump.dwarf.values import format_value
from coredump.errors import MemoryFault
from coredump.model import Variable

__all__ = ("OPTIMIZED_OUT", "read_planned", "read_pieces")

OPTIMIZED_OUT = "<optimized out>"


class Unavailable(Exception):
    """The value does not exist at this pc (gdb's ``<optimized out>``)."""


def read_planned(plan: tuple, make_context: Callable[[], LocationContext], symbolize=None) -> Variable:
    """The Variable a plan ``(name, type data, source, payload)`` describes, in this frame."""
    name, type_data, source, payload = plan
    vtype = TypeInfo.from_data(type_data)
    try:
        text, raw = _value(vtype, source, payload, make_context, symbolize)
    except (Unavailable, RegisterUnknown):
        text, raw = OPTIMIZED_OUT, None
    except MemoryFault as exc:
        # gdb/valprint.c val_print_optimized_out's sibling: the variable's own bytes unreadable.
        text, raw = f"<error reading variable: Cannot access memory at address {exc.address:#x}>", None
    except (ExpressionError, ValueError, IndexError, KeyError, OverflowError, NotImplementedError, TypeError):
        text, raw = "<error>", None
    return Variable(name, vtype.name, text, raw)


def _value(vtype: TypeInfo, source: str, payload, make_context, symbolize) -> Tuple[str, Optional[int]]:
    if source == "const":
        return format_value(vtype, payload, None, symbolize)
    if source == "aggregate":
        return "...", None
    if source == "none":
        raise Unavailable()
    if source != "loc":
        raise ExpressionError("unreadable location")
    ctx = make_context()
    pieces = evaluate_location(payload, ctx)
    data = read_pieces(pieces, vtype.size or 8, ctx)
    return format_value(vtype, data, ctx.memory, symbolize)


def read_pieces(pieces: List[Piece], size: int, ctx: LocationContext) -> bytes:
    """The `size` bytes the pieces of a location hold: memory read from the core, registers
    from the frame's known registers (little-endian, as x86_64 and aarch64 store them)."""
    out = bytearray()
    for piece in pieces:
        want = piece.size if piece.size is not None else size - len(out)
        if want <= 0 or want > 4096:
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
