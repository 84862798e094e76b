"""
Value printing in full
======================

A value printed as gdb's ``bt full`` prints a local (gdb/valprint.c value_print_array_elements,
generic_printstr; c-valprint.c c_value_print_array; cp-valprint.c cp_print_value_fields): a
struct as ``{name = 0x4020 "x", size = 3}`` with its base classes first (``<Base> = {...}``)
and ``<No data fields>`` where it has none, arrays as ``{1, 2, 3}`` with runs of more than
``REPEAT_THRESHOLD`` equal elements as ``0 <repeats 16 times>``, at most ``PRINT_ELEMENTS``
elements then ``...``, char arrays as strings, and what the location does not hold (a piece
optimized out) as ``<optimized out>`` element by element; scalars as ``coredump.dwarf.values``
prints them.

The bytes and the DWARF are hostile: past ``MAX_DEPTH`` nested aggregates a value is ``{...}``
(gdb's ``print max-depth``), and a value's text stops at ``MAX_VALUE_TEXT`` characters.
"""

from __future__ import annotations

from coredump.dwarf.cstrings import PRINT_ELEMENTS, REPEAT_THRESHOLD, format_char_array, memory_error
from coredump.dwarf.types import DW_ATE_signed, DW_ATE_signed_char, TypeInfo
from coredump.dwarf.values import format_value
from coredump.errors import MemoryFault

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Optional

__all__ = ("format_full", "MAX_DEPTH", "MAX_VALUE_TEXT", "MAX_VALUE_BYTES", "OPTIMIZED_OUT")

# gdb's `set print max-depth` default.
MAX_DEPTH = 20
# Characters of one value's text (gdb has no cap; a 200 x 200 array of structs would be megabytes).
MAX_VALUE_TEXT = 16384
# Bytes of one value read to print it in full; a larger one is `...`.
MAX_VALUE_BYTES = 1 << 20
OPTIMIZED_OUT = "<optimized out>"


class _Cut(Exception):
    """The value's text reached MAX_VALUE_TEXT."""


class _Printer:
    def __init__(self, memory, symbolize):
        self.memory, self.symbolize = memory, symbolize
        self.left = MAX_VALUE_TEXT

    def spend(self, text: str) -> str:
        self.left -= len(text)
        if self.left < 0:
            raise _Cut()
        return text


def format_full(t: TypeInfo, data: bytes, mask: Optional[bytes], address: Optional[int], memory=None,
                symbolize=None) -> str:
    """`data` (the value's bytes) as gdb's ``bt full`` prints it; `mask`: per byte, 1 where
    the location holds it (None: all of it); `address`: where the value lies in memory."""
    if mask is not None and not any(mask):
        return OPTIMIZED_OUT  # gdb's value_check_printable: entirely optimized out
    printer = _Printer(memory, symbolize)
    try:
        return _value(printer, t, data, mask, address, 0)
    except _Cut:
        return "..."


def _value(p: _Printer, t: TypeInfo, data: bytes, mask, address, depth: int) -> str:
    if t.kind == "struct":
        return _struct(p, t, data, mask, address, depth)
    if t.kind == "array":
        return _array(p, t, data, mask, address, depth)
    if t.kind == "reference" and t.target is not None and not t.target.is_scalar:
        return _reference(p, t, data, mask, depth)
    if mask is not None and not all(mask[:t.size or len(data)]):
        return p.spend(OPTIMIZED_OUT)
    return p.spend(format_value(t, data, p.memory, p.symbolize)[0])


def _struct(p: _Printer, t: TypeInfo, data: bytes, mask, address, depth: int) -> str:
    if t.members is None or depth >= MAX_DEPTH:
        return p.spend("{...}")
    parts, fields = [], 0
    for name, offset, mtype, bit_offset, bit_size, base in t.members:
        head = f"{name} = " if name else ""
        if bit_size is not None:
            parts.append(head + _bit_field(p, mtype, data, mask, bit_offset, bit_size))
        else:
            size = mtype.size if mtype.size is not None else 0
            sub_mask = mask[offset:offset + size] if mask is not None else None
            at = address + offset if address is not None else None
            parts.append(head + _value(p, mtype, data[offset:offset + size], sub_mask, at, depth + 1))
        fields += not base
    if not fields:
        parts.append("<No data fields>")  # cp_print_value_fields
    return "{" + ", ".join(parts) + "}"


def _bit_field(p: _Printer, t: TypeInfo, data: bytes, mask, bit_offset: int, bit_size: int) -> str:
    """A bit field's bits, bit 0 the least significant of the first byte (System V psABI
    §3.1.2 "Bit-Fields": allocated from right to left on a little-endian machine)."""
    first, last = bit_offset // 8, (bit_offset + bit_size + 7) // 8
    if bit_size <= 0 or bit_size > 64 or last > len(data):
        return p.spend("<error>")
    if mask is not None and not all(mask[first:last]):
        return p.spend(OPTIMIZED_OUT)
    bits = (int.from_bytes(data[first:last], "little") >> (bit_offset % 8)) & ((1 << bit_size) - 1)
    signed = t.encoding in (DW_ATE_signed, DW_ATE_signed_char)
    if signed and bits >> (bit_size - 1):
        bits -= 1 << bit_size
    size = t.size or 8
    raw = (bits & ((1 << 8 * size) - 1)).to_bytes(size, "little")
    return p.spend(format_value(t, raw, p.memory, p.symbolize)[0])


def _array(p: _Printer, t: TypeInfo, data: bytes, mask, address, depth: int) -> str:
    elem, count = t.target, t.count
    if elem is None or count is None or not count or not elem.size:
        # c_value_print_array: an array of unknown length is printed as a pointer to its start.
        return p.spend(f"{address:#x}" if address is not None else "...")
    if elem.is_char and (mask is None or all(mask[:count])):
        return p.spend(format_char_array(data[:count]))
    if depth >= MAX_DEPTH:
        return p.spend("{...}")
    size, parts, printed, i = elem.size, [], 0, 0
    while i < count and printed < PRINT_ELEMENTS:
        end = i + 1
        while end < count and _element(data, mask, end, size) == _element(data, mask, i, size):
            end += 1
        sub_mask = mask[i * size:(i + 1) * size] if mask is not None else None
        at = address + i * size if address is not None else None
        text = _value(p, elem, data[i * size:(i + 1) * size], sub_mask, at, depth + 1)
        if end - i > REPEAT_THRESHOLD:
            parts.append(p.spend(f"{text} <repeats {end - i} times>"))
            printed += REPEAT_THRESHOLD
            i = end
        else:
            parts.append(text)
            printed += 1
            i += 1
    return "{" + ", ".join(parts) + ("..." if i < count else "") + "}"


def _element(data: bytes, mask, i: int, size: int):
    return data[i * size:(i + 1) * size], (mask[i * size:(i + 1) * size] if mask is not None else None)


def _reference(p: _Printer, t: TypeInfo, data: bytes, mask, depth: int) -> str:
    """gdb prints a reference as ``@0xADDR: `` and the value it refers to."""
    if len(data) < 8 or (mask is not None and not all(mask[:8])):
        return p.spend(OPTIMIZED_OUT)
    address = int.from_bytes(data[:8], "little")
    target = t.target
    size = target.size or 0
    if size > MAX_VALUE_BYTES:
        return p.spend(f"@{address:#x}: ...")
    try:
        value = p.memory.read(address, size) if size else b""
    except (MemoryFault, OverflowError, AttributeError):
        return p.spend(f"@{address:#x}: {memory_error(address)}")
    return p.spend(f"@{address:#x}: ") + _value(p, target, value, None, address, depth + 1)
