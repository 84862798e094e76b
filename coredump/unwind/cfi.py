"""
Call frame information
======================

DWARF CFI for one module: the FDE covering a pc is found through ``.eh_frame_hdr``'s
binary-search table (or a lazily built index of ``.eh_frame`` / ``.debug_frame``), and only
that FDE and its CIE are decoded and run up to the pc (DWARF 5 §6.4, LSB Core "Exception Frames").
"""

from __future__ import annotations

import struct
import weakref

from coredump.dwarf.expr import ExpressionError, evaluate, read_sleb128, read_uleb128
from coredump.record import dataclass, field
from coredump.unwind.cfi_tables import CfiFormatError, Cie, Fde, ModuleTables
from coredump.unwind.common import OutermostFrame

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, Optional, Tuple

__all__ = (
    "CfiRow", "CfiError", "execute_cfa_program", "find_cfi_row", "cfi_row_at", "apply_row", "clear_caches",
    "UNDEFINED", "SAME_VALUE", "OFFSET", "VAL_OFFSET", "REGISTER", "EXPRESSION", "VAL_EXPRESSION",
)

MASK = (1 << 64) - 1

# Register rules of DWARF 5 §6.4.1.
UNDEFINED, SAME_VALUE, OFFSET, VAL_OFFSET, REGISTER, EXPRESSION, VAL_EXPRESSION = range(7)

# DWARF 5 §7.24, Table 7.29 "Call frame instruction encodings" (+ GNU extensions).
DW_CFA_advance_loc, DW_CFA_offset, DW_CFA_restore = 0x40, 0x80, 0xC0
DW_CFA_nop, DW_CFA_set_loc = 0x00, 0x01
DW_CFA_advance_loc1, DW_CFA_advance_loc2, DW_CFA_advance_loc4 = 0x02, 0x03, 0x04
DW_CFA_offset_extended, DW_CFA_restore_extended, DW_CFA_undefined = 0x05, 0x06, 0x07
DW_CFA_same_value, DW_CFA_register, DW_CFA_remember_state, DW_CFA_restore_state = 0x08, 0x09, 0x0A, 0x0B
DW_CFA_def_cfa, DW_CFA_def_cfa_register, DW_CFA_def_cfa_offset = 0x0C, 0x0D, 0x0E
DW_CFA_def_cfa_expression, DW_CFA_expression, DW_CFA_offset_extended_sf = 0x0F, 0x10, 0x11
DW_CFA_def_cfa_sf, DW_CFA_def_cfa_offset_sf, DW_CFA_val_offset = 0x12, 0x13, 0x14
DW_CFA_val_offset_sf, DW_CFA_val_expression = 0x15, 0x16
DW_CFA_GNU_window_save, DW_CFA_GNU_args_size, DW_CFA_GNU_negative_offset_extended = 0x2D, 0x2E, 0x2F

MAX_REMEMBERED = 64


class CfiError(Exception):
    """Malformed call frame instructions (the frame falls back to other strategies)."""


@dataclass(frozen=True)
class CfiRow:
    """One row of the CFI table (DWARF 5 §6.4.1), with registers named for the arch.

    ``cfa`` is ``(register, offset)`` or ``None`` with ``cfa_expr`` set; ``rules`` holds
    ``(register, rule, argument)``; ``ra`` names the return-address column."""

    cfa: Optional[Tuple[str, int]]
    cfa_expr: Optional[bytes]
    rules: Tuple[Tuple[str, int, object], ...]
    ra: str
    ra_undefined: bool
    signal: bool
    # apply_row's precomputed plan, per arch: (arch, plan); not part of the row's value.
    plan: Optional[tuple] = field(default=None, compare=False, repr=False)


class _State:
    __slots__ = ("cfa", "rules")

    def __init__(self, cfa=None, rules=None):
        self.cfa = cfa  # (regno, offset) or ("expr", bytes)
        self.rules: Dict[int, Tuple[int, object]] = dict(rules or {})

    def copy(self) -> _State:
        return _State(self.cfa, self.rules)


def execute_cfa_program(cie: Cie, fde: Optional[Fde], pc: int) -> _State:
    """The row for `pc`: the CIE's initial instructions, then the FDE's up to `pc`."""
    state = _State()
    _run(cie, cie.start, cie.end, state, None, 0, -1)
    if fde is not None:
        initial = state.copy()
        _run(cie, fde.start, fde.end, state, initial, fde.pc_begin, pc)
    return state


