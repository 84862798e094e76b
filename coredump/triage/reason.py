"""
Reasons
=======

One sentence and a short class name that explain a crash from the facts in the core: the
signal and its si_code, the faulting address against the process's mappings and stack
pointer, the instruction at pc, the frames, and the message left before abort().
"""

from __future__ import annotations

import os
import struct
from collections import Counter

from coredump.elf.memory import PF_R, PF_W, PF_X
from coredump.errors import MemoryFault
from coredump.model import Crash, Frame
from coredump.record import dataclass
from coredump.triage.assertion import AbortMessage, CxxException
from coredump.triage.golang import GoCrash, describe_go_crash
from coredump.triage.rust import RustPanic, is_rust_panic
from coredump.triage.signals import signal_name

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Optional, Sequence

__all__ = ("Facts", "Explanation", "explain_reason", "find_handled_signal", "describe_mapping",
           "NULL_PAGE", "STACK_GUARD_GAP")

# Addresses below the first page are null-pointer accesses (vm.mmap_min_addr is at least 4096).
NULL_PAGE = 4096
MASK = (1 << 64) - 1
# mm/mmap.c stack_guard_gap: 256 pages kept unmapped below a growing stack; plus room for a
# large frame that moved sp past it.
STACK_GUARD_GAP = (256 << 12) + (64 << 10)
# A function seen this often in one stack is recursing.
RECURSION_REPEATS = 16
# x86_64 __restore_rt (glibc sysdeps/unix/sysv/linux/x86_64/libc_sigaction.c):
# mov $__NR_rt_sigreturn, %rax; syscall -- the bytes gdb's amd64_linux_sigtramp_p looks for.
_SIGRETURN_X86_64 = bytes.fromhex("48c7c00f0000000f05")
# arch/x86/include/asm/sigframe.h struct rt_sigframe { char *pretcode; struct ucontext uc;
# struct siginfo info; }: ucontext (uc_flags, uc_link, stack_t, sigcontext, sigset) is 304 bytes.
_UCONTEXT_SIZE = 304
_UC_MCONTEXT_RSP = 40 + 15 * 8  # struct sigcontext_64: r8..r15, di, si, bp, bx, dx, ax, cx, sp
_UC_SIGMASK = 40 + 256
_SIGFRAME_SCAN_BYTES = 256 * 1024
_EFLAGS_AC = 1 << 18
_UD2 = b"\x0f\x0b"
_TRAPV_HELPERS = ("__addvsi3", "__addvdi3", "__subvsi3", "__subvdi3", "__mulvsi3", "__mulvdi3",
                  "__negvsi2", "__negvdi2", "__absvsi2", "__absvdi2")


@dataclass(frozen=True)
class Facts:
    """What explain() gathered beyond the Crash: the message before abort, the uncaught C++
    exception, the signal whose handler was running, the first frame of the signature, and
    the Rust panic whose hook ran, the Go runtime's crash."""

    abort: Optional[AbortMessage] = None
    exception: Optional[CxxException] = None
    handled_signal: Optional[int] = None
    where: Optional[str] = None
    panic: Optional[RustPanic] = None
    go: Optional[GoCrash] = None


@dataclass(frozen=True)
class Explanation:
    classification: str
    reason: str


def describe_mapping(target, address: int) -> str:
    """Where an address lies: ``mapped from /path`` or ``anonymous memory (heap, stack or mmap)``."""
    mapping = target.memory.find_file_mapping(address)
    if mapping is not None:
        return f"mapped from {os.path.basename(mapping.filename)}"
    return "anonymous memory (heap, stack or mmap)"


def find_handled_signal(target, sp: Optional[int], sighold: Optional[int] = None) -> Optional[int]:
    """The signal whose handler is on the stack, or None (x86_64).

    A return address on the stack that points at the sigreturn trampoline marks the kernel's
    rt_sigframe: the ucontext follows it, then the siginfo, which the kernel fills in only
    for SA_SIGINFO handlers (arch/x86/kernel/signal_64.c). Otherwise the signal is the one
    that handler entry added to the blocked mask: the thread's blocked set at dump time
    (NT_PRSTATUS pr_sighold) minus the mask saved in uc_sigmask."""
    if sp is None or target.arch is None or target.arch.name != "x86_64":
        return None
    for uc in _iter_sigframes(target.memory, sp):
        try:
            saved_mask = target.memory.read_word(uc + _UC_SIGMASK)
            signo = target.memory.read_u32(uc + _UCONTEXT_SIZE)
        except MemoryFault:
            continue
        added = (sighold or 0) & ~saved_mask
        if 1 <= signo <= 64 and (sighold is None or added >> (signo - 1) & 1):
            return signo
        if added:
            return (added & -added).bit_length()  # the lowest: sa_mask may add more
    return None


