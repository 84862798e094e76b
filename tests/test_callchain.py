"""gdb's call_site_find_chain rules (coredump/unwind/callchain.py) on call sites laid out by
hand: what several chains keep (chain_candidate), and the search's bounds on hostile DWARF.
The real DWARF of the same cases is tests/test_callsites.py's (session, tail_paths)."""

import time

from coredump.dwarf.callsites import CallSite, FunctionCallSites
from coredump.unwind.callchain import MAX_CHAIN_LENGTH, find_chain

CALLER, CALLEE = 0x1000, 0x9000  # the caller's function; the callee's entry


class _Dwarf:
    def __init__(self, functions):
        self.functions = functions  # entry -> tail calls [(return pc, target entry)]

    def find_call_sites(self, address):
        entry = max((e for e in self.functions if e <= address), default=None)
        if entry is None:
            return None
        sites = tuple(CallSite(pc, pc != entry + 5, targets=(to,) if to is not None else ())
                      for pc, to in self.functions[entry])
        return FunctionCallSites(entry, sites)


class _Module:
    bias, trusted, image, debug_image = 0, True, None, None

    def __init__(self, functions):
        self.dwarf = _Dwarf(functions)


class _Target:
    def __init__(self, functions):
        self.modules = [_Module(functions)]

    def find_module(self, address):
        return self.modules[0]


def _chain(calls, first):
    """`calls`: entry -> [(return pc, target)]; the caller's call returns to CALLER + 5 and
    calls `first` (a non-tail call: pc == entry + 5)."""
    functions = {CALLER: [(CALLER + 5, first)], CALLEE: []}
    functions.update(calls)
    return find_chain(_Target(functions), CALLER + 5, CALLEE)


def test_one_chain_is_every_frame_innermost_first():
    assert _chain({0x2000: [(0x2010, 0x3000)], 0x3000: [(0x3010, CALLEE)]}, 0x2000) == (0x3010, 0x2010)


def test_a_direct_call_and_a_call_of_nothing_known():
    assert _chain({}, CALLEE) == ()
    assert _chain({}, None) is None  # an indirect call: the DWARF cannot tell


def test_two_ways_that_share_nothing_give_no_frame():
    calls = {0x2000: [(0x2010, 0x3000), (0x2020, 0x4000)], 0x3000: [(0x3010, CALLEE)],
             0x4000: [(0x4010, CALLEE)]}
    assert _chain(calls, 0x2000) == ()


def test_two_ways_keep_what_they_share_from_each_side():
    """A -> B -> D -> callee and A -> C -> D -> callee: from the caller's side the chains differ
    at once (A's two calls), from the callee's side they share D's call: gdb shows D alone."""
    calls = {0x2000: [(0x2010, 0x3000), (0x2020, 0x4000)], 0x3000: [(0x3010, 0x5000)],
             0x4000: [(0x4010, 0x5000)], 0x5000: [(0x5010, CALLEE)]}
    assert _chain(calls, 0x2000) == (0x5010,)


def test_a_loop_ends():
    calls = {0x2000: [(0x2010, 0x3000)], 0x3000: [(0x3010, 0x2000)]}
    assert _chain(calls, 0x2000) == ()  # searched through, no way reaches the callee


def test_a_chain_past_the_limit_says_nothing_and_ends_soon():
    n = 10_000
    calls = {0x10000 + 0x100 * i: [(0x10010 + 0x100 * i, 0x10000 + 0x100 * (i + 1))] for i in range(n)}
    calls[0x10000 + 0x100 * n] = [(0x10010 + 0x100 * n, CALLEE)]
    started = time.process_time()  # CPU time: other processes on the machine do not inflate it
    assert _chain(calls, 0x10000) is None
    assert time.process_time() - started < 5
    last = 0x10000 + 0x100 * (MAX_CHAIN_LENGTH - 1)
    short = {entry: to for entry, to in calls.items() if entry < last}
    short[last] = [(last + 0x10, CALLEE)]
    assert len(_chain(short, 0x10000)) == MAX_CHAIN_LENGTH
