"""
Frame values
============

Every symbolized frame's arguments (and, for the crashing thread's top frames, its locals),
read from the DWARF of the module holding the frame, with the registers the unwinder knows
for that frame: all of them in frame 0 and signal frames, the callee-saved ones CFI restored
(and sp, pc) in callers. A register the frame does not know makes its values
``<optimized out>``, as gdb prints them, never a stale value from an inner frame.

Reading values has a budget per analysis (``ValuesBudget``): past it, frames keep no values
and one warning says so.
"""

from __future__ import annotations

import dataclasses
import time
from typing import List, Optional, Sequence, Tuple

from coredump.dwarf.expr import ExpressionError, LocationContext, evaluate_location
from coredump.dwarf.locations import location_at
from coredump.dwarf.variables import frame_locals, frame_parameters

__all__ = ("ValuesBudget", "add_values", "MAX_VALUES", "VALUES_TIME_BUDGET", "LOCALS_FRAMES")

# Values read per analysis (a thousand threads of 30 frames with 3 arguments each is 90,000).
MAX_VALUES = 20_000
# Seconds of value reading per analysis; a usual crash needs a few milliseconds.
VALUES_TIME_BUDGET = 2.0
# Physical frames of the crashing thread whose locals are listed (gdb's bt full lists all).
LOCALS_FRAMES = 5


class ValuesBudget:
    """The values one analysis may read; ``warning`` once it has cut in."""

    def __init__(self, max_values: int = MAX_VALUES, seconds: float = VALUES_TIME_BUDGET):
        self.max_values = max_values
        self.seconds = seconds
        self.read = 0
        self.spent = 0.0
        self.warning: Optional[str] = None

    def allows(self) -> bool:
        if self.warning is None and (self.read >= self.max_values or self.spent >= self.seconds):
            what = f"{self.max_values} values" if self.read >= self.max_values else f"{self.seconds:g} s"
            self.warning = f"values budget of {what} spent: later frames show no arguments"
        return self.warning is None


def add_values(target, frames: Sequence, budget: ValuesBudget, locals_frames: int = 0) -> Tuple:
    """The frames with ``args`` (and ``locals`` for the first `locals_frames` physical ones)."""
    out = list(frames)
    start, physical = 0, 0
    for i, frame in enumerate(out):
        if frame.inline:
            continue
        if not budget.allows():
            break
        began = time.monotonic()
        try:
            _group_values(target, out, start, i, budget, physical < locals_frames)
        finally:
            budget.spent += time.monotonic() - began
        start, physical = i + 1, physical + 1
    return tuple(out)


def _group_values(target, out: List, start: int, end: int, budget: ValuesBudget, with_locals: bool) -> None:
    """Values of the physical frame out[end] and the inline frames out[start:end] before it."""
    phys = out[end]
    if phys.jit:
        return  # a tail-call frame has no registers of its own: its values are unknown or in memory
    module = target.find_module(phys.lookup_pc)
    dwarf = module.dwarf if module is not None and module.trusted else None
    if dwarf is None:
        return
    pc = phys.lookup_pc - module.bias
    scopes = dwarf.find_scopes(pc)
    if len(scopes) != end - start + 1:
        return  # the DWARF does not name these frames (a symbol-table name): no values
    make_context = _context_factory(target, phys, scopes[-1], pc)

    def symbolize(address: int) -> Optional[str]:
        return _symbol_at(target, address)

    for k, scope in enumerate(scopes):
        frame = out[start + k]
        args = frame_parameters(scope, pc, make_context, symbolize)
        local = frame_locals(scope, pc, make_context, symbolize) if with_locals else None
        budget.read += len(args) + len(local or ())
        out[start + k] = dataclasses.replace(frame, args=args, locals=local)


def _context_factory(target, phys, subprogram, pc: int):
    """A function making the frame's LocationContext (its frame base read once, on demand)."""
    names = target.arch.dwarf_regs if target.arch is not None else {}
    regs = phys.registers or {}

    def get_register(regno: int) -> int:
        return regs[names[regno]]

    cache: dict = {}

    def frame_base() -> int:
        if "base" not in cache:
            cache["base"] = _frame_base(subprogram, pc, LocationContext(target.memory, get_register, None, phys.cfa))
        return cache["base"]

    def make() -> LocationContext:
        return LocationContext(target.memory, get_register, frame_base, phys.cfa)

    return make


def _frame_base(subprogram, pc: int, ctx: LocationContext) -> int:
    """DW_AT_frame_base at `pc` (DWARF 5 §3.3.5): a memory location's address (gcc's
    DW_OP_call_frame_cfa), or a register's contents (DW_OP_reg6 in older gcc)."""
    expr = location_at(subprogram, pc, "DW_AT_frame_base")
    if expr is None:
        raise ExpressionError("no DW_AT_frame_base at this pc")
    piece = evaluate_location(expr, ctx)[0]
    if piece.kind == "memory":
        return piece.value
    if piece.kind == "register":
        return ctx.get_register(piece.value)
    if piece.kind == "value":
        return piece.value
    raise ExpressionError(f"DW_AT_frame_base is a {piece.kind} location")


def _symbol_at(target, address: int) -> Optional[str]:
    """gdb's ``<symbol+offset>`` after a pointer into a function (``print symbol``)."""
    module = target.find_module(address)
    table = module.symtab if module is not None and module.trusted else None
    if table is None:
        return None
    try:
        hit = table.lookup(address - module.bias)
    except Exception:  # noqa: BLE001 - no name is better than no value
        return None
    if hit is None:
        return None
    name, offset = hit
    return f"{name}+{offset}" if offset else name