def _iter_sigframes(mem, sp: int):
    """Addresses of the ucontexts of signal frames above sp."""
    seg = mem.find_segment(sp)
    if seg is None:
        return
    size = min(_SIGFRAME_SCAN_BYTES, seg.end - sp)
    try:
        words = struct.unpack(f"<{size // 8}Q", mem.read(sp, size - size % 8))
    except MemoryFault:
        return
    for i, word in enumerate(words):
        if not mem.is_executable(word):
            continue
        try:
            if mem.read(word, len(_SIGRETURN_X86_64)) != _SIGRETURN_X86_64:
                continue
            uc = sp + 8 * i + 8
            if mem.read_word(uc + _UC_MCONTEXT_RSP) > uc - 8:  # the interrupted code's sp
                yield uc
        except MemoryFault:
            continue


def _recursion(frames: Sequence[Frame]) -> Optional[tuple]:
    names = Counter(f.function or f"{f.pc:#x}" for f in frames if not f.inline)
    if not names:
        return None
    name, count = names.most_common(1)[0]
    return (name, count) if count >= RECURSION_REPEATS else None


def _is_stack_overflow(target, address: int, sp: Optional[int]) -> bool:
    """The fault hit the guard gap below a stack: unmapped or PROT_NONE memory just below sp
    or just below the mapping that holds sp."""
    if sp is None:
        return False
    seg = target.memory.find_segment(address)
    if seg is not None and seg.p_flags & (PF_R | PF_W | PF_X):
        return False
    if -STACK_GUARD_GAP <= address - sp <= 256:
        return True
    stack = target.memory.find_segment(sp)
    return stack is not None and 0 < stack.p_vaddr - address <= STACK_GUARD_GAP


def _in(facts: Facts) -> str:
    return f" in {facts.where}" if facts.where else ""


def _sent(crash: Crash, facts: Facts) -> Optional[Explanation]:
    s = crash.signal
    if s.code is None or s.code > 0 or s.code == 0x80:
        return None
    how = {0: "kill()", -1: "sigqueue()", -6: "tkill()/tgkill()"}.get(s.code, "a system call")
    if s.sender_pid and s.sender_pid != crash.process.pid:
        running = f" while it ran{_in(facts)}" if facts.where else ""
        return Explanation("killed", f"killed by {s.name} sent with {how} by process {s.sender_pid}{running}")
    if s.name == "SIGABRT":
        return None  # abort() raises SIGABRT itself: explained by _abort
    return Explanation("raised", f"the process sent itself {s.name} with {how}{_in(facts)}")


def _abort(crash: Crash, facts: Facts) -> Explanation:
    where = _in(facts)
    a = facts.abort
    if a is not None and a.kind == "assert":
        place = f" ({a.file}:{a.line})" if a.file else ""
        func = f" in {a.function}" if a.function else where
        return Explanation("assertion", f"assertion `{a.expression}` failed{func}{place}")
    if a is not None and a.kind == "malloc":
        return Explanation("heap-corruption", f"glibc's malloc found the heap corrupted ({a.text}){where}")
    if a is not None and a.kind in ("fortify", "stack-protector"):
        what = "_FORTIFY_SOURCE" if a.kind == "fortify" else "the stack protector"
        return Explanation("buffer-overflow", f"buffer overflow caught by {what}{where}: {a.text}")
    if facts.exception is not None or _has_frame(crash, ("std::terminate", "__cxa_throw", "__cxa_rethrow")):
        what = f" {facts.exception}" if facts.exception else ""
        thrown = f", thrown{where}" if where else ""
        return Explanation("uncaught-exception", f"uncaught C++ exception{what}{thrown}")
    trapv = _has_frame(crash, _TRAPV_HELPERS)
    if trapv:
        return Explanation("integer-overflow", f"signed integer overflow trapped by -ftrapv ({trapv}){where}")
    if facts.panic is not None or _is_panicking(crash):
        message = facts.panic.message or "Box<dyn Any>" if facts.panic is not None else a.text if a else None
        return Explanation("panic", f"Rust panic{where}{': ' + message if message else ''}")
    if a is not None:
        return Explanation("abort", f"abort() after a fatal error{where}: {a.text}")
    return Explanation("abort", f"abort() called{where}")


