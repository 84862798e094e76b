"""
Data model
==========

The frozen records every layer passes on: frames, threads, modules and the crash.
They hold facts only; rendering lives in ``report/`` and explanations in ``triage/``.
"""

from __future__ import annotations

import enum

from coredump.record import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Mapping, Optional, Tuple

__all__ = ("CRASH_SCHEMA", "SUMMARY_SCHEMA", "SIGNAL_HANDLER_CALLED", "Trust", "Variable", "Frame", "Thread",
           "Module", "Signal", "Process", "CoreInfo", "Crash")


# The JSON contracts of DESIGN.md (docs/json-schema.md): one crash, and one job's crashes.
CRASH_SCHEMA = "coredump.crash/1"
SUMMARY_SCHEMA = "coredump.summary/1"

# gdb's name for the frame of a signal trampoline (the handler's return address).
SIGNAL_HANDLER_CALLED = "<signal handler called>"


class Trust(enum.IntEnum):
    """How a frame was found, least to most reliable (rust-minidump's ``FrameTrust``)."""

    NONE = 0
    SCAN = 1
    FP = 2
    CFI = 3
    SIGNAL = 4
    CONTEXT = 5

    @property
    def tag(self) -> str:
        """The short JSON spelling of DESIGN.md."""
        return _TRUST_TAGS[self]

    @property
    def description(self) -> str:
        """The phrase printed under a frame in the text report."""
        return _TRUST_DESCRIPTIONS[self]


_TRUST_TAGS = {
    Trust.NONE: "none",
    Trust.SCAN: "scan",
    Trust.FP: "fp",
    Trust.CFI: "cfi",
    Trust.SIGNAL: "signal",
    Trust.CONTEXT: "context",
}
_TRUST_DESCRIPTIONS = {
    Trust.NONE: "unknown",
    Trust.SCAN: "stack scanning",
    Trust.FP: "frame pointer",
    Trust.CFI: "call frame info",
    Trust.SIGNAL: "signal frame",
    Trust.CONTEXT: "given as instruction pointer in context",
}


@dataclass(frozen=True)
class Variable:
    """A parameter or local variable of a frame: its name, its type as gdb names it, its
    value as gdb's ``bt`` prints it (``100``, ``0x0``, ``<optimized out>``, ``...``), the raw
    integer where the value is a scalar, and its value at the function's entry where the
    caller's call site says it (gdb's ``name@entry``)."""

    name: str
    type: str
    value: str
    raw: Optional[int] = None
    entry: Optional[str] = None


@dataclass(frozen=True)
class Frame:
    """One frame of a backtrace, innermost first.

    ``pc`` is the instruction address for frame 0 and frames interrupted by a signal, and
    the return address for callers (gdb's ``bt`` convention); ``lookup_pc`` is the address
    to symbolize. A ``tailcall`` frame has no stack frame of its own: a tail call removed it,
    and it was put back from the call that names it (gdb's ``TAILCALL_FRAME``).
    ``file`` is the source name as DWARF and gdb's ``bt`` give it (often relative to the
    compilation directory); ``source_path`` is its full name as gdb gives it (``filename-display
    absolute``): absolute when the DWARF's compilation directory is, else relative to that
    relative directory (Debian's libc6-dbg: ``./nptl/./nptl/pthread_kill.c``).
    A ``jit`` frame's pc lies in executable memory that no file backs (JIT-compiled code):
    it has no module, and no symbol names it.
    ``args`` are the function's parameters as gdb's ``bt`` prints them, None where no DWARF
    describes the frame (or values were not read); ``locals`` its local variables (``bt full``),
    read for the crashing thread's top frames only.
    """

    index: int
    pc: int
    sp: Optional[int] = None
    cfa: Optional[int] = None
    trust: Trust = Trust.CONTEXT
    module: Optional[str] = None
    module_offset: Optional[int] = None
    function: Optional[str] = None
    mangled: Optional[str] = None
    symbol_offset: Optional[int] = None
    file: Optional[str] = None
    line: Optional[int] = None
    inline: bool = False
    tailcall: bool = False
    source_path: Optional[str] = None
    jit: bool = False
    registers: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)
    args: Optional[Tuple[Variable, ...]] = None
    locals: Optional[Tuple[Variable, ...]] = None

    @property
    def interrupted(self) -> bool:
        """True when pc is the exact faulting or interrupted instruction (drgn's rule)."""
        return self.trust in (Trust.CONTEXT, Trust.SIGNAL)

    @property
    def lookup_pc(self) -> int:
        """The address whose function and line describe this frame: a caller's return
        address may already lie past the call's function, so callers use ``pc - 1``."""
        return self.pc if self.interrupted or self.pc == 0 else self.pc - 1


@dataclass(frozen=True)
class Thread:
    """A thread of the crashed process and its stack."""

    tid: int
    registers: Mapping[str, int]
    frames: Tuple[Frame, ...] = ()
    signal: int = 0
    status: str = "ok"
    truncated: bool = False
    frames_omitted: int = 0


@dataclass(frozen=True)
class Module:
    """A mapped ELF file (executable, shared library, vDSO).

    ``build_id`` is read from the core's copy of the ELF header, ``file_build_id`` from the
    file found on disk; ``status`` is ``ok``, ``missing`` or ``mismatch``.
    """

    path: str
    start: int
    end: int
    build_id: Optional[str] = None
    file: Optional[str] = None
    file_build_id: Optional[str] = None
    debug_file: Optional[str] = None
    load_bias: int = 0
    status: str = "ok"
    # The dwz supplementary file its DWARF names (.gnu_debugaltlink / .debug_sup), as found.
    supplementary_file: Optional[str] = None


@dataclass(frozen=True)
class Signal:
    number: int
    name: str
    code: Optional[int] = None
    code_name: Optional[str] = None
    address: Optional[int] = None
    description: str = ""
    sender_pid: Optional[int] = None


@dataclass(frozen=True)
class Process:
    pid: int
    executable: Optional[str]
    argv: Tuple[str, ...] = ()
    command: Optional[str] = None
    uid: Optional[int] = None
    arch: str = "x86_64"


@dataclass(frozen=True)
class CoreInfo:
    path: str
    size: int
    truncated: bool = False
    # A core written by ``coredump slim``: the bytes of memory it left out; None otherwise.
    slim_omitted_bytes: Optional[int] = None


@dataclass(frozen=True)
class Crash:
    core: CoreInfo
    process: Process
    signal: Signal
    crashing_thread: Optional[int]
    threads: Tuple[Thread, ...]
    modules: Tuple[Module, ...]
    assertion: Optional[str] = None
    reason: Optional[str] = None
    classification: Optional[str] = None
    signature: Optional[str] = None
    fingerprint: Optional[str] = None
    warnings: Tuple[str, ...] = ()
    # Why this crash is a test framework's on purpose (a googletest death test's child), or None.
    death_test: Optional[str] = None
