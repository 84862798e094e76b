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
import unicodedata
from typing import Callable, Optional, Tuple

from coredump.dwarf.types import DW_ATE_UTF, DW_ATE_boolean, DW_ATE_float, DW_ATE_signed, DW_ATE_signed_char, TypeInfo
from coredump.errors import MemoryFault

__all__ = ("format_value", "format_char", "format_string", "memory_error", "PRINT_ELEMENTS",
           "REPEAT_THRESHOLD")

# gdb's `set print elements` (200) and `set print repeats` (10) defaults.
PRINT_ELEMENTS = 200
REPEAT_THRESHOLD = 10
# gdb/valprint.c c_printchar: the C escapes it prints by name.
_ESCAPES = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r", 27: "\\033"}

Symbolizer = Callable[[int], Optional[str]]


def memory_error(address: int) -> str:
    """gdb's message for an unreadable address (gdb/valprint.c val_print_string)."""
    return f"<error: Cannot access memory at address {address:#x}>"


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


def format_char(byte: int) -> str:
    """One byte as gdb's c_printchar prints it: ``'A'``, ``'\\n'``, ``'\\310'``."""
    if byte in (0x27, 0x5C):
        return f"'\\{chr(byte)}'"
    return f"'{_escape_byte(byte)}'"


def _escape_byte(byte: int) -> str:
    if 0x20 <= byte < 0x7F:
        return chr(byte)
    return _ESCAPES.get(byte, f"\\{byte:03o}")


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
    text = _segments(data) if data else '""'
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


def _segments(data: bytes) -> str:
    """gdb's generic_printstr: quoted runs, with repeats of more than REPEAT_THRESHOLD equal
    characters printed apart, joined by ``, ``."""
    parts, quoted, i = [], [], 0
    while i < len(data):
        j = i
        while j < len(data) and data[j] == data[i]:
            j += 1
        if j - i > REPEAT_THRESHOLD:
            if quoted:
                parts.append('"' + "".join(quoted) + '"')
                quoted = []
            parts.append(f"{format_char(data[i])} <repeats {j - i} times>")
            i = j
            continue
        char, i = _string_char(data, i)
        quoted.append(char)
    if quoted:
        parts.append('"' + "".join(quoted) + '"')
    return ", ".join(parts)


def _string_char(data: bytes, i: int) -> Tuple[str, int]:
    """One character of a string: a printable UTF-8 sequence as itself (gdb with a UTF-8
    host charset), every other byte escaped."""
    byte = data[i]
    if byte in (0x22, 0x5C):
        return "\\" + chr(byte), i + 1
    if byte < 0x80:
        return _escape_byte(byte), i + 1
    for n in (2, 3, 4):
        try:
            ch = data[i:i + n].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if len(ch) == 1 and unicodedata.category(ch)[0] not in ("C", "Z") :
            return ch, i + n
        break
    return f"\\{byte:03o}", i + 1
