"""
Values
======

A value's bytes printed as gdb's ``bt`` prints them, by its DWARF type
(gdb/valprint.c generic_val_print_*, c-valprint.c): integers in decimal, ``char`` as
``65 'A'``, ``bool`` as true/false, enums by enumerator, floats to 9 or 17 significant
digits, pointers in hex (``<symbol>`` where one holds the address, the string a ``char *``
points to), and what is not a scalar as ``...`` (``set print frame-arguments scalars``).

Strings come from a crashed program's memory: each is bounded (gdb's ``print elements``,
200) and every byte that is not printable is escaped as gdb escapes it, so the text is safe
to print anywhere; HTML escaping is the report's.
"""

from __future__ import annotations

import struct

from coredump.dwarf.cstrings import PRINT_ELEMENTS, format_char, format_cstring, memory_error
from coredump.dwarf.types import DW_ATE_UTF, DW_ATE_boolean, DW_ATE_float, DW_ATE_signed, DW_ATE_signed_char, TypeInfo
from coredump.errors import MemoryFault

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable, Optional, Tuple
    Symbolizer = Callable[[int], Optional[str]]

__all__ = ("format_value", "format_string")


def format_value(t: TypeInfo, data: bytes, memory=None, symbolize: Optional[Symbolizer] = None
                 ) -> Tuple[str, Optional[int]]:
    """(text as gdb prints it, the raw integer where the value is a scalar)."""
    if t.kind == "reference":
        return _reference(t, data, memory, symbolize)
    if not t.is_scalar:
        return "...", None
    size = t.size or len(data)
    if len(data) < size:
        return "<error>", None
    data = data[:size]
    if t.kind == "pointer":
        value = int.from_bytes(data, "little")
        return _pointer(t, value, memory, symbolize), value
    if t.kind == "enum":
        value = int.from_bytes(data, "little", signed=True)
        name = next((n for v, n in t.enumerators if v == value or v == value & ((1 << 8 * size) - 1)), None)
        return (name if name is not None else str(value)), value
    return _base(t, data)


def _base(t: TypeInfo, data: bytes) -> Tuple[str, Optional[int]]:
    enc = t.encoding
    if enc == DW_ATE_float:
        fmt = {4: ("<f", 9), 8: ("<d", 17)}.get(len(data))
        if fmt is None:
            return "<unsupported float>", None
        value = struct.unpack(fmt[0], data)[0]
        return _float(value, fmt[1]), None
    signed = enc in (DW_ATE_signed, DW_ATE_signed_char)
    value = int.from_bytes(data, "little", signed=signed)
    if enc == DW_ATE_boolean:
        return ("true" if value == 1 else "false" if value == 0 else str(value)), value
    if t.is_char or (enc == DW_ATE_UTF and len(data) == 1):
        return f"{value} {format_char(value & 0xFF)}", value
    return str(value), value


def _float(value: float, digits: int) -> str:
    """gdb's %g with the type's significant digits (floatformat_printf_format)."""
    if value != value:
        return "nan(0x8000000000000)" if digits == 17 else "nan(0x400000)"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}g}"


def _reference(t: TypeInfo, data: bytes, memory, symbolize) -> Tuple[str, Optional[int]]:
    """gdb prints a reference to a scalar as ``@0xADDR: VALUE``; other references as ``...``."""
    if t.target is None or not t.target.is_scalar or len(data) < 8:
        return "...", None
    address = int.from_bytes(data[:8], "little")
    try:
        target = memory.read(address, t.target.size or 8)
    except (MemoryFault, OverflowError, AttributeError):
        return f"@{address:#x}: {memory_error(address)}", address
    text, _ = format_value(t.target, target, memory, symbolize)
    return f"@{address:#x}: {text}", address


def _pointer(t: TypeInfo, value: int, memory, symbolize) -> str:
    text = f"{value:#x}"
    name = symbolize(value) if symbolize is not None and value else None
    if name:
        text += f" <{name}>"
    target = t.target
    if target is not None and target.is_char and value and memory is not None:
        text += " " + format_string(memory, value)
    return text


def format_string(memory, address: int, limit: int = PRINT_ELEMENTS) -> str:
    """The NUL-terminated string at `address` as gdb prints a ``char *``'s target: quoted,
    escaped, at most `limit` characters then ``...``, runs of more than 10 equal characters
    as ``'c' <repeats N times>``; an unreadable address as gdb's error."""
    data, fault = _read_cstring(memory, address, limit + 1)
    if fault is not None and not data:
        return memory_error(fault)
    cut = len(data) > limit
    data = data[:limit]
    text = format_cstring(data)
    if fault is not None:
        text += memory_error(fault)
    return text + ("..." if cut else "")


def _read_cstring(memory, address: int, limit: int) -> Tuple[bytes, Optional[int]]:
    """Up to `limit` bytes before the NUL at `address`, and the address that could not be
    read, if one stopped it."""
    out = bytearray()
    while len(out) < limit:
        at = address + len(out)
        chunk = min(64 - at % 64, limit - len(out))  # never across a page
        try:
            part = memory.read(at, chunk)
        except (MemoryFault, OverflowError):
            return bytes(out), at
        nul = part.find(b"\0")
        if nul >= 0:
            out += part[:nul]
            return bytes(out), None
        out += part
    return bytes(out), None
