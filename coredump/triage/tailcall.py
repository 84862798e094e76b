"""
Tail calls
==========

Frames that optimized code removed: a function whose last act is a call compiles to a jump
at -O2 (``withdraw`` → ``jmp check_balance``), so its frame is gone and the stack differs from
the -O0 one. The caller's ``call`` instruction still names the function it called; when that
is not the function found below it, the called function tail-called it, and a frame for it is
put back (gdb does the same from DWARF call-site information, dwarf2/frame-tailcall.c).
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple

from coredump.errors import MemoryFault
from coredump.model import Frame, Trust

__all__ = ("infer_tail_calls", "find_call_target", "resolve_plt")

_CALL_REL32 = 0xE8  # Intel SDM Vol. 2: CALL rel32, E8 cd (5 bytes)
_TRAMPOLINES = ("<signal handler called>", "__restore_rt")


def find_call_target(memory, return_address: int) -> Optional[int]:
    """The target of the direct ``call rel32`` that ends just before `return_address`."""
    try:
        code = memory.read(return_address - 5, 5)
    except MemoryFault:
        return None
    if code[0] != _CALL_REL32:
        return None
    return (return_address + int.from_bytes(code[1:], "little", signed=True)) & ((1 << 64) - 1)


def _groups(frames: Sequence[Frame]) -> List[List[Frame]]:
    """Frames by physical frame: inline frames, then the physical frame that holds them."""
    groups: List[List[Frame]] = [[]]
    for f in frames:
        groups[-1].append(f)
        if not f.inline:
            groups.append([])
    return [g for g in groups if g]


def resolve_plt(memory, address: int) -> Optional[int]:
    """Where the PLT stub at `address` jumps: its GOT slot's value (System V x86_64 psABI
    §5.3 / the IBT .plt.sec variant: [endbr64] [bnd] jmp *slot(%rip))."""
    try:
        code = memory.read(address, 11)
    except MemoryFault:
        return None
    i = 4 if code[:4] == b"\xf3\x0f\x1e\xfa" else 0  # endbr64
    i += 1 if code[i] == 0xF2 else 0  # bnd prefix (MPX-era PLTs)
    if code[i:i + 2] != b"\xff\x25":
        return None
    slot = address + i + 6 + int.from_bytes(code[i + 2:i + 6], "little", signed=True)
    try:
        return memory.read_word(slot)
    except MemoryFault:
        return None


def _function_at(target, address: int, follow_plt: bool = True) -> Optional[Tuple[str, object, str]]:
    """(name, module, symbol) of the function that starts exactly at `address`, through a PLT stub."""
    mod = target.find_module(address)
    if mod is None or mod.symtab is None:
        return None
    hit = mod.symtab.lookup(address - mod.bias)
    if hit is None or hit[1] != 0:
        resolved = resolve_plt(target.memory, address) if follow_plt else None
        # An unresolved lazy-binding slot points back into the PLT: nothing learned.
        return _function_at(target, resolved, False) if resolved and not mod.contains(resolved) else None
    from coredump.symbols.demangle import demangle

    return demangle(hit[0]) or hit[0], mod, hit[0]


def _names(group: Sequence[Frame]) -> set:
    from coredump.triage.signature import normalize_function

    out = set()
    for f in group:
        for name in (f.function, f.mangled):
            if name:
                out.update((name, normalize_function(name)))
    return out


def infer_tail_calls(frames: Sequence[Frame], target) -> Tuple[Frame, ...]:
    """`frames` with a frame put back, marked ``Trust.NONE``, for each direct call whose
    target is a named function other than the callee found (x86_64 only)."""
    if target is None or target.arch is None or target.arch.name != "x86_64":
        return tuple(frames)
    groups = _groups(frames)
    out: List[Frame] = list(groups[0]) if groups else []
    for callee, caller in zip(groups, groups[1:]):
        physical = caller[-1]
        # An interrupted frame's pc and the signal trampoline's are not return addresses.
        if physical.trust not in (Trust.CONTEXT, Trust.SIGNAL) and physical.pc and \
                physical.function not in _TRAMPOLINES:
            found = _missing_frame(target, physical, callee)
            if found is not None:
                out.append(found)
        out.extend(caller)
    return tuple(out)


def _missing_frame(target, caller: Frame, callee: Sequence[Frame]) -> Optional[Frame]:
    called = find_call_target(target.memory, caller.pc)
    if called is None:
        return None
    hit = _function_at(target, called)
    if hit is None:
        return None
    name, mod, symbol = hit
    from coredump.triage.signature import normalize_function

    if not callee[-1].function:
        return None  # an unnamed callee may well be the called function: nothing to compare
    # The symbol itself against the callee's linkage name: a Rust frame named from DWARF
    # (rust_panic::Config::value_of<&str>) is not spelled as its demangled symbol.
    names = _names(callee)
    if name in names or normalize_function(name) in names or symbol in names:
        return None
    return dataclasses.replace(caller, pc=called, sp=None, cfa=None, trust=Trust.NONE, module=mod.path,
                               module_offset=called - mod.start, function=name, mangled=None,
                               symbol_offset=0, file=None, line=None, inline=False)
