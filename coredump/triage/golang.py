"""
Go runtime crashes
==================

What a Go program's crashing stack says about why it died. With ``GOTRACEBACK=crash`` the
runtime prints its traceback, then ``runtime.crash`` re-raises a signal
(``dieFromSignal(SIGABRT)``, runtime/signal_unix.go) so that the kernel dumps core: the
core's signal is the runtime's, and its signal handler is on the stack. The fault that
started it is below, where ``runtime.sigpanic`` turned the signal into a panic (its caller
is the faulting function), or the code called ``panic`` (``runtime.gopanic``) or the runtime
gave up (``runtime.throw``, "fatal error").
"""

from __future__ import annotations

from coredump.model import Frame
from coredump.record import dataclass
from coredump.unwind.goruntime import ABI0_SUFFIX

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Optional, Sequence

__all__ = ("GoCrash", "find_go_crash", "describe_go_crash")

# The runtime's panics for its own errors (runtime/panic.go, error.go): what each says, the
# signal when runtime.sigpanic called it for a fault (its cases, runtime/signal_unix.go), and
# our classification. A check the compiler inserted calls them directly, with no signal
# (amd64 tests a divisor for zero). panicmem serves faults below 0x1000, which on Linux are
# SIGSEGV: nothing can be mapped there (vm.mmap_min_addr >= 4096) and SIGBUS needs a mapping;
# panicmemAddr serves SIGSEGV and SIGBUS alike (debug.SetPanicOnFault): its signal is not told.
_RUNTIME_ERRORS = {
    "runtime.panicmem": ("nil pointer dereference", "SIGSEGV", "null-deref"),
    "runtime.panicmemAddr": ("invalid memory address", None, "wild-pointer"),
    "runtime.panicdivide": ("integer divide by zero", "SIGFPE", "divide-by-zero"),
    "runtime.panicoverflow": ("integer overflow", "SIGFPE", "integer-overflow"),
    "runtime.panicfloat": ("floating point error", "SIGFPE", "floating-point"),
    "runtime.goPanicIndex": ("index out of range", None, "bounds"),
    "runtime.goPanicIndexU": ("index out of range", None, "bounds"),
    "runtime.panicshift": ("negative shift amount", None, "panic"),
    "runtime.panicdottypeE": ("interface conversion", None, "panic"),
    "runtime.panicdottypeI": ("interface conversion", None, "panic"),
    "runtime.panicnildottype": ("interface conversion", None, "panic"),
}
# runtime.crash re-raises a signal only with GOTRACEBACK=crash, and only fatalpanic and
# fatalthrow call it (runtime/panic.go); dieFromSignal re-raises on the other paths too
# (a SIGPIPE on a broken pipe, a signal arriving in non-Go code).
_GOTRACEBACK_CRASH = ("runtime.crash", "runtime.fatalpanic", "runtime.fatalthrow")
_CRASH_PATH = _GOTRACEBACK_CRASH + ("runtime.dieFromSignal",)
# How the code got onto the crash path, tried in this order (runtime/panic.go): panic; throw
# ("Go itself may be at fault") and fatal ("user code is expected to be at fault", such as
# racing map writes), both through fatalthrow, whose closure is all a thread shows when the
# walk ends where systemstack switched to g0.
_ENTRIES = (("runtime.gopanic", "panic", "panic"), ("runtime.throw", "fatal error", "fatal-error"),
            ("runtime.fatal", "fatal error", "fatal-error"), ("runtime.fatalthrow", "fatal error", "fatal-error"),
            ("runtime.fatalthrow.func1", "fatal error", "fatal-error"))
# Where the runtime is not at fault (and below fatalthrow's closure, systemstack), the place is
# the first frame outside it.
_SKIP_RUNTIME = frozenset(("runtime.gopanic", "runtime.fatal", "runtime.fatalthrow", "runtime.fatalthrow.func1"))


@dataclass(frozen=True)
class GoCrash:
    """``what`` happened (``nil pointer dereference``, ``panic``, ``fatal error``), the
    ``signal`` of a fault where the runtime's case for it tells, ``where``: the function that
    faulted or called panic or throw, ``classification``, and the ``message`` the runtime
    printed for a panic where memory tells it (``coredump.triage.gopanic``)."""

    what: str
    signal: Optional[str]
    where: Optional[str]
    classification: str
    gotraceback_crash: bool
    message: Optional[str] = None


def _name(frame: Frame) -> str:
    """The function's name; an ELF symbol's ABI0 wrapper suffix (a build without DWARF)
    names the same function (coredump.unwind.goruntime)."""
    name = frame.function or ""
    return name[:-len(ABI0_SUFFIX)] if name.endswith(ABI0_SUFFIX) else name


def _caller_of(frames: Sequence[Frame], i: int, skip_runtime: bool) -> Optional[str]:
    """The first named frame below frames[i] (outside the runtime's package, if asked)."""
    for f in frames[i + 1:]:
        name = _name(f)
        if name and not (skip_runtime and name.startswith("runtime.")):
            return name
    return None


def find_go_crash(frames: Sequence[Frame]) -> Optional[GoCrash]:
    """The Go runtime's crash on the crashing thread's `frames`, or None when they show
    none (not a Go program, or not the runtime's crash path)."""
    names = [_name(f) for f in frames]
    if not any(n in _CRASH_PATH for n in names):
        return None
    crash = any(n in _GOTRACEBACK_CRASH for n in names)
    error = next((i for i, n in enumerate(names) if n in _RUNTIME_ERRORS or n.startswith("runtime.goPanicSlice")),
                 None)
    what, signal, classification = _RUNTIME_ERRORS.get(names[error], ("slice bounds out of range", None, "bounds")) \
        if error is not None else (None, None, None)
    if "runtime.sigpanic" in names:
        i = names.index("runtime.sigpanic")
        if error is None or error > i:
            throw = "runtime.throw" in names[:i]
            what, signal, classification = ("unexpected fault address" if throw else "fatal signal"), None, \
                "memory-fault"
        # The caller of sigpanic is the function that faulted (coredump.unwind.goruntime).
        return GoCrash(what, signal, _caller_of(frames, i, False), classification, crash)
    if error is not None:
        return GoCrash(what, None, _caller_of(frames, error, True), classification, crash)
    for entry, what, classification in _ENTRIES:
        if entry in names:
            i = names.index(entry)
            return GoCrash(what, None, _caller_of(frames, i, entry in _SKIP_RUNTIME), classification, crash)
    return GoCrash("fatal signal", None, None, "fatal-signal", crash)


def describe_go_crash(go: GoCrash, core_signal: str) -> str:
    """The reason: ``Go runtime: nil pointer dereference (SIGSEGV) in main.fill, re-raised as
    SIGABRT by the runtime (GOTRACEBACK=crash)``."""
    signal = f" ({go.signal})" if go.signal else ""
    where = f" in {go.where}" if go.where else ""
    how = " (GOTRACEBACK=crash)" if go.gotraceback_crash else ""
    return f"Go runtime: {go.what}{signal}{where}, re-raised as {core_signal} by the runtime{how}"
