"""
Tail calls
==========

Frames that optimized code removed, put back as gdb puts them back (its ``TAILCALL_FRAME``s,
dwarf2/frame-tailcall.c). A function whose last act is a call compiles to a jump at -O2
(``withdraw`` -> ``jmp check_balance``, ``b check_balance`` on aarch64), so its frame is gone.

Where the DWARF has call sites, the frames are the chain of tail calls gdb finds in them
(``coredump.unwind.callchain``). Where it cannot tell (no call site at the caller's pc, a call
of an ifunc or of code without DWARF), the instructions may: the caller's ``call`` (``bl``)
still names the function it called; when that is not the function found below it, the called
function tail-called it, and a frame for it is put back at the return address of its ``jmp``
to the callee (through other functions' jumps, for a chain), where gdb would put it
(DW_AT_call_return_pc), and symbolized there. x86_64 and aarch64, each by its own small
decoders (``_DECODERS``).
"""

from __future__ import annotations

import struct
import weakref

from coredump.errors import MemoryFault
from coredump.model import Frame, Trust
from coredump.patterns import lazy_compile
from coredump.record import dataclass, replace
from coredump.symbols.symbolize import symbolize_frame
from coredump.unwind.callchain import find_chain, function_entry
from coredump.unwind.common import SIGNAL_HANDLER_CALLED
from coredump.unwind.goruntime import is_abi_wrapper_of

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable, Iterable, List, Optional, Sequence, Set, Tuple

__all__ = ("infer_tail_calls", "CLONE_RE", "find_call_target", "find_tail_jump", "resolve_plt")

# Intel SDM Vol. 2A, CALL: E8 cd = call rel32 (5 bytes); Vol. 2A, JMP: E9 cd = jmp rel32
# (5 bytes), EB cb = jmp rel8 (2 bytes); the target is relative to the next instruction.
_CALL_REL32 = 0xE8
_JMP_REL32, _JMP_REL8 = 0xE9, 0xEB
# Arm ARM C6.2.34 BL and C6.2.26 B (op 1 and 0 of "unconditional branch (immediate)"), with
# the imm26 field masked off; C6.2.40 BTI c (hint #34), which a BTI-enabled PLT entry starts with.
_A64_BL, _A64_B = 0x94000000, 0x14000000
_A64_BTI_C = 0xD503245F
_TRAMPOLINES = (SIGNAL_HANDLER_CALLED, "__restore_rt", "__kernel_rt_sigreturn")
# GCC's clone suffixes on ELF symbol names at -O2 (ipa-cp, ipa-sra, partial inlining, hot/cold
# splitting): store_value.constprop.0, parse.isra.0, f.part.0, main.cold. A frame in main.cold
# is main's, for the call that named main; signatures strip them too (triage.sigframes).
CLONE_RE = lazy_compile(r"(?:\.(?:constprop|isra|part|cold|lto_priv|localalias|clone)(?:\.\d+)?)+$",
                        needs=(".constprop", ".isra", ".part", ".cold", ".lto_priv", ".localalias", ".clone"))
_MASK = (1 << 64) - 1
# Functions one chain of jumps may pass through when no DWARF call sites say the way, and
# functions one search for it may read (a linear scan finds jmp opcodes inside other
# instructions too: each a function to read, when it lands on one's start).
MAX_JUMP_CHAIN = 4
MAX_JUMP_FUNCTIONS = 32
# The most code read to look for a call in one function (a symbol's st_size is hostile input).
MAX_FUNCTION_BYTES = 1 << 20
# Per analysis (target): the frames _missing_frames found for each question asked.
_MISSING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _x86_64_call_target(memory, return_address: int) -> Optional[int]:
    try:
        code = memory.read(return_address - 5, 5)
    except MemoryFault:
        return None
    if code[0] != _CALL_REL32:
        return None
    return (return_address + int.from_bytes(code[1:], "little", signed=True)) & _MASK


