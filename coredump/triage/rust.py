"""
Rust panics
===========

The message and source location of a Rust panic, read back from the crashing thread's stack
after ``-C panic=abort`` (or a panic while panicking) aborted the process.
"""

from __future__ import annotations

import struct

from coredump.elf.memory import PF_W, PF_X
from coredump.errors import MemoryFault
from coredump.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, Iterator, List, Optional, Tuple

__all__ = ("RustPanic", "find_rust_panic", "is_rust_panic", "PANIC_FRAMES", "STACK_SCAN_BYTES")

# Functions on every panicking stack (library/std/src/panicking.rs, library/core/src/
# panicking.rs); the last element of the name is enough whichever crate prefix rustc gives it.
PANIC_FRAMES = ("rust_panic", "rust_begin_unwind", "panic_fmt", "begin_panic_handler", "panic_handler",
                "rust_panic_with_hook", "panic_with_hook", "__rust_start_panic")
# std builds the panic's PanicHookInfo a few frames above abort(); 32 KiB covers them.
STACK_SCAN_BYTES = 32 * 1024
# How far from the Location pointer the payload (&dyn Any) may sit in PanicHookInfo
# {payload, location, can_unwind, force_no_backtrace} (rustc >= 1.81) or in the older
# PanicInfo {payload, message, location, ...}.
_PAYLOAD_REACH = 4
MAX_MESSAGE = 4096
MAX_FILE = 4096


@dataclass(frozen=True)
class RustPanic:
    """What std's default hook printed: ``thread '…' panicked at FILE:LINE:COL:\\nMESSAGE``.

    ``message`` is None when the payload is neither a ``&str`` nor a ``String``
    (``std::panic::panic_any``); std prints ``Box<dyn Any>`` then."""

    file: str
    line: int
    column: int
    message: Optional[str]

    @property
    def text(self) -> str:
        """``panicked at src/main.rs:4:5: index out of bounds``"""
        return f"panicked at {self.file}:{self.line}:{self.column}: {self.message or 'Box<dyn Any>'}"


def is_rust_panic(frames) -> bool:
    """Whether Rust's panic machinery is on these frames."""
    for f in frames:
        name = (f.function or "").split("(", 1)[0]
        last = name.split("<", 1)[0].rsplit("::", 1)[-1]
        if last in PANIC_FRAMES:
            return True
    return False


def find_rust_panic(target, sp: Optional[int]) -> Optional[RustPanic]:
    """The panic whose hook ran on this stack, found from its PanicHookInfo.

    std's ``rust_panic_with_hook`` builds a ``PanicHookInfo { payload: &dyn Any, location:
    &Location, .. }`` on its frame and keeps it there until ``__rust_start_panic`` aborts.
    A ``core::panic::Location { file: &str, line: u32, col: u32 }`` is a constant; the
    payload's vtable starts ``drop_in_place, size, align`` (rustc's vtable layout), and the
    size tells a ``&'static str`` (16, ``panic!("literal")``) from the ``String`` the default
    hook formatted the message into (24, ``panic!("{x}")``)."""
    if sp is None:
        return None
    words = _stack_words(target.memory, sp)
    locations: Dict[int, Optional[Tuple[str, int, int]]] = {}
    first: Optional[RustPanic] = None
    for k, word in enumerate(words):
        if word not in locations:
            locations[word] = _read_location(target.memory, word)
        loc = locations[word]
        if loc is None:
            continue
        message = _payload_near(target.memory, words, k)
        found = RustPanic(loc[0], loc[1], loc[2], message)
        if message is not None:
            return found
        first = first or found
    return first


def _stack_words(mem, sp: int) -> List[int]:
    seg = mem.find_segment(sp)
    if seg is None:
        return []
    size = min(STACK_SCAN_BYTES, seg.end - sp)
    try:
        blob = mem.read(sp, size - size % 8)
    except MemoryFault:
        return []
    return list(struct.unpack(f"<{len(blob) // 8}Q", blob))


def _read_text(mem, address: int, size: int, limit: int) -> Optional[str]:
    if address < 4096 or size <= 0 or size > limit:
        return None
    try:
        raw = mem.read(address, size)
    except MemoryFault:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _read_location(mem, address: int) -> Optional[Tuple[str, int, int]]:
    """(file, line, col) of a ``core::panic::Location`` at `address`, or None."""
    if address % 8 or address < 4096:
        return None
    seg = mem.find_segment(address)
    if seg is None or seg.p_flags & PF_X:
        return None
    try:
        file_ptr, file_len, line, col = struct.unpack("<QQII", mem.read(address, 24))
    except MemoryFault:
        return None
    if not (0 < line < 1 << 24 and 0 < col < 1 << 16):
        return None
    text_seg = mem.find_segment(file_ptr)
    if text_seg is None or text_seg.p_flags & PF_W:
        return None  # a source file name is a constant in the program's read-only data
    file = _read_text(mem, file_ptr, file_len, MAX_FILE)
    if file is None or not file.isprintable():
        return None
    return file, line, col


def _payload_near(mem, words: List[int], k: int) -> Optional[str]:
    """The message of a ``&dyn Any`` (data, vtable) stored close to words[k]."""
    for data_at in _payload_slots(k, len(words)):
        message = _decode_payload(mem, words[data_at], words[data_at + 1])
        if message is not None:
            return message
    return None


def _payload_slots(k: int, n: int) -> Iterator[int]:
    for d in range(2, _PAYLOAD_REACH + 2):
        if k - d >= 0:
            yield k - d
    for d in (1, 2):
        if k + d + 1 < n:
            yield k + d


def _decode_payload(mem, data: int, vtable: int) -> Optional[str]:
    if data < 4096 or data % 8 or vtable < 4096 or vtable % 8:
        return None
    vseg = mem.find_segment(vtable)
    if vseg is None or vseg.p_flags & (PF_W | PF_X):
        return None
    try:
        drop, size, align = struct.unpack("<QQQ", mem.read(vtable, 24))
        if drop and not mem.is_executable(drop):
            return None
        if align != 8 or size not in (16, 24):
            return None
        fields = struct.unpack(f"<{size // 8}Q", mem.read(data, size))
    except MemoryFault:
        return None
    if size == 16:  # &'static str: (ptr, len)
        return _read_text(mem, fields[0], fields[1], MAX_MESSAGE)
    return _string_text(mem, fields)


def _string_text(mem, fields: Tuple[int, ...]) -> Optional[str]:
    """A ``String``'s text: its three words are a pointer, a capacity and a length (rustc
    may order them as it likes; 1.95 has cap, ptr, len), the length not above the capacity."""
    for p in range(3):
        rest = [fields[i] for i in range(3) if i != p]
        for cap, length in (rest, rest[::-1]):
            if 0 < length <= cap and cap < 1 << 32:
                text = _read_text(mem, fields[p], min(length, MAX_MESSAGE), MAX_MESSAGE)
                if text is not None:
                    return text
    return None