def _run(cie: Cie, pos: int, end: int, state: _State, initial: Optional[_State], loc: int, pc: int) -> None:
    """DWARF 5 §6.4.2: run the instructions in [pos, end) of the CIE's section while the
    location stays <= pc (pc < 0: to the end)."""
    remembered: list = []
    # Bounded by the entry, so an unterminated LEB128 cannot read the next entry.
    program = memoryview(cie.section.data)[:end]
    try:
        while pos < end:
            op = program[pos]
            delta, pos = _location_delta(cie, program, pos + 1, op, loc)
            if delta is None:
                pos = _run_one(op, program, pos, state, initial, cie.data_alignment_factor, remembered)
            elif pc >= 0 and loc + delta > pc:
                return
            else:
                loc += delta
    except (IndexError, struct.error, ExpressionError, CfiFormatError) as exc:
        raise CfiError(f"truncated call frame instructions ({exc})") from None


_ADVANCE = {DW_CFA_advance_loc1: struct.Struct("<B"), DW_CFA_advance_loc2: struct.Struct("<H"),
            DW_CFA_advance_loc4: struct.Struct("<I")}


def _location_delta(cie: Cie, program, pos: int, op: int, loc: int):
    """(how far the location moves, next position); (None, pos) for other instructions
    (DWARF 5 §6.4.2.1 "Row Creation Instructions")."""
    if op & 0xC0 == DW_CFA_advance_loc:
        return (op & 0x3F) * cie.code_alignment_factor, pos
    if op in _ADVANCE:
        fmt = _ADVANCE[op]
        return fmt.unpack_from(program, pos)[0] * cie.code_alignment_factor, pos + fmt.size
    if op == DW_CFA_set_loc:
        new_loc, pos = cie.read_pointer(program, pos)
        return new_loc - loc, pos
    return None, pos


def _restore(state: _State, initial: Optional[_State], regno: int) -> None:
    """DW_CFA_restore: the rule the CIE's initial instructions gave (none: drop it)."""
    rule = initial.rules.get(regno) if initial is not None else None
    if rule is None:
        state.rules.pop(regno, None)
    else:
        state.rules[regno] = rule


def _block(program, pos):
    size, pos = read_uleb128(program, pos)
    if pos + size > len(program):
        raise CfiError("expression block runs past the instructions")
    return bytes(program[pos:pos + size]), pos + size


def _run_one(op, program, pos, state: _State, initial, daf, remembered: list) -> int:
    """One instruction that does not move the location; returns the next position."""
    high = op & 0xC0
    if high == DW_CFA_offset:
        off, pos = read_uleb128(program, pos)
        state.rules[op & 0x3F] = (OFFSET, off * daf)
    elif high == DW_CFA_restore:
        _restore(state, initial, op & 0x3F)
    elif op == DW_CFA_remember_state:
        if len(remembered) >= MAX_REMEMBERED:
            raise CfiError("DW_CFA_remember_state nested too deep")
        remembered.append(state.copy())
    elif op == DW_CFA_restore_state:
        if not remembered:
            raise CfiError("DW_CFA_restore_state without remember_state")
        # The CFA is restored with the rules, as GCC's unwinder and gdb do.
        saved = remembered.pop()
        state.cfa, state.rules = saved.cfa, saved.rules
    elif op in (DW_CFA_nop, DW_CFA_GNU_window_save):
        pass
    elif op == DW_CFA_GNU_args_size:  # only for the personality routine
        pos = read_uleb128(program, pos)[1]
    elif op in _CFA_OPS:
        pos = _cfa_rule(op, program, pos, state, daf)
    else:
        pos = _register_rule(op, program, pos, state, initial, daf)
    return pos


_CFA_OPS = frozenset({DW_CFA_def_cfa, DW_CFA_def_cfa_sf, DW_CFA_def_cfa_register, DW_CFA_def_cfa_offset,
                      DW_CFA_def_cfa_offset_sf, DW_CFA_def_cfa_expression})


def _cfa_rule(op, program, pos, state: _State, daf) -> int:
    """DWARF 5 §6.4.2.2 "CFA Definition Instructions"."""
    if op == DW_CFA_def_cfa_expression:
        expr, pos = _block(program, pos)
        state.cfa = ("expr", expr)
    elif op in (DW_CFA_def_cfa_offset, DW_CFA_def_cfa_offset_sf):
        if op == DW_CFA_def_cfa_offset:
            off, pos = read_uleb128(program, pos)
        else:
            off, pos = read_sleb128(program, pos)
            off *= daf
        if state.cfa is None or state.cfa[0] == "expr":
            raise CfiError("DW_CFA_def_cfa_offset without a register CFA")
        state.cfa = (state.cfa[0], off)
    else:
        regno, pos = read_uleb128(program, pos)
        if op == DW_CFA_def_cfa:
            off, pos = read_uleb128(program, pos)
        elif op == DW_CFA_def_cfa_sf:
            off, pos = read_sleb128(program, pos)
            off *= daf
        else:  # DW_CFA_def_cfa_register: the offset stays (ill-formed after an expression)
            off = state.cfa[1] if state.cfa is not None and state.cfa[0] != "expr" else 0
        state.cfa = (regno, off)
    return pos


