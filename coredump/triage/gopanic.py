"""
Go panic values
===============

The value a Go program panicked with, read back from the core as the runtime keeps it: the
thread's ``g`` (linux/amd64: at ``-8(FS)``), its M's current goroutine ``curg``, that
goroutine's newest ``_panic`` (runtime/runtime2.go: ``g._panic``, ``_panic.arg`` an
``eface`` of type descriptor and data) and the value's bytes, each layout from the program's
own DWARF (``coredump.dwarf.structs``), each type told by its ``DW_AT_go_runtime_type``.
The text is what ``printpanicval`` prints (runtime/panic.go, error.go): a string as it is,
an ``errors.New`` error's text, a runtime error's ``runtime error: ...``, and a
``runtime.boundsError`` (an index or slice out of range) formatted from its fields as
``boundsError.Error`` does. (preprintpanics has turned an error value into its Error() string
by the time the runtime prints it; a core dumped before that, with a deferred call still
running, holds the value itself.)

Only these types are decoded; any other value, a build without DWARF, or memory that does not
hold together gives None, and the crash keeps its other facts.
"""

from __future__ import annotations

import struct

from coredump.dwarf.structs import NamedType, find_named_types
from coredump.errors import MemoryFault
from coredump.symbols.symtab import find_symbol
from coredump.unwind.goruntime import is_go_image

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, Optional

__all__ = ("find_go_panic", "MAX_MESSAGE")

MAX_MESSAGE = 4096
# A Go string's length above this is not a message the runtime could have printed.
_MAX_LENGTH = 1 << 30
PT_TLS = 7  # gABI "Program Header": the thread-local storage template
# cmd/link's DWARF attribute: the offset of a type's runtime descriptor from ``runtime.types``
# (cmd/internal/dwarf: DW_AT_go_runtime_type = 0x2904).
DW_AT_go_runtime_type = 0x2904
# runtime/sys_linux_amd64.s settls: "ELF wants to use -8(FS)" (go_tls.h's g(r) is -8 off FS
# under the Go linker's own linking; a PT_TLS segment means an external link).
_G_FROM_FS = -8
# The start of the type descriptors, named by cmd/link (Go 1.20 renamed "type.*" "type:*").
_TYPES_SYMBOLS = ("type:*", "type.*")
_LAYOUTS = {"runtime.g": ("m", "_panic"), "runtime.m": ("curg",), "runtime._panic": ("arg", "link", "goexit")}
_NOT_FOUND = NamedType(0)
# What printpanicval prints for each type (runtime/error.go: errorString.Error adds the
# prefix, plainError's does not; errors.New returns *errors.errorString).
_VALUES = {"string": "", "runtime.errorString": "runtime error: ", "runtime.plainError": ""}
_ERRORS_NEW = "*errors.errorString"
_BOUNDS = "runtime.boundsError"
# runtime/error.go boundsErrorFmts and boundsNegErrorFmts (for a signed x below 0), by
# boundsErrorCode; boundsError.Error formats %x and %y as decimal integers.
_BOUNDS_FORMATS = (
    ("index out of range [%x] with length %y", "index out of range [%x]"),
    ("slice bounds out of range [:%x] with length %y", "slice bounds out of range [:%x]"),
    ("slice bounds out of range [:%x] with capacity %y", "slice bounds out of range [:%x]"),
    ("slice bounds out of range [%x:%y]", "slice bounds out of range [%x:]"),
    ("slice bounds out of range [::%x] with length %y", "slice bounds out of range [::%x]"),
    ("slice bounds out of range [::%x] with capacity %y", "slice bounds out of range [::%x]"),
    ("slice bounds out of range [:%x:%y]", "slice bounds out of range [:%x:]"),
    ("slice bounds out of range [%x:%y:]", "slice bounds out of range [%x::]"),
    # boundsConvert has no negative format: the runtime indexes its table past the end (and
    # panics while printing), so a negative x there is not decoded.
    ("cannot convert slice with length %y to pointer to array with length %x", None),
)
# The chain of panics a deferred call's panic links (runtime2.go _panic.link), as far as read.
_MAX_CHAIN = 16


