"""
Variables
=========

The parameters and local variables of one source-level frame (a DW_TAG_subprogram or
DW_TAG_inlined_subroutine, DWARF 5 §3.3, §3.9, §4.1) at a pc, each read through its location
(``coredump.dwarf.locations``) and printed by its type (``coredump.dwarf.values``) as gdb's
``bt`` and ``bt full`` print them.

A value that cannot be known is ``<optimized out>`` (no location at the pc, an empty
location, a register the frame does not know); a location that cannot be evaluated is
``<error>``; never a traceback.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

from coredump.dwarf.expr import ExpressionError, LocationContext, Piece, RegisterUnknown, evaluate_location
from coredump.dwarf.locations import location_at
from coredump.dwarf.ranges import die_ranges
from coredump.dwarf.supplementary import ALT_REFERENCE_FORMS, string_value
from coredump.dwarf.types import TypeInfo, read_type
from coredump.dwarf.values import format_value
from coredump.errors import MemoryFault
from coredump.model import Variable

__all__ = ("OPTIMIZED_OUT", "frame_parameters", "frame_locals", "read_variable", "MAX_LOCALS")

OPTIMIZED_OUT = "<optimized out>"
# Locals listed per frame (gdb's bt full has no cap; a generated function may have thousands).
MAX_LOCALS = 64
_BLOCK_TAGS = ("DW_TAG_lexical_block", "DW_TAG_try_block", "DW_TAG_catch_block")


class Unavailable(Exception):
    """The value does not exist at this pc (gdb's ``<optimized out>``)."""


def frame_parameters(scope, pc: int, make_context: Callable[[], LocationContext], symbolize=None
                     ) -> Tuple[Variable, ...]:
    """The DW_TAG_formal_parameter children of `scope`, in order, read at image address `pc`."""
    out = []
    for child in scope.iter_children():
        if child.tag == "DW_TAG_formal_parameter":
            out.append(read_variable(child, pc, make_context, symbolize))
    return tuple(out)


def frame_locals(scope, pc: int, make_context: Callable[[], LocationContext], symbolize=None
                 ) -> Tuple[Variable, ...]:
    """The DW_TAG_variable DIEs of `scope` and of its lexical blocks that hold `pc`, the
    innermost block first (gdb's ``bt full`` order); inlined calls are frames of their own."""
    blocks = _blocks_at(scope, pc)
    out: List[Variable] = []
    for block in reversed(blocks):
        for child in block.iter_children():
            if child.tag == "DW_TAG_variable" and len(out) < MAX_LOCALS:
                out.append(read_variable(child, pc, make_context, symbolize))
    return tuple(out)


def _blocks_at(scope, pc: int) -> list:
    """`scope` and the nested lexical blocks holding `pc`, outermost first."""
    chain, die = [scope], scope
    for _ in range(64):
        inner = None
        for child in die.iter_children():
            if child.tag in _BLOCK_TAGS and any(lo <= pc < hi for lo, hi in _ranges(child)):
                inner = child
                break
        if inner is None:
            break
        chain.append(inner)
        die = inner
    return chain


def _ranges(die):
    try:
        return die_ranges(die.dwarfinfo, die)
    except Exception:  # noqa: BLE001 - a block whose ranges cannot be read holds nothing
        return []


def _origin_attr(die, name: str):
    """The attribute on `die` or on the DIE its DW_AT_abstract_origin names (an inlined or
    out-of-line instance takes its name and type from the abstract one, DWARF 5 §3.3.8.2)."""
    cur = die
    for _ in range(4):
        attr = cur.attributes.get(name)
        if attr is not None:
            return attr, cur
        ref = cur.attributes.get("DW_AT_abstract_origin")
        if ref is None or (ref.form in ALT_REFERENCE_FORMS and not cur.dwarfinfo.supplementary_dwarfinfo):
            return None, cur
        cur = cur.get_DIE_from_attribute("DW_AT_abstract_origin")
    return None, cur


def read_variable(die, pc: int, make_context: Callable[[], LocationContext], symbolize=None) -> Variable:
    """One parameter or variable: its name, its type's name and its value as gdb prints it."""
    try:
        name_attr, _ = _origin_attr(die, "DW_AT_name")
        name = string_value(name_attr) if name_attr is not None else None
        type_attr, typed = _origin_attr(die, "DW_AT_type")
        vtype = read_type(typed) if type_attr is not None else read_type(die)
    except Exception:  # noqa: BLE001 - a broken reference: the variable is shown as unreadable
        return Variable("?", "<unknown type>", "<error>")
    name = name or "?"
    try:
        text, raw = _value(die, vtype, pc, make_context, symbolize)
    except Unavailable:
        text, raw = OPTIMIZED_OUT, None
    except MemoryFault as exc:
        # gdb/valprint.c val_print_optimized_out's sibling: the variable's own bytes unreadable.
        text, raw = f"<error reading variable: Cannot access memory at address {exc.address:#x}>", None
    except RegisterUnknown:
        text, raw = OPTIMIZED_OUT, None
    except (ExpressionError, ValueError, IndexError, KeyError, OverflowError, NotImplementedError):
        text, raw = "<error>", None
    return Variable(name, vtype.name, text, raw)


def _value(die, vtype: TypeInfo, pc: int, make_context, symbolize) -> Tuple[str, Optional[int]]:
    const = die.attributes.get("DW_AT_const_value")
    if const is not None:
        data = _const_bytes(const, vtype)
        if data is None:
            return "...", None
        return format_value(vtype, data, None, symbolize)
    if not vtype.is_scalar:
        return "...", None  # gdb's bt prints a non-scalar as ... without reading it
    expr = location_at(die, pc)
    if expr is None:
        raise Unavailable()
    ctx = make_context()
    pieces = evaluate_location(expr, ctx)
    data = read_pieces(pieces, vtype.size or 8, ctx)
    return format_value(vtype, data, ctx.memory, symbolize)


def _const_bytes(const, vtype: TypeInfo) -> Optional[bytes]:
    """DW_AT_const_value as the value's bytes (DWARF 5 §4.1 item 10): a constant or a block."""
    value = const.value
    size = vtype.size or 8
    if isinstance(value, int):
        return (value & ((1 << 8 * size) - 1)).to_bytes(size, "little")
    if isinstance(value, (list, bytes)):
        return bytes(value)
    return None


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
