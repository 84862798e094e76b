"""
Frame values
============

Every symbolized frame's arguments (and, for the crashing thread's top frames, its locals),
read from the DWARF of the module holding the frame, with the registers the unwinder knows
for that frame: all of them in frame 0 and signal frames, the callee-saved ones CFI restored
(and sp, pc) in callers. A register the frame does not know makes its values
``<optimized out>``, as gdb prints them, never a stale value from an inner frame.

What the DIEs say about a pc (``coredump.dwarf.variables`` plans) is memoized in the parse
cache per file and pc, so a second analysis of a crash reads registers and memory only.
Reading values has a budget per analysis (``ValuesBudget``): past it, frames keep no values
and one warning says so.
"""

from __future__ import annotations

import time

from coredump.dwarf.cache import code_tag, frames_memo
from coredump.dwarf.entry_values import entry_value, find_call_site
from coredump.dwarf.expr import ExpressionError, LocationContext, Piece, RegisterUnknown, evaluate_location
from coredump.dwarf.simple_locations import evaluate_simple
from coredump.dwarf.types import TypeInfo
from coredump.dwarf.values import format_value
from coredump.dwarf.variables import (
    frame_base_expression,
    function_entry,
    plan_entry_registers,
    plan_locals,
    plan_parameters,
)
from coredump.dwarf.varvalue import read_planned
from coredump.errors import MemoryFault
from coredump.memo import OwnerMemo
from coredump.model import Trust, Variable
from coredump.record import replace

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Optional, Sequence, Tuple

__all__ = ("ValuesBudget", "add_values", "variable_locations", "MAX_VALUES", "VALUES_TIME_BUDGET", "LOCALS_FRAMES")

# Values read per analysis (a thousand threads of 30 frames with 3 arguments each is 90,000).
MAX_VALUES = 20_000
# Seconds of value reading per analysis; a usual crash needs a few milliseconds.
VALUES_TIME_BUDGET = 2.0
# Physical frames of the crashing thread whose locals are listed (gdb's bt full lists all).
LOCALS_FRAMES = 5
# System V x86_64 psABI Figure 3.36, DWARF register numbers 17-32: xmm0-xmm15.
_X86_64_XMM = {17 + n: f"xmm{n}" for n in range(16)}
# Callers followed for an entry value that is itself an entry value of the caller.
MAX_ENTRY_DEPTH = 8
# Pointer targets' names kept per analysis (a hostile core's pointers point anywhere).
MAX_POINTED = 65_536
_POINTED = OwnerMemo(MAX_POINTED)
# Entry values kept per frame (hostile DWARF may ask for any number of blocks).
MAX_ENTRY_BLOCKS = 64
# The modules whose rules shape a plan: the memo's entries name their code (dwarf.cache).
_PLAN_MODULES = ("coredump.dwarf.variables", "coredump.dwarf.types", "coredump.dwarf.locations",
                 "coredump.dwarf.index", "coredump.dwarf.inline", "coredump.dwarf.callsites")


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


def add_values(target, frames: Sequence, budget: ValuesBudget, locals_frames: int = 0,
               vector: Optional[dict] = None) -> Tuple:
    """The frames with ``args`` (and ``locals`` for the first `locals_frames` physical ones);
    `vector`: the thread's NT_PRFPREG registers (xmm0..15), known in its frame 0 only (the
    psABI makes them caller-saved: no caller's value survives)."""
    out = list(frames)
    start, physical = 0, 0
    for i, frame in enumerate(out):
        if frame.inline:
            continue
        if not budget.allows():
            break
        began = time.monotonic()
        try:
            _group_values(target, out, start, i, budget, physical < locals_frames, vector)
        finally:
            budget.spent += time.monotonic() - began
        start, physical = i + 1, physical + 1
    return tuple(out)


def _group_values(target, out: List, start: int, end: int, budget: ValuesBudget, with_locals: bool,
                  vector: Optional[dict] = None) -> None:
    """Values of the physical frame out[end] and the inline frames out[start:end] before it."""
    found = _group_plan(target, out, end, with_locals, vector)
    if found is None or found[0] != end - start + 1:
        return  # no DWARF, or it does not name these frames (a symbol-table name): no values
    count, params, entry_regs, local_plans, make_context, entry = found

    def symbolize(address: int) -> Optional[str]:
        return _symbol_at(target, address)

    for k, scope_params in enumerate(params):
        frame = out[start + k]
        args = tuple(read_planned(p, make_context, symbolize) for p in scope_params)
        if k == count - 1 and entry_regs:
            args = tuple(entry.with_entry(a, p, reg, symbolize) for a, p, reg in zip(args, scope_params, entry_regs))
        local = tuple(read_planned(p, make_context, symbolize, full=True) for p in local_plans[k]) \
            if local_plans is not None else None
        budget.read += len(args) + len(local or ())
        out[start + k] = replace(frame, args=args, locals=local)