def find_go_panic(target, registers: Dict[str, int]) -> Optional[str]:
    """``panic: <value>`` for the goroutine that panicked on the thread with `registers`
    (the crashing one), or None."""
    module = target.executable
    if module is None or not module.trusted or not is_go_image(module.image) or module.dwarf is None:
        return None
    if target.arch is None or target.arch.name != "x86_64" or "fs_base" not in registers:
        return None
    if any(ph[0] == PT_TLS for ph in module.image.program_headers):
        return None  # an external link puts g in the C library's TLS: not read here
    types = find_named_types(module.dwarf, (*_LAYOUTS, *_VALUES, _ERRORS_NEW, "errors.errorString", _BOUNDS),
                             units=("runtime",), attributes=frozenset((DW_AT_go_runtime_type,)))
    if any(f not in types.get(t, _NOT_FOUND).members for t, fields in _LAYOUTS.items() for f in fields):
        return None
    try:
        panic = _newest_panic(target.memory, types, registers["fs_base"] + _G_FROM_FS)
        if panic is None:
            return None
        text = _value(target, module, types, panic + types["runtime._panic"].members["arg"])
    except MemoryFault:
        return None
    return f"panic: {text}" if text is not None else None


def _newest_panic(memory, types: Dict[str, NamedType], g_slot: int) -> Optional[int]:
    """The goroutine's newest _panic not made by Goexit, from the g in TLS: its M's curg
    (the signal handler runs on gsignal), else that g itself; each pointer checked against
    the one that names it back (curg.m is the M)."""
    g_off, m_off = types["runtime.g"].members, types["runtime.m"].members
    g = memory.read_word(g_slot)
    if g < 4096:
        return None
    m = memory.read_word(g + g_off["m"])
    curg = memory.read_word(m + m_off["curg"]) if m >= 4096 else 0
    for gp in (curg, g):
        if gp < 4096 or memory.read_word(gp + g_off["m"]) != m:
            continue
        p, seen = memory.read_word(gp + g_off["_panic"]), 0
        while p >= 4096 and seen < _MAX_CHAIN:
            if not memory.read(p + types["runtime._panic"].members["goexit"], 1)[0]:
                return p
            p, seen = memory.read_word(p + types["runtime._panic"].members["link"]), seen + 1
    return None


def _value(target, module, types: Dict[str, NamedType], eface: int) -> Optional[str]:
    """The text of the ``eface`` (runtime2.go: ``_type``, ``data``) at `eface`, for the types
    printpanicval prints without calling Go code."""
    base = next((a for a in (find_symbol(module.image, s) for s in _TYPES_SYMBOLS) if a is not None), None)
    if base is None:
        return None
    typ, data = struct.unpack("<QQ", target.memory.read(eface, 16))
    by_descriptor = {base + module.bias + t.attributes[DW_AT_go_runtime_type]: name for name, t in types.items()
                     if DW_AT_go_runtime_type in t.attributes}
    name = by_descriptor.get(typ)
    if name in _VALUES:
        text = _string(target.memory, data)
        return _VALUES[name] + text if text is not None else None
    if name == _ERRORS_NEW and "s" in types.get("errors.errorString", _NOT_FOUND).members:
        return _string(target.memory, data + types["errors.errorString"].members["s"])
    if name == _BOUNDS and data >= 4096:
        return _bounds_error(target.memory, types[_BOUNDS].members, data)
    return None


def _bounds_error(memory, members: Dict[str, int], at: int) -> Optional[str]:
    """boundsError.Error (runtime/error.go) of the boundsError at `at`: its fields x (int64),
    y (int), signed (bool) and code (boundsErrorCode, a uint8) by the program's own layout."""
    if not {"x", "y", "signed", "code"} <= members.keys():
        return None
    (x,) = struct.unpack("<q", memory.read(at + members["x"], 8))
    (y,) = struct.unpack("<q", memory.read(at + members["y"], 8))
    signed, code = memory.read(at + members["signed"], 1)[0], memory.read(at + members["code"], 1)[0]
    if code >= len(_BOUNDS_FORMATS) or signed > 1:
        return None
    negative = bool(signed) and x < 0
    form = _BOUNDS_FORMATS[code][1 if negative else 0]
    if form is None:
        return None
    # appendIntStr: x read as signed or unsigned as `signed` says; y always signed
    x_text = str(x if signed else x & 0xFFFF_FFFF_FFFF_FFFF)
    return "runtime error: " + form.replace("%x", x_text).replace("%y", str(y))


def _string(memory, header: int) -> Optional[str]:
    """A Go string (runtime/string.go stringStruct: ``str`` pointer, ``len``) as text, cut
    at MAX_MESSAGE bytes; bytes that are not UTF-8 print as U+FFFD, as the report shows them."""
    if header < 4096:
        return None
    ptr, length = struct.unpack("<QQ", memory.read(header, 16))
    if length > _MAX_LENGTH or (length and ptr < 4096):
        return None
    raw = memory.read(ptr, min(length, MAX_MESSAGE)) if length else b""
    text = raw.decode("utf-8", "replace")
    return text + "…" if length > MAX_MESSAGE else text
