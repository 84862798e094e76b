"""
Stack walk
==========

The loop that turns a thread's registers into physical frames: it asks the architecture's
strategies for each caller and owns every rule that ends a stack (rust-minidump's
``walk_stack``, drgn's ``drgn_get_stack_trace``).
"""

from __future__ import annotations

import functools
import importlib
import time
from collections import deque

from coredump.dwarf.expr import ExpressionError
from coredump.elf.core import AT_ENTRY
from coredump.elf.memory import PF_X
from coredump.errors import MemoryFault
from coredump.model import Frame, Trust
from coredump.record import dataclass, field
from coredump.unwind.cfi import CfiError
from coredump.unwind.cfi_tables import CfiFormatError
from coredump.unwind.common import SIGNAL_HANDLER_CALLED, OutermostFrame, UnwindState, get_reader
from coredump.unwind.goruntime import called_sigpanic, heuristic_top_ranges, in_ranges, sigpanic_ranges

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, Iterator, List, Optional, Tuple

__all__ = ("WalkResult", "walk_thread", "MAX_FRAMES", "BOTTOM_FRAMES")

MAX_FRAMES = 1024
# Frames kept from the outermost end of a stack that hit the cap (main, _start, ...).
BOTTOM_FRAMES = 32
# Past the cap, walking on to the bottom is cheap but not free: stop after this much.
MAX_HIDDEN_FRAMES = 2_000_000
MAX_HIDDEN_SECONDS = 3.0
# How far above the entry point a pc may lie and still be in the entry function (glibc's
# _start is under 100 bytes; a pc further up is never looked up).
_ENTRY_FUNCTION_SPAN = 4096
# The first page is never mapped: a pc there is a corrupt return address (rust-minidump).
MIN_PC = 4096

# What a strategy may raise to say "not me, try the next one".
_STRATEGY_ERRORS = (MemoryFault, ExpressionError, CfiError, CfiFormatError, KeyError, OverflowError)

_ARCH_MODULES = {"x86_64": "coredump.unwind.x86_64", "aarch64": "coredump.unwind.aarch64"}


@dataclass(frozen=True)
class WalkResult:
    """A thread's physical frames, innermost first. When the stack hit the frame cap,
    ``frames`` holds the top frames then the bottom ones, ``frames_omitted`` counts the
    frames between them and ``truncated`` is set."""

    frames: Tuple[Frame, ...]
    truncated: bool = False
    frames_omitted: int = 0
    warnings: List[str] = field(default_factory=list)


def _unwinder(arch_name: str):
    name = _ARCH_MODULES.get(arch_name)
    if name is None:
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def walk_thread(target, registers: Dict[str, int], max_frames: int = MAX_FRAMES,
                deadline: Optional[float] = None, hidden_seconds: Optional[float] = None) -> WalkResult:
    """The physical frames of the thread whose registers (by name) the core holds.

    Frame 0 has trust ``context``; each caller carries the trust of the strategy that
    found it. Abnormal ends of the walk are reported in ``warnings``. At `deadline` (a
    ``time.monotonic()``, the analysis' budget: ``coredump.unwind.budget``) the walk stops
    where it is; past the cap it walks on for `hidden_seconds` (at most MAX_HIDDEN_SECONDS)."""
    arch = target.arch
    pc = registers.get(arch.pc)
    if pc is None:
        return WalkResult((), warnings=["no program counter in the thread's registers"])
    first = UnwindState(pc, dict(registers), Trust.CONTEXT)
    if max_frames <= 1:  # frame 0 alone (a thread past the analysis' budget): no caller is looked for
        return WalkResult((first.to_frame(0, arch.sp),), True, 0, ["stack walk cut at the cap of 1 frames"])
    unwinder = _unwinder(arch.name)
    if unwinder is None:
        return WalkResult((first.to_frame(0, arch.sp),), warnings=[f"no unwinder for {arch.name}"])
    warnings: List[str] = []
    states = _iter_states(target, unwinder, first, warnings)
    max_frames = max(1, max_frames)
    deadline = float("inf") if deadline is None else deadline
    top: List[UnwindState] = []
    for state in states:
        top.append(state)
        if len(top) > max_frames:
            break
        if not len(top) & 0xFF and time.monotonic() > deadline:
            warnings.append(f"stack walk stopped at frame {len(top) - 1}: the analysis' unwinding time is spent")
            return WalkResult(_materialize(enumerate(top), arch.sp), True, 0, warnings)
    else:
        return WalkResult(_materialize(enumerate(top), arch.sp), warnings=warnings)
    hidden = MAX_HIDDEN_SECONDS if hidden_seconds is None else min(MAX_HIDDEN_SECONDS, hidden_seconds)
    return _truncated(top, states, max_frames, arch.sp, warnings, min(deadline, time.monotonic() + hidden))