def _group_plan(target, out: List, end: int, with_locals: bool, vector: Optional[dict]):
    """(source-level frames, parameter plans per frame, entry registers of the function's
    parameters, local plans or None, the context factory, the entry values) of the physical
    frame out[end]; None where nothing can be read there."""
    phys = out[end]
    if phys.jit or phys.trust == Trust.SCAN:
        # Code no file backs has no DWARF; a frame found by stack scanning has only a guess
        # of a return address and no CFA to trust: a value read there could be wrong.
        return None
    module = target.find_module(phys.lookup_pc)
    dwarf = module.dwarf if module is not None and module.trusted else None
    plan = _plan(dwarf, phys.lookup_pc - module.bias, "args") if dwarf is not None else None
    if plan is None:
        return None
    count, base_expr, params, entry_regs = plan
    local_plans = _plan(dwarf, phys.lookup_pc - module.bias, "locals") if with_locals else None
    registers, cfa = phys.registers or {}, phys.cfa
    if vector and phys.trust == Trust.CONTEXT:
        registers = {**registers, **vector}
    if phys.tailcall:
        # gdb's TAILCALL_FRAME is named after the innermost function at its pc; its registers
        # are the ones CFI restored for the physical caller (the callee preserved them since
        # the jump), without pc, sp and a CFA of its own (gdb/dwarf2/frame-tailcall.c).
        entry_regs = entry_regs if count == 1 else ()
        count, params = 1, params[:1]
        local_plans = local_plans[:1] if local_plans is not None else None
        registers, cfa = _caller_registers(target.arch, out, end), None
    entry = _EntryValues(target, out, end)
    return (count, params, entry_regs, local_plans,
            _context_factory(target, registers, cfa, base_expr, entry.value, module.bias), entry)


class _EntryValues:
    """The entry values of physical frame frames[end], from the call site in the frame
    after it (coredump.dwarf.entry_values), found and evaluated on first use."""

    def __init__(self, target, frames: Sequence, end: int, depth: int = 0):
        self.target, self.frames, self.end, self.depth = target, frames, end, depth
        self._site = self._context = None
        self._looked = False
        self._known: dict = {}  # DW_OP_entry_value block -> the value found for it

    def _lookup(self) -> None:
        if self._looked:
            return
        self._looked = True
        at = next((i for i in range(self.end + 1, len(self.frames)) if not self.frames[i].inline), None)
        if at is None:
            return
        caller = self.frames[at]
        self._site = find_call_site(self.target, self.frames[self.end], caller)
        if self._site is None:
            return
        module = self.target.find_module(caller.lookup_pc)
        plan = _plan(module.dwarf, caller.lookup_pc - module.bias, "args")
        registers, cfa = caller.registers or {}, caller.cfa
        if caller.tailcall:
            registers, cfa = _caller_registers(self.target.arch, self.frames, at), None
        # A DW_AT_call_value may itself be an entry value of the caller (gdb follows them too).
        outer = _EntryValues(self.target, self.frames, at, self.depth + 1).value if self.depth < MAX_ENTRY_DEPTH \
            else None
        self._context = _context_factory(self.target, registers, cfa, plan[1] if plan else None, outer, module.bias)

    def value(self, block: bytes) -> int:
        """DW_OP_entry_value's callback (KeyError: not known)."""
        known = self._known.get(block)
        if known is not None:
            return known
        self._lookup()
        found = entry_value(self._site, block, self._context)
        if len(self._known) < MAX_ENTRY_BLOCKS:
            # A parameter's entry value is asked for its location and for its name@entry:
            # the call site and the caller's registers are this frame's, its value one.
            self._known[block] = found
        return found

    def with_entry(self, arg: Variable, plan: tuple, regno: Optional[int], symbolize) -> Variable:
        """`arg` with its value at entry (gdb's ``name@entry``) where the call site gives it."""
        vtype = TypeInfo.from_data(plan[1])
        if regno is None or not vtype.is_scalar or vtype.kind == "reference" or regno > 31:
            return arg
        try:
            raw = self.value(bytes([0x50 + regno]))  # DW_OP_reg<regno>
            text, _ = format_value(vtype, raw.to_bytes(8, "little"), self.target.memory, symbolize)
        except (KeyError, ExpressionError, MemoryFault, ValueError, OverflowError):
            return arg
        return replace(arg, entry=text)