def _register_rule(op, program, pos, state: _State, initial, daf) -> int:
    """DWARF 5 §6.4.2.3 "Register Rule Instructions" with a ULEB128 register operand."""
    regno, pos = read_uleb128(program, pos)
    if op in (DW_CFA_offset_extended, DW_CFA_val_offset, DW_CFA_GNU_negative_offset_extended):
        off, pos = read_uleb128(program, pos)
        if op == DW_CFA_GNU_negative_offset_extended:
            off = -off
        state.rules[regno] = (VAL_OFFSET if op == DW_CFA_val_offset else OFFSET, off * daf)
    elif op in (DW_CFA_offset_extended_sf, DW_CFA_val_offset_sf):
        off, pos = read_sleb128(program, pos)
        state.rules[regno] = (OFFSET if op == DW_CFA_offset_extended_sf else VAL_OFFSET, off * daf)
    elif op == DW_CFA_restore_extended:
        _restore(state, initial, regno)
    elif op in (DW_CFA_undefined, DW_CFA_same_value):
        state.rules[regno] = (UNDEFINED if op == DW_CFA_undefined else SAME_VALUE, None)
    elif op == DW_CFA_register:
        other, pos = read_uleb128(program, pos)
        state.rules[regno] = (REGISTER, other)
    elif op in (DW_CFA_expression, DW_CFA_val_expression):
        expr, pos = _block(program, pos)
        state.rules[regno] = (EXPRESSION if op == DW_CFA_expression else VAL_EXPRESSION, expr)
    else:
        raise CfiError(f"unknown call frame instruction {op:#x}")
    return pos


def make_row(state: _State, cie: Cie, arch) -> Optional[CfiRow]:
    """Name the registers of a decoded row; None when its CFA needs a register we lack."""
    names = arch.dwarf_regs
    if state.cfa is None:
        return None
    if state.cfa[0] == "expr":
        cfa, cfa_expr = None, state.cfa[1]
    elif state.cfa[0] in names:
        cfa, cfa_expr = (names[state.cfa[0]], state.cfa[1]), None
    else:
        return None
    rules = []
    for regno, (kind, arg) in sorted(state.rules.items()):
        name = names.get(regno)
        if name is None:
            continue  # vector and other registers the walk does not track
        if kind == REGISTER:
            arg = names.get(arg)
            if arg is None:
                kind = UNDEFINED
        rules.append((name, kind, arg))
    ra_rule = state.rules.get(cie.return_address_register)
    ra = names.get(cie.return_address_register, arch.pc)
    ra_undefined = ra_rule is not None and ra_rule[0] == UNDEFINED
    return CfiRow(cfa, cfa_expr, tuple(rules), ra, ra_undefined, cie.signal)


_TABLES: Dict[tuple, ModuleTables] = {}
_ROWS: Dict[tuple, Optional[CfiRow]] = {}
MAX_CACHED_ROWS = 200_000


def _module_key(module) -> tuple:
    image = module.image
    if module.build_id:
        return (module.build_id, image.path)
    # No build-id: the image object itself (held, so its identity cannot be reused).
    return (None, image.path, image)


def find_cfi_row(module, pc: int, arch) -> Optional[CfiRow]:
    """The CFI row at runtime address `pc` of `module` (a ``LoadedModule``), or None.

    Rows are cached per (build-id or path, pc); tables are opened once per module."""
    if not module.trusted:
        return None
    key = _module_key(module)
    image_pc = pc - module.bias
    row_key = (key, image_pc)
    try:
        return _ROWS[row_key]
    except KeyError:
        pass
    tables = _TABLES.get(key)
    if tables is None:
        tables = _TABLES[key] = ModuleTables(module.image, module.debug_image)
    row = None
    found = tables.find_fde(image_pc)
    if found is not None:
        cie, fde = found
        try:
            row = make_row(execute_cfa_program(cie, fde, image_pc), cie, arch)
        except CfiError:
            row = None
    if len(_ROWS) >= MAX_CACHED_ROWS:
        _ROWS.clear()
    _ROWS[row_key] = row
    return row