def _truncated(top, states: Iterator[UnwindState], max_frames: int, sp_name: str,
               warnings: List[str], deadline: float) -> WalkResult:
    """Past the cap: walk on to the outermost frames without building frames for the
    ones between, within a bounded amount of work. A cap too small to keep bottom frames
    (frame 0 alone: a thread past the analysis' budget) walks on no further."""
    keep_bottom = min(BOTTOM_FRAMES, max_frames // 4)
    keep_top = max_frames - keep_bottom
    if not keep_bottom:
        warnings.append(f"stack walk cut at the cap of {max_frames} frames")
        return WalkResult(_materialize(enumerate(top[:max_frames]), sp_name), True, 0, warnings)
    bottom = deque(top[keep_top:], maxlen=keep_bottom)
    count = len(top)
    reached_bottom = True
    for state in states:
        bottom.append(state)
        count += 1
        if not count & 0x3FF and (count > MAX_HIDDEN_FRAMES or time.monotonic() > deadline):
            reached_bottom = False
            break
    if not reached_bottom:
        omitted = count - max_frames
        warnings.append(f"stack walk stopped after {count} frames without reaching the outermost frame")
        frames = _materialize(enumerate(top[:max_frames]), sp_name)
        return WalkResult(frames, True, omitted, warnings)
    omitted = count - keep_top - len(bottom)
    warnings.append(f"{count} frames: {omitted} frames omitted between frame {keep_top - 1} "
                    f"and frame {count - len(bottom)}")
    indexed = list(enumerate(top[:keep_top])) + list(enumerate(bottom, start=count - len(bottom)))
    return WalkResult(_materialize(indexed, sp_name), True, omitted, warnings)


def _materialize(indexed, sp_name: str) -> Tuple[Frame, ...]:
    return tuple(state.to_frame(i, sp_name) for i, state in indexed)


class _Executable:
    """``memory.is_executable`` remembering the last code segment: a deep stack returns
    into the same few functions."""

    def __init__(self, memory):
        self.memory = memory
        self.start = self.end = 0

    def __call__(self, address: int) -> bool:
        if self.start <= address < self.end:
            return True
        seg = self.memory.find_segment(address)
        if seg is None or not seg.p_flags & PF_X:
            return False
        self.start, self.end = seg.p_vaddr, seg.end
        return True


def _iter_states(target, unwinder, state: UnwindState, warnings: List[str]) -> Iterator[UnwindState]:
    """Frames from `state` outward until a stop rule ends the stack."""
    reader = get_reader(target)
    arch = target.arch
    is_executable = _Executable(target.memory)
    in_entry_function = _EntryFunction(target)
    go_sigpanic = sigpanic_ranges(target)  # empty unless a module is a Go program
    go_top = heuristic_top_ranges(target)
    index = 0
    yield state
    while True:
        if in_entry_function(state):
            return
        caller, why = _find_caller(unwinder, state, target, reader, is_executable)
        if caller is None:
            if why:
                warnings.append(f"frame {index} (pc {state.pc:#x}): {_stack_missing(target, state, arch) or why}")
            return
        if go_top and caller.trust in (Trust.FP, Trust.SCAN) and in_ranges(go_top, state.lookup_pc):
            return  # the Go runtime's top frames (goruntime): only CFI may lead past them
        stop, keep, why = _stop_rule(state, caller, is_executable, arch)
        if caller.trust == Trust.SIGNAL:
            # The frame that found an interrupted context is the sigreturn trampoline.
            state.function = SIGNAL_HANDLER_CALLED
        elif go_sigpanic and caller.trust in (Trust.CFI, Trust.FP) and called_sigpanic(target, state.lookup_pc):
            # Go: the caller of runtime.sigpanic was interrupted by the fault (goruntime); a
            # word found by scanning is no such evidence.
            caller.trust = Trust.SIGNAL
        if keep:
            index += 1
            yield caller
        if stop:
            if why:
                warnings.append(f"frame {index} (pc {caller.pc:#x}): {why}")
            return
        state = caller


class _EntryFunction:
    """gdb's "backtrace past-entry off" rule (frame.c get_prev_frame, inside_entry_func): the
    function that starts at the program's entry point (AT_ENTRY, e.g. ``_start``) is the
    outermost frame, whatever a frame-pointer or scanning strategy would find above it. When
    no symbol names the function at pc, the rule does not apply (as in gdb)."""

    def __init__(self, target):
        self.entry = target.core.get_auxv(AT_ENTRY)
        self.find_module = target.find_module

    def __call__(self, state: UnwindState) -> bool:
        if not self.entry or state.function == SIGNAL_HANDLER_CALLED:
            return False
        pc = state.lookup_pc
        # A function holding pc starts at or below it: only a pc just above the entry can qualify.
        if not self.entry <= pc < self.entry + _ENTRY_FUNCTION_SPAN:
            return False
        mod = self.find_module(pc)
        return mod is not None and mod.function_start(pc) == self.entry


def _stack_missing(target, state: UnwindState, arch) -> Optional[str]:
    """The real reason a walk ends in a truncated core: the stack at sp is not in it."""
    sp = state.regs.get(arch.sp)
    if sp is None or not target.core.truncated:
        return None
    try:
        target.memory.read(sp, 8)
    except MemoryFault:
        return f"the stack at {sp:#x} is not in the core (the core is truncated)"
    return None


def _into_module(strategy, state: UnwindState, target, reader) -> Optional[UnwindState]:
    caller = strategy(state, target, reader)
    if caller is None or target.find_module(caller.pc) is None or not target.memory.is_executable(caller.pc):
        return None
    return caller


def _find_caller(unwinder, state: UnwindState, target, reader,
                 is_executable) -> Tuple[Optional[UnwindState], Optional[str]]:
    """(caller, None), or (None, why the stack ends abnormally) or (None, None) at its end."""
    strategies = unwinder.STRATEGIES
    if state.trust in (Trust.CONTEXT, Trust.SIGNAL) and not is_executable(state.pc):
        # An interrupted pc outside code: a call through a bad pointer (drgn's bad_call_unwind).
        strategies = (unwinder.BAD_CALL,) + tuple(strategies)
    elif state.trust in (Trust.CONTEXT, Trust.SIGNAL) and target.is_jit_code(state.pc):
        # JIT code: no file, so no CFI. gdb takes a function it cannot find as frameless
        # (amd64_frame_cache: the return address at [sp]; aarch64: in x30), and so does this
        # first try, where that address returns into a module's code.
        strategies = (functools.partial(_into_module, unwinder.BAD_CALL),) + tuple(strategies)
    for strategy in strategies:
        try:
            caller = strategy(state, target, reader)
        except OutermostFrame:
            return None, None
        except _STRATEGY_ERRORS:
            continue
        if caller is not None:
            return caller, None
    if state.trust in (Trust.FP, Trust.SCAN):
        return None, None  # a heuristic chain that runs out is the expected end
    return None, "no caller found (no CFI, frame pointer or return address on the stack)"


def _stop_rule(callee: UnwindState, caller: UnwindState, is_executable,
               arch) -> Tuple[bool, bool, Optional[str]]:
    """(stop after this caller, keep the caller, warning) for a caller a strategy found."""
    pc, sp, callee_sp = caller.pc, caller.regs.get(arch.sp), callee.regs.get(arch.sp)
    if pc == 0:
        return True, False, None  # a zero return address ends a stack
    if pc < MIN_PC:
        return True, False, f"caller pc {pc:#x} is in the first page"
    if sp is None or callee_sp is None:
        return True, False, "caller's stack pointer is unknown"
    if caller.trust != Trust.SIGNAL:
        # An interrupted context may lie anywhere (sigaltstack); everything else lies above.
        pc_changed_leaf = callee.trust == Trust.CONTEXT and sp == callee_sp and pc != callee.pc
        if sp < callee_sp or (sp == callee_sp and not pc_changed_leaf):
            return True, False, f"stack pointer did not increase ({sp:#x} after {callee_sp:#x})"
    if not is_executable(pc):
        # CFI and signal contexts are reliable enough to show where they lead; a
        # frame-pointer guess that leaves code is dropped.
        keep = caller.trust in (Trust.CFI, Trust.SIGNAL)
        stop = caller.trust != Trust.SIGNAL
        return stop, keep, None if not stop else f"pc {pc:#x} is not in an executable mapping"
    return False, True, None