def _x86_64_plt(memory, address: int) -> Optional[int]:
    try:
        code = memory.read(address, 11)
    except MemoryFault:
        return None
    i = 4 if code[:4] == b"\xf3\x0f\x1e\xfa" else 0  # endbr64
    i += 1 if code[i] == 0xF2 else 0  # bnd prefix (MPX-era PLTs)
    if code[i:i + 2] != b"\xff\x25":  # Intel SDM Vol. 2A, JMP: FF /4 = jmp r/m64
        return None
    slot = address + i + 6 + int.from_bytes(code[i + 2:i + 6], "little", signed=True)
    try:
        return memory.read_word(slot)
    except MemoryFault:
        return None


def _x86_64_jumps(code: bytes, start: int) -> Iterable[Tuple[int, int]]:
    for opcode, length in ((_JMP_REL32, 5), (_JMP_REL8, 2)):
        i = code.find(opcode)
        while 0 <= i <= len(code) - length:
            end = start + i + length
            yield (end + int.from_bytes(code[i + 1:i + length], "little", signed=True)) & _MASK, end
            i = code.find(opcode, i + 1)


def _x86_64_calls(code: bytes, start: int) -> Iterable[Tuple[int, int]]:
    i = code.find(_CALL_REL32)
    while 0 <= i <= len(code) - 5:
        end = start + i + 5
        yield (end + int.from_bytes(code[i + 1:i + 5], "little", signed=True)) & _MASK, end
        i = code.find(_CALL_REL32, i + 1)


def _imm26(insn: int, pc: int) -> int:
    """Arm ARM C6.2.26 B / C6.2.34 BL: target = PC + SignExtend(imm26:'00', 64)."""
    return (pc + ((insn & 0x3FFFFFF) ^ 0x2000000) * 4 - 0x8000000) & _MASK


def _aarch64_call_target(memory, return_address: int) -> Optional[int]:
    try:
        (insn,) = struct.unpack("<I", memory.read(return_address - 4, 4))
    except MemoryFault:
        return None
    # Arm ARM C6.2.34, BL: 1 00101 imm26 (0x94000000 | imm26); the BL is at return address - 4.
    if insn & 0xFC000000 != _A64_BL:
        return None
    return _imm26(insn, return_address - 4)


def _aarch64_plt(memory, address: int) -> Optional[int]:
    """binutils' small PLT entry (elfNN-aarch64.c, the psABI's "Procedure Linkage Table"):
    [bti c] adrp x16, slot; ldr x17, [x16, #:lo12:slot]; add x16, x16, #:lo12:slot; br x17."""
    try:
        words = struct.unpack("<5I", memory.read(address, 20))
    except MemoryFault:
        return None
    i = 1 if words[0] == _A64_BTI_C else 0
    adrp, ldr = words[i], words[i + 1]
    # Arm ARM C6.2.11 ADRP: 1 immlo(2) 10000 immhi(19) Rd; Rd = x16.
    # Arm ARM C6.2.132 LDR (immediate, unsigned offset, 64-bit): 11 111 0 01 01 imm12 Rn Rt; x17 <- [x16].
    if adrp & 0x9F00001F != 0x90000010 or ldr & 0xFFC003FF != 0xF9400211:
        return None
    imm = ((adrp >> 3) & 0x1FFFFC) | ((adrp >> 29) & 3)  # immhi:immlo
    page = ((address + i * 4) & ~0xFFF) + ((imm ^ 0x100000) - 0x100000) * 4096
    try:
        return memory.read_word((page + ((ldr >> 10) & 0xFFF) * 8) & _MASK)
    except MemoryFault:
        return None


def _aarch64_jumps(code: bytes, start: int) -> Iterable[Tuple[int, int]]:
    # Arm ARM C6.2.26, B: 0 00101 imm26 (0x14000000 | imm26). A64 instructions are 4-byte
    # aligned, so every word of the function is one instruction: no false candidates.
    for i, (insn,) in enumerate(struct.iter_unpack("<I", code[:len(code) & ~3])):
        if insn & 0xFC000000 == _A64_B:
            yield _imm26(insn, start + 4 * i), start + 4 * i + 4


