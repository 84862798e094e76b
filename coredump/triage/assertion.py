"""
Assertions
==========

The message a process left before it aborted: glibc's ``__abort_msg`` (failed assert, malloc
errors, fortify and stack-protector failures) and a C++ exception nobody caught.
"""

from __future__ import annotations

import os
import re
import struct

from coredump.elf.memory import PF_W
from coredump.errors import MemoryFault
from coredump.patterns import lazy_compile
from coredump.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Iterator, Mapping, Optional

__all__ = ("AbortMessage", "CxxException", "find_abort_message", "decode_abort_message",
           "find_cxx_exception", "demangle_type_name")

# assert/assert.c: _("%s%s%s:%u: %s%sAssertion `%s' failed.\n%n")
_ASSERT_RE = lazy_compile(r"^(?:(?P<prog>[^\n]*?): )?(?P<file>[^\n:]+):(?P<line>\d+): "
                          r"(?:(?P<function>[^\n]+?): )?Assertion [`'](?P<expr>.*)' failed\.?\s*$", re.S)
# malloc/malloc.c malloc_printerr() messages all name the checking function or the damage.
_MALLOC_RE = lazy_compile(r"^(?:free|malloc|realloc|calloc|munmap_chunk|malloc_consolidate|_int_\w+|tcache_\w+"
                          r"|double free|corrupted|break adjusted|invalid|unaligned|memalign|"
                          r"malloc_check|mremap_chunk)\b.*", re.S)
# debug/fortify_fail.c and debug/stack_chk_fail.c: "*** %s ***: terminated"
_FORTIFY_RE = lazy_compile(r"^\*\*\* (?P<what>.+?) \*\*\*: terminated\s*$", re.S)


@dataclass(frozen=True)
class AbortMessage:
    """glibc's message, with the fields of a failed assert when it is one.

    ``kind`` is ``assert``, ``malloc``, ``fortify``, ``stack-protector`` or ``fatal``."""

    text: str
    kind: str
    expression: Optional[str] = None
    file: Optional[str] = None
    line: Optional[int] = None
    function: Optional[str] = None


def decode_abort_message(text: str) -> AbortMessage:
    """Sort glibc's abort message into its kind.

    >>> decode_abort_message("t: t.c:7: check: Assertion `x > 0' failed.\\n").expression
    'x > 0'
    >>> decode_abort_message("free(): double free detected in tcache 2\\n").kind
    'malloc'
    """
    text = text.strip()
    m = _ASSERT_RE.match(text)
    if m:
        return AbortMessage(text, "assert", m["expr"], m["file"], int(m["line"]), m["function"])
    m = _FORTIFY_RE.match(text)
    if m:
        kind = "stack-protector" if "stack smashing" in m["what"] else "fortify"
        return AbortMessage(text, kind)
    if _MALLOC_RE.match(text):
        return AbortMessage(text, "malloc")
    return AbortMessage(text, "fatal")


def find_abort_message(target) -> Optional[str]:
    """The text of glibc's ``__abort_msg``, or None.

    glibc (sysdeps/posix/libc_fatal.c __libc_message, assert/assert.c __assert_fail_base)
    mmaps a ``struct abort_msg_s { unsigned int size; char msg[0]; }`` and stores its address
    in the GLIBC_PRIVATE global ``struct abort_msg_s *__abort_msg`` before calling abort(): the
    message starts 4 bytes into that block. The symbol is in libc's .dynsym, or in a static
    program's .symtab."""
    # libc first: a dynamic program's own .symtab never defines it.
    for mod in sorted(target.modules, key=lambda m: "libc." not in os.path.basename(m.path)):
        table = mod.symtab
        if table is None or not hasattr(table, "find_symbol"):
            continue
        addr = table.find_symbol("__abort_msg")
        if addr is None:
            continue
        try:
            ptr = target.memory.read_word(addr + mod.bias)
            if not ptr:
                return None
            raw = target.memory.read_cstring(ptr + 4, 4096)
        except MemoryFault:
            return None
        text = raw.decode("utf-8", "replace").strip()
        return text or None
    return None


# -- C++ exceptions (libstdc++) ---------------------------------------------------------------

# libsupc++/unwind-cxx.h: __gxx_primary_exception_class "GNUCC++\0" and the dependent class
# "GNUCC++\x01", stored in _Unwind_Exception.exception_class (first field) as a big-endian
# packing of those bytes.
_GNU_CXX_PRIMARY = int.from_bytes(b"GNUCC++\x00", "big")
_GNU_CXX_DEPENDENT = int.from_bytes(b"GNUCC++\x01", "big")
# struct __cxa_exception on LP64: exceptionType at 0 ... unwindHeader at 80 (aligned to 16,
# 32 bytes); the thrown object follows the header, at unwindHeader + 32. In a
# __cxa_dependent_exception the first field is primaryException (the thrown object).
_UNWIND_HEADER_OFFSET = 80
_UNWIND_HEADER_SIZE = 32
# How far above sp the stack is searched for a pointer to the exception.
STACK_SCAN_BYTES = 64 * 1024
# libstdc++ classes whose object layout is {vptr, __cow_string _M_msg}: what() is _M_msg.
_MSG_CLASSES = {"St11logic_error", "St13runtime_error"}


