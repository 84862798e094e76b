"""
Signature rules
===============

The ordered steps that turn a crashing thread's frames into a signature, in the manner of
Socorro's ``socorro/signature/rules.py`` (see ``siglists/README.md``).
"""

from __future__ import annotations

from coredump.model import Crash
from coredump.record import dataclass, field
from coredump.triage.sigframes import SigFrame
from coredump.triage.siglist import read_lines

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Optional, Sequence, Tuple

__all__ = ("SignatureState", "Rule", "RULES", "SentSignalRule", "ExceptionTypeRule", "SentinelRule",
           "SkipTopRule", "TestInvokerRule", "DropNoiseRule", "CollapseRecursionRule", "CollapseCycleRule",
           "TruncateRule", "SIGNATURE_DEPTH")

# How many relevant frames a signature names (apport's crash_signature uses five; three
# tell bugs apart in practice and survive refactorings of the callers better).
SIGNATURE_DEPTH = 3
# Signals a process can get from others; the signature says when one was sent, not raised.
_SENT_CODES = {0: "kill", -1: "sigqueue", -6: "tkill"}
# Mutual recursion: cycles of up to 8 functions, seen at least 3 times over.
MAX_CYCLE_PERIOD = 8
MIN_CYCLE_REPEATS = 3


@dataclass
class SignatureState:
    """What the rules work on: the crash, the frames left, the head and notes so far."""

    crash: Crash
    frames: List[SigFrame]
    head: str
    notes: List[str] = field(default_factory=list)
    fallback: bool = False
    exception: Optional[str] = None
    mark: Optional[str] = None


class Rule:
    """A step of signature generation (Socorro's ``Rule``): ``action`` runs when
    ``predicate`` holds and edits the state in place."""

    def predicate(self, state: SignatureState) -> bool:
        return True

    def action(self, state: SignatureState) -> None:
        raise NotImplementedError


class SentSignalRule(Rule):
    """A signal sent by another process is not a fault of the code it interrupted: the head
    says so (``SIGSEGV (kill)``), so it never shares a fingerprint with a real SIGSEGV there."""

    def predicate(self, state):
        s = state.crash.signal
        return s.code in _SENT_CODES and s.sender_pid not in (None, state.crash.process.pid)

    def action(self, state):
        state.head = f"{state.head} ({_SENT_CODES[state.crash.signal.code]})"


class ExceptionTypeRule(Rule):
    """An uncaught C++ exception's type is part of the bug: ``throw std::out_of_range`` and
    ``throw MyErr`` from one function are two bugs, so the head names the type
    (``SIGABRT (std::out_of_range)``). apport's crash signature does the same with a Python
    exception's class. The what() text is left out: it often holds data (a path, an index)."""

    def predicate(self, state):
        return bool(state.exception)

    def action(self, state):
        state.head = f"{state.head} ({' '.join(state.exception.split())})"


class SentinelRule(Rule):
    """Socorro's signature sentinels: a frame that is known to be where a bug shows itself
    (a pure virtual call) becomes the top; the runtime's frames above it are dropped."""

    def action(self, state):
        names = [f.function for f in state.frames]
        for sentinel in read_lines("sentinel_frames.txt"):
            if sentinel in names:
                state.frames = state.frames[names.index(sentinel):]
                return


class SkipTopRule(Rule):
    """The frames on top that are the crash's machinery (abort, raise, __assert_fail,
    malloc_printerr, __cxa_throw, std::terminate, the signal trampoline) or that lie in the
    C/C++ runtime's libraries, named or not, are not the bug: skip to the first other one.
    So is a frame outside every module: the address a bad jump or call went to."""

    def predicate(self, state):
        return bool(state.frames)  # no frames: nothing to skip, nothing to note

    def action(self, state):
        for i, f in enumerate(state.frames):
            # A frame in no module with no name is where a bad jump landed, not code.
            if not (f.is_irrelevant or f.is_system or f.is_tail or (f.module is f.function is None)):
                if i:
                    state.frames = state.frames[i:]
                return
        state.notes.append("every frame is in the C runtime; the signature names its frames")
        named = [f for f in state.frames if f.function and not f.is_tail]
        state.frames = named or state.frames
        state.fallback = True


