"""
Entry values
============

What a register held when the function of a frame was entered, from its caller's
``DW_TAG_call_site_parameter`` (DWARF 5 §3.4.2): the parameter whose DW_AT_location names the
register gives the value as ``DW_AT_call_value``, an expression over the *caller's* frame at
the call. gdb reads them the same way (gdb/dwarf2/loc.c dwarf_expr_reg_to_entry_parameter):
for ``DW_OP_entry_value`` inside a location, and for ``name@entry`` in ``bt``.

The call site is the caller's at its return address, and it must name the callee's own
function (gdb: "DW_OP_entry_value resolving expects callee ... but the called frame is for
..."), by address or, for a declaration, by its symbol's address in any file; an indirect
call names nothing checkable, so it gives no entry value, as where the caller has no call
sites. Nor may the callee be able to reach itself through tail calls (gdb's
``func_verify_no_selftailcall``): each function its tail calls lead to must be known, by
DWARF, as a function starting at the called address; a tail call into code without DWARF
(a libc without its debug file) or through a register makes every entry value of the
callee unknown, as gdb prints it (``s=<optimized out>``).
"""

from __future__ import annotations

import weakref

from coredump.dwarf.callsites import CallSite, register_of
from coredump.dwarf.expr import LocationContext
from coredump.dwarf.simple_locations import evaluate_simple
from coredump.dwarf.varvalue import read_pieces
from coredump.symbols.symtab import find_global_symbol

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable, Optional

__all__ = ("find_call_site", "entry_value")

MASK = (1 << 64) - 1
# Functions looked at through tail calls for one callee (gdb sets no bound; a hostile file
# may chain many).
MAX_TAIL_TARGETS = 256

_VERIFIED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CALL_SITES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def find_call_site(target, callee, caller) -> Optional[CallSite]:
    """The call site in frame `caller` that called the function of physical frame `callee`."""
    if caller is None or caller.jit or not caller.pc or caller.interrupted:
        return None  # a signal frame's pc is no call's return address
    if caller.tailcall:
        # A tail-call frame is put back by inference (unwind.tailcall), which may find one
        # gdb does not: its tail call's parameters could give a value gdb has not.
        return None
    # What follows reads only these three addresses and the target's files, which one
    # analysis does not change: threads blocked in the same calls ask the same question.
    key = (callee.lookup_pc, caller.lookup_pc, caller.pc)
    memo = _memo(_CALL_SITES, target)
    if key not in memo:
        memo[key] = _find_call_site(target, *key)
    return memo[key]


def _memo(memos: weakref.WeakKeyDictionary, target) -> dict:
    try:
        return memos.setdefault(target, {})
    except TypeError:  # a target that takes no weak reference: not remembered
        return {}


def _find_call_site(target, callee_pc: int, caller_lookup_pc: int, caller_pc: int) -> Optional[CallSite]:
    callee_mod, caller_mod = target.find_module(callee_pc), target.find_module(caller_lookup_pc)
    if None in (callee_mod, caller_mod) or not caller_mod.trusted or caller_mod.dwarf is None \
            or not callee_mod.trusted or callee_mod.dwarf is None:
        return None
    called = callee_mod.dwarf.find_call_sites(callee_pc - callee_mod.bias)
    sites = caller_mod.dwarf.find_call_sites(caller_lookup_pc - caller_mod.bias)
    site = sites.at(caller_pc - caller_mod.bias) if sites is not None else None
    if site is None or called is None or called.entry_pc is None:
        return None
    entry = called.entry_pc + callee_mod.bias
    if site.targets:
        named = entry in (t + caller_mod.bias for t in site.targets)
    else:  # a declaration's name: gdb's lookup_minimal_symbol over every file (call_site_target)
        named = bool(site.target_name) and find_global_symbol(target.modules, site.target_name) == entry
    return site if named and no_self_tail_call(target, entry) else None


def no_self_tail_call(target, func_addr: int) -> bool:
    """gdb's func_verify_no_selftailcall (gdb/dwarf2/loc.c): whether every function the tail
    calls of the function at `func_addr` lead to is known (func_addr_to_tail_call_list: a
    DWARF function whose entry is that address; a call_site_target by address or by a
    symbol's name, not through a register) and none leads back to it."""
    memo = _memo(_VERIFIED, target)
    if func_addr not in memo:
        memo[func_addr] = _verify(target, func_addr)
    return memo[func_addr]


def _verify(target, func_addr: int) -> bool:
    todo, seen = [func_addr], {func_addr}
    while todo:
        addr = todo.pop()
        mod = target.find_module(addr)
        if mod is None or not mod.trusted or mod.dwarf is None:
            return False
        sites = mod.dwarf.find_call_sites(addr - mod.bias)
        if sites is None or sites.entry_pc is None or sites.entry_pc + mod.bias != addr:
            return False  # gdb: "DW_TAG_call_site resolving failed to find function name"
        for site in sites.tail_calls:
            if site.targets:
                called = [t + mod.bias for t in site.targets]
            else:
                found = find_global_symbol(target.modules, site.target_name) if site.target_name else None
                if found is None:
                    return False  # an indirect tail call, or a name no file defines
                called = [found]
            for callee in called:
                if callee == func_addr or len(seen) >= MAX_TAIL_TARGETS:
                    return False  # "... can call itself via tail calls"
                if callee not in seen:
                    seen.add(callee)
                    todo.append(callee)
    return True


def entry_value(site: Optional[CallSite], block: bytes, caller_context: Callable[[], LocationContext]) -> int:
    """The value of the register DW_OP_entry_value's `block` names (DW_OP_regN) at the
    entry of the function `site` called. Raises KeyError where it is not known."""
    regno = register_of(block)
    if site is None or regno is None:
        raise KeyError("entry value")
    expr = next((value for reg, value in site.parameters if reg == regno), None)
    if expr is None:
        raise KeyError("entry value")
    ctx = caller_context()
    pieces = evaluate_simple(expr, ctx)
    if len(pieces) != 1 or pieces[0].size is not None:
        raise KeyError("entry value")
    piece = pieces[0]
    # DW_AT_call_value is a DWARF expression (§2.5): its value is the top of the stack, which
    # a location's evaluation reports as a memory location; a register or stack value stands as is.
    if piece.kind == "memory":
        return piece.value & MASK
    return int.from_bytes(read_pieces(pieces, 8, ctx), "little")