@dataclass(frozen=True)
class CxxException:
    type_name: str
    what: Optional[str] = None

    def __str__(self) -> str:
        return f"{self.type_name}: {self.what}" if self.what else self.type_name


def demangle_type_name(name: str) -> str:
    """The C++ name of a type_info name (an Itanium <type> without ``_Z``).

    >>> demangle_type_name("St13runtime_error"), demangle_type_name("N5store11ConfigErrorE")
    ('std::runtime_error', 'store::ConfigError')
    """
    from coredump.demangle import demangle

    # A type_info's name is an Itanium <type>; as the <special-name> "_ZTS <type>" it
    # demangles to "typeinfo name for <type>" (Itanium C++ ABI §5.1.5.8).
    text = demangle("_ZTS" + name)
    prefix = "typeinfo name for "
    return text[len(prefix):] if text and text.startswith(prefix) else name


def _iter_candidates(target, registers: Mapping[str, int], sp: int) -> Iterator[int]:
    yield from registers.values()
    seg = target.memory.find_segment(sp)
    if seg is None:
        return
    size = min(STACK_SCAN_BYTES, seg.end - sp)
    try:
        blob = target.memory.read(sp, size - size % 8)
    except MemoryFault:
        return
    yield from struct.unpack(f"<{len(blob) // 8}Q", blob)


def find_cxx_exception(target, registers: Mapping[str, int], sp: Optional[int]) -> Optional[CxxException]:
    """The exception being thrown when std::terminate ran, found from its unwind header.

    By the time abort() runs, __cxa_throw's arguments are gone, but the _Unwind_Exception
    that _Unwind_RaiseException and __cxa_begin_catch were given is still referenced from the
    crashing thread's registers or stack; its exception_class is the "GNUCC++" magic."""
    if sp is None:
        return None
    mem = _FileBacked(target)
    seen = set()
    for value in _iter_candidates(target, registers, sp):
        if value in seen or value % 8 or value < 4096:
            continue
        seen.add(value)
        seg = mem.find_segment(value)
        if seg is None or not seg.p_flags & PF_W:
            continue
        try:
            magic = mem.read_word(value)
        except MemoryFault:
            continue
        if magic in (_GNU_CXX_PRIMARY, _GNU_CXX_DEPENDENT):
            found = _decode_exception(mem, value, magic == _GNU_CXX_DEPENDENT)
            if found is not None:
                return found
    return None


class _FileBacked:
    """The target's memory, where a page of a module's read-only file data was not dumped
    (qemu-user cores have no text pages and no NT_FILE to find them by) read from the
    module's file: type_info names are string literals in .rodata, never written at run
    time, as gdb reads such sections from the executable (``trust-readonly-sections``)."""

    def __init__(self, target):
        self._target, self._mem = target, target.memory

    def __getattr__(self, name):  # read_word, find_segment: the core's own
        return getattr(self._mem, name)

    def read_cstring(self, address: int, max_size: int = 4096) -> bytes:
        try:
            return self._mem.read_cstring(address, max_size)
        except MemoryFault:
            data = self._target.read_file_backed(address, max_size)
            if data is None:
                raise
            return data.split(b"\0", 1)[0]


def _decode_exception(mem, unwind_header: int, dependent: bool) -> Optional[CxxException]:
    try:
        header = unwind_header - _UNWIND_HEADER_OFFSET
        obj = unwind_header + _UNWIND_HEADER_SIZE
        if dependent:
            obj = mem.read_word(header)  # primaryException
            header = obj - _UNWIND_HEADER_SIZE - _UNWIND_HEADER_OFFSET
        tinfo = mem.read_word(header)
        raw = mem.read_cstring(mem.read_word(tinfo + 8), 512)
    except MemoryFault:
        return None
    name = raw.decode("ascii", "replace")
    if not name or not re.fullmatch(r"[\w$.]+", name):
        return None
    return CxxException(demangle_type_name(name), _read_what(mem, tinfo, obj))


def _read_what(mem, tinfo: int, obj: int) -> Optional[str]:
    """what() of std::logic_error / std::runtime_error and classes single-derived from them
    (__si_class_type_info keeps its base's type_info at +16): their __cow_string's first word
    points at the characters."""
    for _ in range(8):
        try:
            name = mem.read_cstring(mem.read_word(tinfo + 8), 512).decode("ascii")
        except (MemoryFault, UnicodeDecodeError):
            return None
        if name in _MSG_CLASSES:
            try:
                text = mem.read_cstring(mem.read_word(obj + 8), 4096).decode("utf-8")
            except (MemoryFault, UnicodeDecodeError):
                return None
            return text if text.isprintable() else None
        try:
            tinfo = mem.read_word(tinfo + 16)
        except MemoryFault:
            return None
    return None