def _aarch64_calls(code: bytes, start: int) -> Iterable[Tuple[int, int]]:
    # Arm ARM C6.2.34, BL: 1 00101 imm26.
    for i, (insn,) in enumerate(struct.iter_unpack("<I", code[:len(code) & ~3])):
        if insn & 0xFC000000 == _A64_BL:
            yield _imm26(insn, start + 4 * i), start + 4 * i + 4


@dataclass(frozen=True)
class _Decoder:
    call_target: Callable[[object, int], Optional[int]]
    jumps: Callable[[bytes, int], Iterable[Tuple[int, int]]]
    plt: Callable[[object, int], Optional[int]]
    calls: Callable[[bytes, int], Iterable[Tuple[int, int]]]


_DECODERS = {
    "x86_64": _Decoder(_x86_64_call_target, _x86_64_jumps, _x86_64_plt, _x86_64_calls),
    "aarch64": _Decoder(_aarch64_call_target, _aarch64_jumps, _aarch64_plt, _aarch64_calls),
}


def find_call_target(memory, return_address: int, arch: str = "x86_64") -> Optional[int]:
    """The target of the direct call (x86_64 ``call rel32``, aarch64 ``bl``) that ends just
    before `return_address`."""
    return _DECODERS[arch].call_target(memory, return_address)


def resolve_plt(memory, address: int, arch: str = "x86_64") -> Optional[int]:
    """Where the PLT stub at `address` jumps: its GOT slot's value (x86_64: System V psABI
    §5.3 / the IBT .plt.sec variant, [endbr64] [bnd] jmp *slot(%rip); aarch64: see
    ``_aarch64_plt``)."""
    return _DECODERS[arch].plt(memory, address)


def find_tail_jump(memory, start: int, end: int, callee: int, arch: str = "x86_64") -> Optional[int]:
    """The return address of the one direct jump (x86_64 ``jmp``, aarch64 ``b``) in [start,
    end) to `callee`, directly or through a PLT stub outside the range; None when none or
    several match. On x86_64 the scan is linear, so a jmp opcode byte inside another
    instruction is a candidate too."""
    decoder = _DECODERS[arch]
    try:
        code = memory.read(start, end - start)
    except MemoryFault:
        return None
    found = set()
    for to, after in decoder.jumps(code, start):
        if to == callee or (not start <= to < end and decoder.plt(memory, to) == callee):
            found.add(after)
    return found.pop() if len(found) == 1 else None


class _CodeMemory:
    """Code from the core or, where it dumped none (qemu-user), from the module's file
    (``Target.read_code``); words (GOT slots) from the core only: the file's are unrelocated."""

    def __init__(self, target):
        self.read, self.read_word = target.read_code, target.memory.read_word


def _groups(frames: Sequence[Frame]) -> List[List[Frame]]:
    """Frames by physical frame: inline frames, then the physical frame that holds them."""
    groups: List[List[Frame]] = [[]]
    for f in frames:
        groups[-1].append(f)
        if not f.inline:
            groups.append([])
    return [g for g in groups if g]


def _function_at(target, address: int, follow_plt: bool = True):
    """(address, module, symbol) of the function that starts exactly at `address`, through a
    PLT stub to the function its GOT slot holds."""
    mod = target.find_module(address)
    if mod is None or mod.symtab is None:
        return None
    hit = mod.symtab.lookup(address - mod.bias)
    if hit is None or hit[1] != 0:
        resolved = resolve_plt(_CodeMemory(target), address, target.arch.name) if follow_plt else None
        # An unresolved lazy-binding slot points back into the PLT, where no symbol starts.
        return _function_at(target, resolved, False) if resolved else None
    return address, mod, hit[0]


