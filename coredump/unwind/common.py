"""
Unwinder state
==============

What every strategy shares: the light per-frame state the walk passes around, the
"outermost frame" signal, and a word reader that caches the stack's pages.
"""

from __future__ import annotations

import struct
import weakref

from coredump.errors import MemoryFault
from coredump.model import SIGNAL_HANDLER_CALLED, Frame, Trust

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable, Dict, Optional
    Strategy = Callable[["UnwindState", object, "WordReader"], Optional["UnwindState"]]

__all__ = ("UnwindState", "OutermostFrame", "WordReader", "get_reader", "SIGNAL_HANDLER_CALLED", "Strategy",
           "public_caller")


class OutermostFrame(Exception):
    """The CFI says this frame has no caller (its return-address column is undefined,
    as glibc marks ``_start`` and ``clone``): a normal end of the stack."""


class UnwindState:
    """One physical frame while walking: cheaper than a frozen ``Frame``, which the walk
    builds only for the frames it keeps."""

    __slots__ = ("pc", "regs", "trust", "cfa", "function")

    def __init__(self, pc: int, regs: Dict[str, int], trust: Trust, function: Optional[str] = None):
        self.pc = pc
        self.regs = regs
        self.trust = trust
        self.cfa: Optional[int] = None
        self.function = function

    @property
    def lookup_pc(self) -> int:
        """``Frame.lookup_pc``: callers look up pc - 1, interrupted frames their pc."""
        if self.trust in (Trust.CONTEXT, Trust.SIGNAL) or self.pc == 0:
            return self.pc
        return self.pc - 1

    def to_frame(self, index: int, sp_name: str) -> Frame:
        return Frame(index=index, pc=self.pc, sp=self.regs.get(sp_name), cfa=self.cfa,
                     trust=self.trust, function=self.function, registers=self.regs)

    @classmethod
    def from_frame(cls, frame: Frame, pc_name: str) -> UnwindState:
        regs = dict(frame.registers)
        regs.setdefault(pc_name, frame.pc)
        state = cls(frame.pc, regs, frame.trust, frame.function)
        state.cfa = frame.cfa
        return state


_CHUNK_BITS = 12  # one page: a chunk never straddles a mapping
_CHUNK = 1 << _CHUNK_BITS
_LOW = _CHUNK - 1
_U64 = struct.Struct("<Q")


class WordReader:
    """Reads of 8-byte words through page-sized chunks of the address space, cached: a deep
    stack is walked word by word, and ``AddressSpace.read`` copies on every call."""

    def __init__(self, memory):
        self.memory = memory
        self._chunks: Dict[int, Optional[bytes]] = {}

    def read(self, address: int, size: int) -> bytes:
        return self.memory.read(address, size)

    def read_word(self, address: int) -> int:
        low = address & _LOW
        if low <= _CHUNK - 8:
            key = address >> _CHUNK_BITS
            try:
                chunk = self._chunks[key]
            except KeyError:
                chunk = self._load(key)
            if chunk is not None:
                return _U64.unpack_from(chunk, low)[0]
        return self.memory.read_word(address)

    def _load(self, key: int) -> Optional[bytes]:
        if len(self._chunks) > 16384:  # at most 64 MiB held
            self._chunks.clear()
        try:
            chunk: Optional[bytes] = self.memory.read(key << _CHUNK_BITS, _CHUNK)
        except (MemoryFault, OverflowError):
            chunk = None  # unreadable page: word reads raise the exact MemoryFault
        self._chunks[key] = chunk
        return chunk


_READERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_reader(target) -> WordReader:
    """The cached ``WordReader`` over ``target.memory``."""
    memory = target.memory
    reader = _READERS.get(memory)
    if reader is None:
        reader = _READERS[memory] = WordReader(memory)
    return reader


# An architecture's strategy: (callee state, target, word reader) -> caller state or None.


def public_caller(strategy: Strategy, pc: str, sp: str) -> Callable[[Frame, object], Optional[Frame]]:
    """The ``caller_by_*(frame, target) -> Frame | None`` form of an internal strategy, for
    callers outside the walk (tests, tools); `pc` and `sp` name the architecture's registers."""

    def caller(frame: Frame, target) -> Optional[Frame]:
        found = strategy(UnwindState.from_frame(frame, pc), target, get_reader(target))
        return None if found is None else found.to_frame(frame.index + 1, sp)

    caller.__name__ = caller.__qualname__ = f"caller_by_{strategy.__name__.strip('_')}"
    caller.__doc__ = strategy.__doc__
    return caller