class TestInvokerRule(Rule):
    """A test framework's generated caller of a test's body is the framework's, not the
    bug's: Boost.Test's ``BOOST_AUTO_TEST_CASE(name)`` defines ``name::test_method`` and calls
    it from ``name_invoker`` (``BOOST_AUTO_TC_INVOKER``, boost/test/unit_test_suite.hpp), a
    template test case ``name<T>::test_method`` from ``name_invoker::run<T>``, all in the test
    suite's namespace. Below the body everything is the runner, as below a tail frame: drop it."""

    def action(self, state):
        for i in range(1, len(state.frames)):
            above, name = state.frames[i - 1].function or "", state.frames[i].function or ""
            if not above.endswith("::test_method"):
                continue
            invoker = above[:-len("::test_method")].removesuffix("<T>") + "_invoker"
            if name == invoker or name.startswith(invoker + "::run"):
                state.frames = state.frames[:i]
                return


class DropNoiseRule(Rule):
    """Below the top, runtime frames (qsort between a comparator and its caller, the signal
    trampoline between a handler and the interrupted code) and program-start frames change
    with libc's version and debug symbols: drop them. Below the first program-start frame
    everything is start-up code (Rust's ``lang_start`` and the frames std inlined into it,
    which only a build with debug info shows): drop it all."""

    def predicate(self, state):
        return len(state.frames) > 1 and not state.fallback

    def action(self, state):
        rest = []
        for f in state.frames[1:]:
            if f.is_tail:
                break
            if not (f.is_irrelevant or f.is_system):
                rest.append(f)
        state.frames = state.frames[:1] + rest


class CollapseRecursionRule(Rule):
    """Direct recursion repeats one frame hundreds of times, a number that depends on the
    build's frame size: a run of equal frames counts once."""

    def action(self, state):
        out: List[SigFrame] = []
        for f in state.frames:
            if not out or out[-1].key != f.key:
                out.append(f)
        state.frames = out


class CollapseCycleRule(Rule):
    """Mutual recursion (``a`` calls ``b`` calls ``a`` …) that overflows the stack stops in
    whichever of them the guard page catches, a matter of the stack limit and the frames'
    sizes. When the frames from some point to the end of those considered repeat a cycle of
    period 2 to MAX_CYCLE_PERIOD at least MIN_CYCLE_REPEATS times, the cycle counts once,
    rotated to start at its lexically smallest rotation, and the signature says
    ``(mutual recursion)``. Frames above the cycle (a helper it called) stay."""

    def predicate(self, state):
        return len(state.frames) >= 2 * MIN_CYCLE_REPEATS

    def action(self, state):
        found = _find_cycle([f.key for f in state.frames])
        if found is None:
            return
        start, period = found
        cycle = state.frames[start:start + period]
        keys = [f.key for f in cycle]
        rotation = min(range(period), key=lambda i: [(m or "", t) for m, t in keys[i:] + keys[:i]])
        state.frames = state.frames[:start] + cycle[rotation:] + cycle[:rotation]
        state.mark = "mutual recursion"


def _find_cycle(keys: Sequence) -> Optional[Tuple[int, int]]:
    """(start, period) of the longest periodic tail of `keys` (period >= 2, repeated at
    least MIN_CYCLE_REPEATS times), or None."""
    best = None
    for period in range(2, MAX_CYCLE_PERIOD + 1):
        start = len(keys) - period
        while start > 0 and keys[start - 1] == keys[start - 1 + period]:
            start -= 1
        if len(keys) - start >= MIN_CYCLE_REPEATS * period and len(set(keys[start:start + period])) > 1:
            if best is None or start < best[0]:
                best = (start, period)
    return best


class TruncateRule(Rule):
    """A signature names SIGNATURE_DEPTH frames."""

    def action(self, state):
        state.frames = state.frames[:SIGNATURE_DEPTH]


RULES: Tuple[Rule, ...] = (SentSignalRule(), ExceptionTypeRule(), SentinelRule(), SkipTopRule(),
                           TestInvokerRule(), DropNoiseRule(), CollapseRecursionRule(), CollapseCycleRule(),
                           TruncateRule())