def _is_panicking(crash: Crash) -> bool:
    return crash.crashing_thread is not None and is_rust_panic(crash.threads[crash.crashing_thread].frames)


def _has_frame(crash: Crash, names) -> Optional[str]:
    if crash.crashing_thread is None:
        return None
    for f in crash.threads[crash.crashing_thread].frames:
        if f.function and f.function.split("(", 1)[0] in names:
            return f.function.split("(", 1)[0]
    return None


def _memory_fault(crash: Crash, target, facts: Facts, pc: Optional[int], sp: Optional[int]) -> Explanation:
    s = crash.signal
    addr = s.address
    where = _in(facts)
    if s.code is None:
        # No NT_SIGINFO (qemu-user and old kernels write none): the address is unknown, not
        # withheld by the kernel as for a general protection fault.
        return Explanation("memory-fault", f"segmentation fault{where}; the core records no fault address "
                                           "(no NT_SIGINFO: written by qemu-user or an old kernel)")
    if s.code_name == "SI_KERNEL" or addr is None:
        return Explanation("wild-pointer", f"general protection fault{where}: most likely an access through a "
                                           "non-canonical (wild) pointer; the kernel reports no address for it")
    if pc is not None and addr == pc:
        if addr < NULL_PAGE:
            return Explanation("null-deref", f"call through a null function pointer{where}")
        seg = target.memory.find_segment(addr)
        if seg is not None and not seg.p_flags & PF_X:
            return Explanation("execute-non-executable", f"execute of non-executable memory at {addr:#x} "
                                                         f"({describe_mapping(target, addr)}){where}")
        return Explanation("wild-pointer", f"jump to unmapped address {addr:#x} (a bad function pointer or a "
                                           f"corrupted return address){where}")
    if _is_stack_overflow(target, addr, sp):
        thread = crash.threads[crash.crashing_thread] if crash.crashing_thread is not None else None
        rec = _recursion(thread.frames) if thread is not None else None
        # A cut walk (max_frames) saw only part of the recursion.
        at_least = "at least " if thread is not None and (thread.truncated or thread.frames_omitted) else ""
        depth = f" in a stack {len(thread.frames) + thread.frames_omitted:,} frames deep" \
            if thread is not None and thread.frames_omitted else ""
        more = f"; recursion: {rec[0]} repeats {at_least}{rec[1]} times{depth}" if rec else ""
        return Explanation("stack-overflow", f"stack overflow{where}: the access at {addr:#x} hit the guard "
                                             f"gap below the stack (sp {sp:#x}){more}")
    culprit = _pointer_culprit(crash, target, pc, addr)
    if addr < NULL_PAGE:
        if culprit is not None and (culprit[1] & MASK) == addr:
            offset = f" (offset {addr:#x})" if addr else ""
            return Explanation("null-deref", f"null pointer dereference: `{culprit[0]}` is NULL{offset}{where}")
        offset = f" at offset {addr:#x}" if addr else ""
        return Explanation("null-deref", f"null pointer dereference{offset}{where}")
    # x86_64 4-level paging: bits 63..47 must be equal (SDM Vol. 1 §3.3.7.1 canonical address).
    x86 = target.arch is not None and target.arch.name == "x86_64"
    if x86 and (1 << 47) <= addr < (1 << 64) - (1 << 47):
        return Explanation("wild-pointer", f"access through a non-canonical address {addr:#x}{where}")
    seg = target.memory.find_segment(addr)
    if s.code_name == "SEGV_ACCERR" and seg is not None and not seg.p_flags & PF_W:
        what = "write to read-only memory" if seg.p_flags & PF_R else "access to inaccessible (PROT_NONE) memory"
        return Explanation("write-read-only" if seg.p_flags & PF_R else "wild-pointer",
                           f"{what} at {addr:#x} ({describe_mapping(target, addr)}){where}")
    named = f": `{culprit[0]}` is {(addr - culprit[1]) & MASK:#x}" if culprit is not None else ""
    return Explanation("wild-pointer", f"access to unmapped address {addr:#x} (wild pointer){named}{where}")


def _pointer_culprit(crash: Crash, target, pc: Optional[int], addr: int):
    """(variable, offset) of the pointer the faulting access went through (triage.culprit)."""
    from coredump.triage.culprit import pointer_culprit  # (DWARF variables, x86 operands: on a fault only)

    return _culprit(crash, lambda thread: pointer_culprit(target, thread.frames, thread.registers, pc, addr), pc)


