"""
C strings
=========

The bytes a ``char *`` points to, printed as gdb prints them with a UTF-8 host charset
(gdb/valprint.c generic_printstr, gdb/charset.c wchar_iterator over glibc's iconv): quoted
runs of characters, runs of more than ``REPEAT_THRESHOLD`` equal characters apart
(``'a' <repeats 16 times>``), every byte that is not a printable character escaped in octal,
and a truncated multibyte sequence at the end as ``<incomplete sequence \\303>``.

The bytes come from a crashed program's memory: what this returns is plain printable text,
safe on any terminal; HTML escaping is the report's.
"""

from __future__ import annotations

import unicodedata

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Optional, Tuple

__all__ = ("format_char", "format_cstring", "format_char_array", "memory_error", "PRINT_ELEMENTS", "REPEAT_THRESHOLD")

# gdb's `set print elements` (200) and `set print repeats` (10) defaults.
PRINT_ELEMENTS = 200
REPEAT_THRESHOLD = 10
# gdb/valprint.c c_printchar: the C escapes it prints by name.
_ESCAPES = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r", 27: "\\033"}
# glibc's iswprint is false for controls, surrogates, unassigned code points and the line and
# paragraph separators (localedata/unicode-gen: "print" is every assigned character but those).
_UNPRINTABLE = ("Cc", "Cs", "Cn", "Zl", "Zp")


def memory_error(address: int) -> str:
    """gdb's message for an unreadable address (gdb/valprint.c val_print_string)."""
    return f"<error: Cannot access memory at address {address:#x}>"


def format_char(byte: int) -> str:
    """One byte as gdb's c_printchar prints it: ``'A'``, ``'\\n'``, ``'\\310'``."""
    if byte in (0x27, 0x5C):
        return f"'\\{chr(byte)}'"
    return f"'{_escape_byte(byte)}'"


def _escape_byte(byte: int) -> str:
    if 0x20 <= byte < 0x7F:
        return chr(byte)
    return _ESCAPES.get(byte, f"\\{byte:03o}")


def format_cstring(data: bytes) -> str:
    """The bytes of a string (its NUL left out) as gdb's generic_printstr prints them."""
    tail = _incomplete_tail(data)
    elements = _elements(data[:len(data) - len(tail)])
    if tail and elements and elements[-1][2]:
        # glibc's iconv reports the incomplete input (EINVAL) before a full output buffer, and
        # gdb's wchar_iterator then drops the character it had just converted.
        elements.pop()
    parts, quoted, i = [], [], 0
    while i < len(elements):
        j = i
        while j < len(elements) and elements[j][0] == elements[i][0]:
            j += 1
        if j - i > REPEAT_THRESHOLD:
            if quoted:
                parts.append('"' + "".join(quoted) + '"')
                quoted = []
            parts.append(f"{_quoted_char(elements[i])} <repeats {j - i} times>")
            i = j
            continue
        quoted.append(elements[i][1])
        i += 1
    if quoted:
        parts.append('"' + "".join(quoted) + '"')
    if tail:
        parts.append("<incomplete sequence " + "".join(f"\\{b:03o}" for b in tail) + ">")
    return ", ".join(parts) if parts else '""'


def format_char_array(data: bytes) -> str:
    """A char array's bytes as gdb prints them (c_value_print_array, generic_printstr): one
    trailing NUL left out, the rest (NULs too) as a string; characters counted a run at a
    time until ``PRINT_ELEMENTS``, then ``...`` if any are left."""
    if data.endswith(b"\0"):
        data = data[:-1]
    if not data:
        return '""'
    tail = _incomplete_tail(data)
    elements = _elements(data[:len(data) - len(tail)])
    printed, cut, i = 0, 0, 0
    while i < len(elements) and printed < PRINT_ELEMENTS:
        j = i + 1
        while j < len(elements) and elements[j][0] == elements[i][0]:
            j += 1
        printed += j - i  # count_next_character: a run counts its repeats
        cut += sum(len(e[0]) for e in elements[i:j])
        i = j
    if i < len(elements):
        return format_cstring(data[:cut]) + "..."
    return format_cstring(data)


def _quoted_char(element: Tuple[bytes, str, bool]) -> str:
    """A repeated element as gdb prints it apart: in single quotes."""
    raw, text, _ = element
    if len(raw) == 1:
        return format_char(raw[0])
    return f"'{text}'"


def _elements(data: bytes) -> List[Tuple[bytes, str, bool]]:
    """(bytes, text inside double quotes, whether iconv converted it) per character or
    unconvertible byte (gdb escapes an invalid sequence one byte at a time)."""
    out, i = [], 0
    while i < len(data):
        byte = data[i]
        if byte < 0x80:
            text = "\\" + chr(byte) if byte in (0x22, 0x5C) else _escape_byte(byte)
            out.append((data[i:i + 1], text, True))
            i += 1
            continue
        n = _sequence_length(byte)
        ch = _decode(data[i:i + n]) if n else None
        if ch is None:
            out.append((data[i:i + 1], f"\\{byte:03o}", False))
            i += 1
            continue
        raw = data[i:i + n]
        printable = unicodedata.category(ch) not in _UNPRINTABLE
        out.append((raw, ch if printable else "".join(f"\\{b:03o}" for b in raw), True))
        i += n
    return out


def _sequence_length(lead: int) -> int:
    """The bytes glibc's UTF-8 decoder expects after lead byte `lead` (iconv/gconv_simple.c:
    0xc2-0xdf two, 0xe0-0xef three, 0xf0-0xf7 four, 0xf8-0xfb five, 0xfc-0xfd six); 0 for a
    byte that starts no sequence."""
    for low, high, n in ((0xC2, 0xDF, 2), (0xE0, 0xEF, 3), (0xF0, 0xF7, 4), (0xF8, 0xFB, 5), (0xFC, 0xFD, 6)):
        if low <= lead <= high:
            return n
    return 0


def _decode(raw: bytes) -> Optional[str]:
    try:
        ch = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return ch if len(ch) == 1 else None


def _incomplete_tail(data: bytes) -> bytes:
    """The lead byte and continuation bytes at the end of `data` that are too few for the
    sequence the lead byte starts (iconv's EINVAL, gdb's ``<incomplete sequence ...>``)."""
    for back in range(1, min(6, len(data)) + 1):
        byte = data[-back]
        if 0x80 <= byte < 0xC0:
            continue  # a continuation byte: the lead is further back
        need = _sequence_length(byte)
        return data[-back:] if need > back else b""
    return b""