def variable_locations(target, frames: Sequence) -> List[Tuple[str, Piece]]:
    """(name, where it is) of the variables of the first physical frame of `frames` and of
    the inline frames in it, innermost first, parameters before locals: a register
    (DW_OP_regN: the register holds the variable at this pc) or a memory address. What has
    no single such location is left out."""
    end = next((i for i, f in enumerate(frames) if not f.inline), None)
    if end is None or frames[end].jit or frames[end].tailcall:
        return []
    phys = frames[end]
    module = target.find_module(phys.lookup_pc)
    dwarf = module.dwarf if module is not None and module.trusted else None
    pc = phys.lookup_pc - module.bias if dwarf is not None else 0
    plan = _plan(dwarf, pc, "args") if dwarf is not None else None
    local_plans = _plan(dwarf, pc, "locals") if plan is not None else None
    if plan is None or plan[0] != end + 1 or local_plans is None:
        return []
    entry = _EntryValues(target, frames, end)
    make_context = _context_factory(target, phys.registers or {}, phys.cfa, plan[1], entry.value, module.bias)
    out = []
    for variables in (p + v for p, v in zip(plan[2], local_plans)):
        for name, _type, source, payload in variables:
            if source != "loc":
                continue
            try:
                pieces = evaluate_location(payload, make_context())
            except (ExpressionError, MemoryFault, KeyError, ValueError, OverflowError):
                continue  # a value the location cannot reach names nothing
            if len(pieces) == 1 and pieces[0].kind in ("register", "memory"):
                out.append((name, pieces[0]))
    return out


def _plan(dwarf, pc: int, what: str):
    """What the DIEs say about the frames at image address `pc`: for ``args``, (the number
    of source-level frames, DW_AT_frame_base's expression, the parameter plans per frame);
    for ``locals``, the local variables' plans per frame. None where no DWARF names the pc."""
    # 201 threads stand at a handful of pcs: a plan is made once per analysis (a limit
    # that cut it aside), whatever the parse cache holds.
    mine = dwarf.plans.get((what, pc))
    if mine is not None:
        return mine or None
    memo = frames_memo(dwarf.image, dwarf.supplementary, f"{what}.2-{code_tag(_PLAN_MODULES)}")
    hit = memo.get(pc)
    if hit is not None:
        dwarf.plans[(what, pc)] = hit
        return hit or None
    cuts = dwarf.cuts
    scopes = dwarf.find_scopes(pc)
    if not scopes:
        found = False
    elif what == "args":
        entry = function_entry(scopes[-1])
        found = (len(scopes), frame_base_expression(scopes[-1], pc),
                 tuple(plan_parameters(s, pc, entry) for s in scopes), plan_entry_registers(scopes[-1]))
    else:
        entry = function_entry(scopes[-1])
        found = tuple(plan_locals(s, pc, entry) for s in scopes)
    if dwarf.cuts == cuts:
        memo.add(pc, found)  # a plan a DWARF limit cut is not kept: a later analysis retries
        dwarf.plans[(what, pc)] = found
    return found or None


def _caller_registers(arch, frames: Sequence, tail: int) -> dict:
    """The registers of the physical frame after the tail-call frame `tail`, less pc and sp."""
    caller = next((f for f in frames[tail + 1:] if not f.inline and not f.tailcall), None)
    if caller is None or caller.jit or arch is None:
        return {}
    return {name: value for name, value in (caller.registers or {}).items() if name not in (arch.pc, arch.sp)}


def _context_factory(target, regs, cfa: Optional[int], base_expr: Optional[bytes], entry=None, bias: int = 0):
    """A function making the frame's LocationContext (its frame base read once, on demand)."""
    names = target.arch.dwarf_regs if target.arch is not None else {}
    vector = _X86_64_XMM if target.arch is not None and target.arch.name == "x86_64" else {}

    def get_register(regno: int) -> int:
        return regs[names.get(regno) or vector[regno]]

    cache: dict = {}

    def frame_base() -> int:
        if "base" not in cache:
            cache["base"] = _frame_base(base_expr, LocationContext(target.memory, get_register, None, cfa, None, bias))
        return cache["base"]

    # One context serves all the frame's variables: it is frozen, and its frame base is
    # read once (a context per variable was a tenth of reading the values of 200 threads).
    context = LocationContext(target.memory, get_register, frame_base, cfa, entry, bias)
    return lambda: context


def _frame_base(expr: Optional[bytes], ctx: LocationContext) -> int:
    """DW_AT_frame_base (DWARF 5 §3.3.5): a memory location's address (gcc's
    DW_OP_call_frame_cfa), or a register's contents (DW_OP_reg6 in older gcc)."""
    if expr is None:
        raise ExpressionError("no DW_AT_frame_base at this pc")
    if ctx.cfa is None and expr == b"\x9c":
        raise RegisterUnknown("the frame's CFA is not known")  # DW_OP_call_frame_cfa in a tail-call frame
    piece = evaluate_simple(expr, ctx)[0]
    if piece.kind == "memory":
        return piece.value
    if piece.kind == "register":
        return ctx.get_register(piece.value)
    if piece.kind == "value":
        return piece.value
    raise ExpressionError(f"DW_AT_frame_base is a {piece.kind} location")


def _symbol_at(target, address: int) -> Optional[str]:
    """gdb's ``<symbol+offset>`` after a pointer into a function (``print symbol``)."""
    # The threads' pointers name a few places (2,004 addresses of 9,171 pointers on the
    # 200-thread python core): each is looked up once per analysis.
    return _POINTED.get(target, address, lambda: _find_symbol_at(target, address))


def _find_symbol_at(target, address: int) -> Optional[str]:
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