def cfi_row_at(target, pc: int) -> Optional[CfiRow]:
    """``find_cfi_row`` for the module of `target` holding `pc`, remembered per target and
    pc: a deep recursion asks for the same few pcs tens of thousands of times."""
    global _MEMO_TARGET, _MEMO
    if _MEMO_TARGET is None or _MEMO_TARGET() is not target:
        try:
            _MEMO_TARGET = weakref.ref(target)
        except TypeError:  # a target that cannot be referenced weakly: no memo
            module = target.find_module(pc)
            return find_cfi_row(module, pc, target.arch) if module is not None else None
        _MEMO = {}
    try:
        return _MEMO[pc]
    except KeyError:
        pass
    module = target.find_module(pc)
    row = find_cfi_row(module, pc, target.arch) if module is not None else None
    if len(_MEMO) >= MAX_CACHED_ROWS:
        _MEMO.clear()
    _MEMO[pc] = row
    return row


_MEMO_TARGET: Optional[weakref.ref] = None
_MEMO: Dict[int, Optional[CfiRow]] = {}


def clear_caches() -> None:
    global _MEMO_TARGET
    _TABLES.clear()
    _ROWS.clear()
    _MEMO.clear()
    _MEMO_TARGET = None


_CALLEE_SAVED: Dict[str, Tuple[str, ...]] = {}


def _callee_saved(arch) -> Tuple[str, ...]:
    names = _CALLEE_SAVED.get(arch.name)
    if names is None:
        names = _CALLEE_SAVED[arch.name] = tuple(sorted(arch.callee_saved))
    return names


def apply_row(row: CfiRow, regs: Dict[str, int], reader, arch) -> Optional[Tuple[int, Dict[str, int]]]:
    """(CFA, caller's registers) by the rules of `row` (DWARF 5 §6.4.1); None when the
    return address cannot be known.

    Registers without a rule keep their value when the psABI makes them callee-saved and
    are unknown otherwise; the caller's sp is the CFA unless a rule says more.
    Raises ``OutermostFrame``, ``MemoryFault``, ``ExpressionError`` or ``KeyError``."""
    plan = row.plan
    if plan is None or plan[0] is not arch:
        plan = (arch, _plan(row, arch))
        object.__setattr__(row, "plan", plan)  # a cache on a frozen row, outside its value
    fast = plan[1]
    if fast is None:
        return _apply_general(row, regs, reader, arch)
    # The common row (every rule "saved at CFA + offset", a register CFA): no closures,
    # no rule dispatch. The same steps, in the same order, as _apply_general.
    if row.ra_undefined:
        raise OutermostFrame()
    cfa_reg, cfa_off, keep, sp, offsets, ra, pc = fast
    cfa = (regs[cfa_reg] + cfa_off) & MASK
    caller = {name: regs[name] for name in keep if name in regs}
    caller[sp] = cfa
    read_word = reader.read_word
    for name, off in offsets:
        caller[name] = read_word((cfa + off) & MASK)
    if ra not in caller:
        return None
    caller[pc] = caller[ra]
    return cfa, caller


def _plan(row: CfiRow, arch) -> Optional[tuple]:
    """The fast path's constants, or None when the row needs the general path."""
    if row.cfa is None or any(kind != OFFSET for _, kind, _ in row.rules):
        return None
    return (row.cfa[0], row.cfa[1], _callee_saved(arch), arch.sp,
            tuple((name, arg) for name, _, arg in row.rules), row.ra, arch.pc)


def _apply_general(row: CfiRow, regs: Dict[str, int], reader, arch) -> Optional[Tuple[int, Dict[str, int]]]:
    if row.ra_undefined:
        raise OutermostFrame()
    names = arch.dwarf_regs

    def get(regno: int) -> int:
        return regs[names[regno]]

    if row.cfa is not None:
        cfa = (regs[row.cfa[0]] + row.cfa[1]) & MASK
    else:
        cfa = evaluate(row.cfa_expr, reader, get)
    caller = {name: regs[name] for name in _callee_saved(arch) if name in regs}
    caller[arch.sp] = cfa
    for name, kind, arg in row.rules:
        if kind == OFFSET:
            caller[name] = reader.read_word((cfa + arg) & MASK)
        elif kind == VAL_OFFSET:
            caller[name] = (cfa + arg) & MASK
        elif kind == SAME_VALUE and name in regs:
            caller[name] = regs[name]
        elif kind == REGISTER and arg in regs:
            caller[name] = regs[arg]
        elif kind == EXPRESSION:
            caller[name] = reader.read_word(evaluate(arg, reader, get, (cfa,), cfa))
        elif kind == VAL_EXPRESSION:
            caller[name] = evaluate(arg, reader, get, (cfa,), cfa)
        else:
            caller.pop(name, None)
    if row.ra not in caller:
        return None
    caller[arch.pc] = caller[row.ra]
    return cfa, caller
