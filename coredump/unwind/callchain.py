"""
Tail-call chains
================

The tail calls between a caller and the frame found below it, from DWARF call sites
(``coredump.dwarf.callsites``), as gdb's ``call_site_find_chain`` (dwarf2/loc.c) finds them
for its ``TAILCALL_FRAME``s (dwarf2/frame-tailcall.c): start at the caller's call site (the
one returning to the caller's pc), follow the tail calls of each function it may call, and
keep every chain that reaches the callee's entry. Several chains keep what they share
(gdb's ``chain_candidate``: the calls from the caller's side and from the callee's side that
all have in common); chains that share nothing give no frame. A call site is entered once
per chain, so a loop of tail calls ends.

``find_chain`` says which of three things the DWARF tells: the frames (return addresses of
the tail calls, innermost first); that there are none (a direct call, chains that share
nothing, no chain at all: a loop); or nothing (``None``: no call site at the caller's pc, a
called function without DWARF or symbol, an indirect call), where gdb shows no frame either
and ``coredump.unwind.tailcall`` looks at the instructions instead.
"""

from __future__ import annotations

from coredump.symbols.symtab import find_global_symbol

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Optional, Sequence, Tuple
    Site = Tuple[int, object]  # (runtime return pc, the CallSite's module)

__all__ = ("find_chain", "function_entry", "MAX_CHAIN_SITES", "MAX_CHAIN_LENGTH")

# Call sites one search enters, and tail calls one chain holds. gdb has no bound; real chains
# are a few calls long and a function has tens of tail calls, so past these the DWARF is a
# generator's (or hostile), and says nothing.
MAX_CHAIN_SITES = 4096
MAX_CHAIN_LENGTH = 64
# Names one search looks up in the symbol tables (a scan of each module's tables, ~1 ms each).
MAX_NAME_LOOKUPS = 64


class _Unknown(Exception):
    """What gdb reports as NO_ENTRY_VALUE_ERROR while resolving: the DWARF cannot tell."""


class _Search:
    def __init__(self, target, callee: int):
        self.target = target
        self.callee = callee
        self.names: dict = {}  # a declaration's name -> its address, looked up once
        self.entered: set = set()
        self.result: Optional[List[int]] = None  # [callers, callees, pcs...]: see _candidate
        self.steps = 0

    def walk(self, site, module, chain: List[int]) -> bool:
        """gdb's call_site_find_chain_2 from `site` (in `module`), `chain` the tail calls
        entered so far; False once the chains found share nothing (the search stops: no
        later chain can repair that)."""
        addresses = self._targets(site, module)
        if self.callee in addresses:
            return self._candidate(chain)
        for address in addresses:
            for mod, tail in self._tail_calls(address):
                pc = tail.return_pc + mod.bias
                if pc in self.entered:
                    continue
                self.steps += 1
                if self.steps > MAX_CHAIN_SITES or len(chain) >= MAX_CHAIN_LENGTH:
                    raise _Unknown("past the search's limits")
                self.entered.add(pc)
                chain.append(pc)
                ok = self.walk(tail, mod, chain)
                chain.pop()
                self.entered.discard(pc)
                if not ok:
                    return False
        return True

    def _candidate(self, chain: List[int]) -> bool:
        """gdb's chain_candidate: the first chain as it is; each later one cuts the result
        to the calls it shares with it from the caller's side and from the callee's side."""
        if self.result is None:
            self.result = [len(chain), len(chain), *chain]
            return True
        callers, callees, *kept = self.result
        n = min(callers, len(chain))
        callers = next((i for i in range(n) if kept[i] != chain[i]), n)
        n = min(callees, len(chain))
        callees = next((i for i in range(n) if kept[-1 - i] != chain[-1 - i]), n)
        self.result = [callers, callees, *kept]
        # Nothing shared: two ways to the callee, or a direct call that might also be another.
        return callers > 0 or callees > 0

    def _targets(self, site, module) -> Tuple[int, ...]:
        if site.targets:
            return tuple(t + module.bias for t in site.targets)
        if site.target_name:
            if site.target_name not in self.names:
                if len(self.names) >= MAX_NAME_LOOKUPS:
                    raise _Unknown("past the search's limits")
                self.names[site.target_name] = _address_of(self.target, site.target_name)
            address = self.names[site.target_name]
            if address is None:
                raise _Unknown(f"no symbol {site.target_name}")
            return (address,)
        raise _Unknown("an indirect call")  # DW_AT_call_target: the caller's registers are gone

    def _tail_calls(self, address: int):
        """gdb's func_addr_to_tail_call_list: the tail calls of the function whose DWARF entry
        is `address`."""
        mod = self.target.find_module(address)
        dwarf = mod.dwarf if mod is not None else None
        sites = dwarf.find_call_sites(address - mod.bias) if dwarf is not None else None
        if sites is None or sites.entry_pc is None or sites.entry_pc + mod.bias != address:
            raise _Unknown(f"no function with DWARF at {address:#x}")
        return [(mod, s) for s in reversed(sites.tail_calls)]  # gdb's list: last DIE first


def find_chain(target, caller_pc: int, callee_pc: int) -> Optional[Tuple[int, ...]]:
    """Return addresses of the tail-call frames between a caller whose call returns to
    `caller_pc` and a callee whose function starts at `callee_pc`, innermost first (gdb's
    ``pretend_pc`` order); () when the DWARF says there is none; None when it cannot tell."""
    mod = target.find_module(caller_pc - 1)
    dwarf = mod.dwarf if mod is not None else None
    sites = dwarf.find_call_sites(caller_pc - 1 - mod.bias) if dwarf is not None else None
    site = sites.at(caller_pc - mod.bias) if sites is not None else None
    if site is None:
        return None  # gdb's call_site_for_pc: "cannot find DW_TAG_call_site"
    search = _Search(target, callee_pc)
    try:
        search.walk(site, mod, [])
    except _Unknown:
        return None
    if search.result is None:
        return ()  # every way searched, none reaches the callee (gdb: "no unambiguously determinable")
    callers, callees, *pcs = search.result
    return _pretended(pcs, callers, callees)


def _pretended(pcs: Sequence[int], callers: int, callees: int) -> Tuple[int, ...]:
    """gdb's pretend_pc over pretended_chain_levels: the callee's side innermost first, then
    the caller's side; the calls neither side agrees on are left out."""
    length = len(pcs)
    if callers == length and callees == length:
        return tuple(reversed(pcs))
    inner = [pcs[length - 1 - k] for k in range(callees)]
    outer = [pcs[callers - 1 - k] for k in range(callers)]
    return tuple(inner + outer)


def function_entry(target, address: int) -> Optional[int]:
    """gdb's get_pc_function_start: the DWARF entry of the function holding runtime
    `address`, else where its ELF symbol starts."""
    mod = target.find_module(address)
    if mod is None:
        return None
    dwarf = mod.dwarf
    found = dwarf.find_function(address - mod.bias) if dwarf is not None else None
    if found is not None and found.low_pc is not None:
        return found.low_pc + mod.bias
    return mod.function_start(address)


def _address_of(target, name: str) -> Optional[int]:
    """gdb's lookup_minimal_symbol(name) over every objfile (symbols.symtab.find_global_symbol)."""
    return find_global_symbol(target.modules, name)