def _names(frames: Iterable[Frame]) -> Set[str]:
    return {CLONE_RE.sub("", n) for f in frames for n in (f.function, f.mangled) if n}


def infer_tail_calls(frames: Sequence[Frame], target) -> Tuple[Frame, ...]:
    """`frames` with a frame put back (``tailcall``, trust ``none``) for each direct call
    whose target is a named function other than the callee found; numbered on as gdb's
    ``bt`` numbers them (a gap the walk left stays a gap)."""
    if target is None or target.arch is None or target.arch.name not in _DECODERS:
        return tuple(frames)
    groups = _groups(frames)
    out: List[Frame] = list(groups[0]) if groups else []
    added = 0
    for callee, caller in zip(groups, groups[1:]):
        physical = caller[-1]
        # An interrupted frame's pc and the signal trampoline's are not return addresses.
        if physical.trust not in (Trust.CONTEXT, Trust.SIGNAL) and physical.pc and \
                physical.function not in _TRAMPOLINES:
            found = _missing_frames(target, physical, callee)
            out.extend(replace(f, index=caller[0].index + added + k) for k, f in enumerate(found))
            added += len(found)
        out.extend((replace(f, index=f.index + added) for f in caller) if added else caller)
    return tuple(out)


def _missing_frames(target, caller: Frame, callee: Sequence[Frame]) -> Tuple[Frame, ...]:
    """The tail-call frames between `caller` and `callee`: none when the caller's call is a
    direct call of the callee; else those DWARF call sites give (``callchain``), and where
    they cannot tell, those the instructions prove."""
    # The answer reads these parts of the two frames and the target's code and DWARF, which
    # one analysis does not change: the threads of a pool wait in the same calls.
    key = (caller.pc, caller.trust == Trust.SCAN, callee[-1].lookup_pc, callee[-1].function,
           frozenset(_names(callee)))
    try:
        memo = _MISSING.setdefault(target, {})
    except TypeError:  # a target that takes no weak reference: not remembered
        memo = {}
    if key not in memo:
        memo[key] = tuple(_find_missing_frames(target, caller, callee))
    return memo[key]


def _find_missing_frames(target, caller: Frame, callee: Sequence[Frame]) -> List[Frame]:
    callee_start = function_entry(target, callee[-1].lookup_pc)
    called = find_call_target(_CodeMemory(target), caller.pc, target.arch.name)
    hit = _function_at(target, called) if called is not None else None
    if hit is not None and hit[0] == callee_start:
        return []  # the call names the callee: nothing was removed (and no DWARF to read)
    chain = find_chain(target, caller.pc, callee_start) if callee_start is not None else None
    if chain is not None:
        return [_tail_frame(target, pc) for pc in chain]
    return _from_instructions(target, hit, callee, callee_start, caller.trust == Trust.SCAN)


def _tail_frame(target, pc: int) -> Frame:
    """gdb's TAILCALL_FRAME at return address `pc`: one frame, named after the innermost
    function at ``pc - 1`` (an inlined one, when the tail call is in inlined code), with its
    file:line; the offset is counted in the function that holds the code."""
    found = symbolize_frame(target, Frame(0, pc, trust=Trust.NONE))
    inner, physical = found[0], found[-1]
    return replace(physical, function=inner.function, mangled=inner.mangled, file=inner.file,
                               line=inner.line, source_path=inner.source_path, tailcall=True)