def _divisor(crash: Crash, target, pc: Optional[int], where: str) -> str:
    """``: `count` is 0`` where a variable is the divisor (triage.culprit), else nothing."""
    from coredump.triage.culprit import divisor_culprit

    name = _culprit(crash, lambda thread: divisor_culprit(target, thread.frames, thread.registers, pc), pc)
    return f": `{name}` is 0{where}" if name else where


def _culprit(crash: Crash, find, pc: Optional[int]):
    """What `find(crashing thread)` names, None where it cannot tell or raises."""
    if pc is None or crash.crashing_thread is None:
        return None
    thread = crash.threads[crash.crashing_thread]
    if not thread.frames or thread.frames[0].args is None:
        return None  # values not read (--no-values: nothing of the program's data is shown)
    try:
        return find(thread)
    except Exception:  # noqa: BLE001 - the generic wording stands without a name
        return None


def _bus(crash: Crash, target, facts: Facts, regs) -> Explanation:
    s, where = crash.signal, _in(facts)
    # #AC reports no address (do_error_trap passes none): si_addr is 0.
    addr = f" at {s.address:#x}" if s.address else ""
    if s.code_name == "BUS_ADRALN":
        ac = " (alignment checking is on: EFLAGS.AC)" if regs.get("eflags", 0) & _EFLAGS_AC else ""
        return Explanation("bus-error", f"misaligned access{addr}{where}{ac}")
    if s.code_name == "BUS_ADRERR" and s.address is not None and target.memory.find_file_mapping(s.address):
        return Explanation("bus-error", f"access{addr} past the end of the file mapped there "
                                        f"({describe_mapping(target, s.address)}; truncated after mmap?){where}")
    return Explanation("bus-error", f"bus error{addr}{where}: {s.description}")


def _instruction(target, pc: Optional[int]) -> bytes:
    if pc is None:
        return b""
    try:
        return target.memory.read(pc, 2)
    except MemoryFault:
        return b""


def _classify(crash: Crash, target, facts: Facts) -> Explanation:
    s, where = crash.signal, _in(facts)
    sent = _sent(crash, facts)
    if sent is not None:
        return sent
    regs = crash.threads[crash.crashing_thread].registers if crash.crashing_thread is not None else {}
    arch = target.arch
    pc = regs.get(arch.pc) if arch else None
    sp = regs.get(arch.sp) if arch else None
    if s.name == "SIGABRT":
        return _abort(crash, facts)
    if s.name == "SIGSEGV":
        return _memory_fault(crash, target, facts, pc, sp)
    if s.name == "SIGBUS":
        return _bus(crash, target, facts, regs)
    if s.name == "SIGFPE":
        if s.code_name == "FPE_INTDIV":
            from coredump.triage.x86_divide import decode_divide_fault

            if pc is not None and arch.name == "x86_64" and decode_divide_fault(target.memory, pc, regs) == "overflow":
                return Explanation("integer-overflow", f"integer overflow in a signed division (the most "
                                                       f"negative value divided by -1){where}")
            return Explanation("divide-by-zero", f"integer division by zero{_divisor(crash, target, pc, where)}")
        if s.code_name == "FPE_INTOVF":
            return Explanation("integer-overflow", f"integer overflow trap{where}")
        return Explanation("floating-point", f"floating-point exception ({s.description}){where}")
    if s.name == "SIGILL":
        if _instruction(target, pc) == _UD2:
            return Explanation("illegal-instruction", f"ud2 trap instruction{where} (__builtin_trap() or a "
                                                      "trap the compiler inserted for undefined behaviour)")
        return Explanation("illegal-instruction", f"illegal instruction{where} ({s.description}; code built "
                                                  "for a newer CPU, or a corrupted jump)")
    if s.name == "SIGTRAP":
        return Explanation("breakpoint", f"breakpoint trap{where} (int3, __builtin_debugtrap or a debugger)")
    if s.name == "SIGSYS":
        return Explanation("bad-syscall", f"system call blocked ({s.description}){where}")
    return Explanation(s.name.lower(), f"{s.name} ({s.description}){where}")


def explain_reason(crash: Crash, target, facts: Facts) -> Explanation:
    """The classification and the one-sentence reason of `crash`."""
    if facts.go is not None:
        # The signal handler on the stack is the Go runtime's own, which re-raised the signal.
        return Explanation(facts.go.classification, describe_go_crash(facts.go, crash.signal.name))
    e = _classify(crash, target, facts)
    if facts.handled_signal and e.classification != "killed":
        e = Explanation(e.classification, f"{e.reason}, inside the handler for {signal_name(facts.handled_signal)}")
    return e