def _from_instructions(target, hit, callee: Sequence[Frame], callee_start: Optional[int],
                       scanned: bool = False) -> List[Frame]:
    """The frame of the function the caller's direct call names (`hit`), when that is not
    the callee; none when it is, or when nothing tells. A caller found by stack scanning
    (`scanned`) is only a word that looks like a return address: it proves no tail call
    unless jumps lead from the function it called to the callee."""
    if hit is None or not callee[-1].function:
        return []  # an unnamed callee may well be the called function: nothing to compare
    address, mod, symbol = hit
    # By address first (aliases, clones, ifunc variants), then by name: a frame in foo.cold
    # or named from DWARF is foo's, and Go's wrapper foo.abi0 is foo (goruntime).
    names = _names(callee)
    if address == callee_start or CLONE_RE.sub("", symbol) in names or is_abi_wrapper_of(symbol, names):
        return []
    from coredump.demangle import demangle

    name = demangle(symbol) or symbol
    if CLONE_RE.sub("", name) in names:
        return []
    try:
        chain = _jump_chain(target, address, callee_start, [MAX_JUMP_FUNCTIONS]) if callee_start is not None \
            else None
    except _TooFar:
        chain = None
    if chain is None and (scanned or callee_start is not None and _calls(target, address, callee_start)):
        # The function calls the callee itself: the walk skipped its frame (a frameless
        # callee, found by frame pointer), which no tail call removed. No evidence, no frame.
        return []
    if chain is None:  # no one way of jumps to tell where: the function's entry, no line
        return [Frame(0, address, trust=Trust.NONE, module=mod.path, module_offset=address - mod.start,
                      function=name, mangled=symbol if symbol != name else None, symbol_offset=0,
                      tailcall=True)]
    return [_tail_frame(target, pc) for pc in reversed(chain)]


def _calls(target, start: int, callee: int) -> bool:
    """Whether the function at `start` has a direct call (x86_64 ``call rel32``, aarch64
    ``bl``) to `callee`, directly or through a PLT stub. A linear scan: a call opcode inside
    another instruction counts too, which can only leave a frame out."""
    mod = target.find_module(start)
    span = mod.symtab.function_range(start - mod.bias) if mod is not None and mod.symtab is not None else None
    if span is None or span[1] - span[0] > MAX_FUNCTION_BYTES:
        return False
    memory, arch = _CodeMemory(target), target.arch.name
    low, high = span[0] + mod.bias, span[1] + mod.bias
    try:
        code = memory.read(low, high - low)
    except MemoryFault:
        return False
    for to, _ in _DECODERS[arch].calls(code, low):
        if to == callee or (not low <= to < high and resolve_plt(memory, to, arch) == callee):
            return True
    return False


class _TooFar(Exception):
    """A search for a chain of jumps read ``MAX_JUMP_FUNCTIONS`` functions."""


def _jump_chain(target, start: int, callee: int, left: List[int], depth: int = 0) -> Optional[List[int]]:
    """Return addresses of the jumps from the function at `start` to `callee`, outermost
    first, through other functions' jumps (a chain of tail calls), when exactly one way
    leads there (at most ``MAX_JUMP_CHAIN`` functions deep); None when none or several.
    `left[0]` counts down the functions the search may still read."""
    mod = target.find_module(start)
    span = mod.symtab.function_range(start - mod.bias) if mod is not None and mod.symtab is not None else None
    if span is None or depth >= MAX_JUMP_CHAIN:
        return None
    left[0] -= 1
    if left[0] < 0:
        raise _TooFar()
    low, high = span[0] + mod.bias, span[1] + mod.bias
    after = find_tail_jump(_CodeMemory(target), low, high, callee, target.arch.name)
    if after is not None:
        return [after]
    ways = []
    for to, after in _outside_jumps(target, low, high):
        rest = _jump_chain(target, to, callee, left, depth + 1)
        if rest is not None:
            ways.append([after] + rest)
    return ways[0] if len(ways) == 1 else None


def _outside_jumps(target, low: int, high: int) -> List[Tuple[int, int]]:
    """(target, return address) of the direct jumps in [low, high) to the start of another
    function (a tail call, not a branch inside the function), through PLT stubs."""
    try:
        code = _CodeMemory(target).read(low, high - low)
    except MemoryFault:
        return []
    out = set()
    for to, after in _DECODERS[target.arch.name].jumps(code, low):
        if not low <= to < high:
            hit = _function_at(target, to)
            if hit is not None:
                out.add((hit[0], after))
    return sorted(out)
