"""Tail-call frames from DWARF call sites (coredump/dwarf/callsites.py, coredump/unwind/callchain.py)
and from the instructions where there are none, against gdb's TAILCALL frames on the same core,
with the machine's debug files (libc6-dbg's where installed)."""

import re
import subprocess
from typing import Optional

import pytest

from coredump.analysis import AnalyzeOptions, analyze_core
from coredump.elf.core import open_core
from coredump.symbols.finder import FileFinder, FinderOptions
from coredump.target import Target
from tests import cores
from tests.gdb_oracle import run_gdb

# (variant, program, args): every sample that tail-calls at -O2, the abort paths through libc
# (whose pthread_kill tail-calls __pthread_kill_implementation), the ambiguous chain and the loop.
SAMPLES = [("O2", "trap"), ("O2", "session"), ("O2", "name_length"), ("O2", "abort_assert"),
           ("O2", "segv"), ("O2", "double_free"), ("O2", "sighandler"), ("O2", "uselib"),
           ("O2", "tail_paths"), ("O2", "tail_paths", "loop"), ("O0", "abort_assert"),
           ("O0", "double_free"), ("O0", "threads"), ("O0", "fortify")]


def _crash(make_core, variant, program, *args):
    core = make_core(variant, program, *args)
    exe = cores.BUILD / variant / program
    return core, exe, analyze_core(str(core), AnalyzeOptions(exe=str(exe)))


def _ours(crash):
    return {(t.tid, f.index): (f.pc, f.function, f.file, f.line) for t in crash.threads for f in t.frames
            if f.tailcall}


def _gdbs(report):
    return {(t.lwp, f.index): (f.frame_pc, f.function, f.file, f.line) for t in report.threads
            for f in t.frames if f.is_tailcall}


def vaddr(crash, frame) -> int:
    """The frame's pc as an address of its module's file."""
    return frame.pc - next(m.load_bias for m in crash.modules if m.path == frame.module)


def _jump_before(module: str, offset: int) -> Optional[str]:
    """objdump's text of the instruction that ends at virtual address `offset` of the file
    `module` when it is a direct jmp (rel32, 5 bytes, or rel8, 2), else None."""
    for size in (5, 2):
        out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--start-address={offset - size:#x}",
                              f"--stop-address={offset:#x}", module], capture_output=True, text=True).stdout
        insns = [line for line in out.splitlines() if re.match(r"^\s*[0-9a-f]+:\s", line)]
        if len(insns) == 1 and re.search(r"\sjmp\s+[0-9a-f]+ <", insns[0]):
            return insns[0]
    return None


@pytest.mark.parametrize("sample", SAMPLES, ids=["-".join(s) for s in SAMPLES])
def test_tail_call_frames_are_gdbs(make_core, gdb, sample):
    """Each tail-call frame gdb shows is ours, at the same number, pc, name and file:line. We
    show more only where the caller has no call sites (an -O0 main) or gdb's search cannot
    resolve (strlen, an ifunc) and the instruction before the frame's pc is a direct jmp
    (objdump is the oracle): a tail call the code proves."""
    core, exe, crash = _crash(make_core, *sample)
    theirs = _gdbs(run_gdb(str(exe), str(core), gdb))
    ours = _ours(crash)
    frames = {(t.tid, f.index): f for t in crash.threads for f in t.frames}
    extra = [frames[k] for k in ours.keys() - theirs.keys()]
    assert {k: ours[k] for k in ours.keys() & theirs.keys()} == theirs
    assert all(_jump_before(f.module, vaddr(crash, f)) for f in extra), extra
    for t in crash.threads:
        assert [f.index for f in t.frames] == list(range(len(t.frames)))


@pytest.mark.parametrize("program", ["abort_assert", "double_free", "session"])
def test_libc_tail_call_with_its_debug_info(make_core, gdb, program):
    """With libc's debug file, the frame above __pthread_kill_implementation is the tail call
    of pthread_kill, at the return pc of its DW_TAG_call_site, named after the function inlined
    there (__pthread_kill_internal), with its file:line as gdb spells it."""
    core, exe, crash = _crash(make_core, "O2", program)
    libc = next(m for m in crash.modules if "/libc.so" in m.path)
    if libc.debug_file is None:
        pytest.skip("libc has no separate debug file here (Debian: libc6-dbg)")
    frames = crash.threads[crash.crashing_thread].frames
    report = run_gdb(str(exe), str(core), gdb)
    gdb_frames = report.thread_by_lwp(crash.threads[crash.crashing_thread].tid).frames
    assert frames[0].function == gdb_frames[0].function == "__pthread_kill_implementation"
    ours, theirs = frames[1], gdb_frames[1]
    assert theirs.is_tailcall and ours.tailcall
    assert (ours.pc, ours.function, ours.file, ours.line) == (theirs.frame_pc, theirs.function, theirs.file,
                                                              theirs.line)
    assert ours.module == libc.path and ours.source_path


def _program_tail_frames(crash, report, program):
    """gdb's tail-call frames in the program itself (not libc's), by offset in it."""
    exe = next(m for m in crash.modules if m.path.endswith("/" + program))
    return [(f.frame_pc - exe.start, f.function, f.file, f.line) for t in report.threads for f in t.frames
            if f.is_tailcall and exe.start <= f.frame_pc < exe.end]


@pytest.mark.parametrize("program", ["trap", "session"])
def test_without_call_sites_the_instructions_give_gdbs_frames(make_core, gdb, program):
    """Built without DW_TAG_call_site (O2-nocs: the same code), gdb shows no tail call in the
    program; ours come from the instructions (a 2-byte jmp rel8 into a function whose crash is
    in its .cold part; a chain of two jumps) and are the frames gdb builds from the call sites
    of the O2 build."""
    core, exe, crash = _crash(make_core, "O2-nocs", program)
    assert not _program_tail_frames(crash, run_gdb(str(exe), str(core), gdb), program)
    o2_core, o2_exe, o2_crash = _crash(make_core, "O2", program)
    want = _program_tail_frames(o2_crash, run_gdb(str(o2_exe), str(o2_core), gdb), program)
    got = [(f.module_offset, f.function, f.file, f.line) for t in crash.threads for f in t.frames
           if f.tailcall and f.module and f.module.endswith("/" + program)]
    assert want and got == want


def test_a_jmp_rel8_frame_sits_at_its_return_address(make_core, gdb):
    """trap's step is one 2-byte `jmp rel8` (Intel SDM Vol. 2A, JMP: EB cb): the frame is at
    the jmp's return address, with step's line, as gdb's (DW_AT_call_return_pc)."""
    core, exe, crash = _crash(make_core, "O2", "trap")
    step = next(f for f in crash.threads[0].frames if f.tailcall)
    target = Target(open_core(str(core)), FileFinder(FinderOptions(exe=str(exe))))
    assert target.read_code(step.pc - 2, 1) == b"\xeb"
    theirs = next(f for f in run_gdb(str(exe), str(core), gdb).threads[0].frames if f.is_tailcall)
    assert (step.pc, step.function, step.file, step.line) == (theirs.frame_pc, "step", theirs.file, theirs.line)


def test_a_proved_tail_call_gdb_misses(make_core, gdb):
    """name_length ends in `jmp strlen@plt`: gdb looks the call site's strlen up as the ifunc's
    resolver and finds no chain; the jmp (objdump's disassembly is the oracle) and the GOT slot
    prove the tail call, so the frame stays, at the jmp's return address (where libc's symbols
    name frame 0)."""
    core, exe, crash = _crash(make_core, "O2", "name_length")
    assert not _gdbs(run_gdb(str(exe), str(core), gdb))
    frames = crash.threads[0].frames
    put_back = [f for f in frames if f.tailcall]
    if frames[0].function is None:
        # Without libc's debug file __strlen_evex is a local symbol nobody has: frame 0 is
        # unnamed, nothing tells that the jmp's target holds it, and no frame is made up.
        assert put_back == [] and [f.function for f in frames[1:2]] == ["main"]
        return
    assert [(f.index, f.function) for f in put_back] == [(1, "name_length")]
    assert frames[0].function.startswith("__strlen")
    dump = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(exe)], capture_output=True, text=True).stdout
    jumps = re.findall(r"^\s*([0-9a-f]+):\s+jmp\s+[0-9a-f]+ <strlen@plt>", dump, re.M)
    assert len(jumps) == 1
    assert put_back[0].module_offset == int(jumps[0], 16) + 5  # E9 cd: 5 bytes


def test_an_ambiguous_chain_and_a_loop(make_core, gdb):
    """dispatch reaches crash_here through left or right: two chains that share no call, so no
    frame (the instructions alone would have put dispatch back, at its entry); ping and pong
    tail-call each other: the chains through the loop share ping's last call, gdb's one frame."""
    _, _, crash = _crash(make_core, "O2", "tail_paths")
    assert not _ours(crash)
    assert [f.function for f in crash.threads[0].frames[:2]] == ["crash_here", "main"]
    _, _, loop = _crash(make_core, "O2", "tail_paths", "loop")
    assert [(f.function, f.tailcall) for f in loop.threads[0].frames[:3]] == [
        ("crash_here", False), ("ping", True), ("main", False)]


def test_call_sites_from_data_by_value():
    """FunctionCallSites.from_data remembers by the whole value: equal data gives the same
    record, data differing in one return address (or one target) its own."""
    from coredump.dwarf.callsites import FunctionCallSites

    data = (0x1000, ((0x1010, False, (0x2000,), None, ((5, b"\x50"),)), (0x1020, True, (), "abort", ())))
    other_pc = (0x1000, ((0x1011, False, (0x2000,), None, ((5, b"\x50"),)), (0x1020, True, (), "abort", ())))
    other_target = (0x1000, ((0x1010, False, (0x2008,), None, ((5, b"\x50"),)), (0x1020, True, (), "abort", ())))
    first = FunctionCallSites.from_data(data)
    assert FunctionCallSites.from_data(tuple(data)) is first
    assert first.at(0x1010).targets == (0x2000,) and first.at(0x1011) is None
    assert FunctionCallSites.from_data(other_pc).at(0x1011) is not None
    assert FunctionCallSites.from_data(other_target).at(0x1010).targets == (0x2008,)
    assert [s.return_pc for s in first.tail_calls] == [0x1020]
    listed = [0x1000, [[0x1010, False, (0x2000,), None, ()]]]  # unhashable: built afresh
    assert FunctionCallSites.from_data(listed).at(0x1010).targets == (0x2000,)


def test_entry_values_call_site_is_asked_per_caller_and_callee(make_core, debug_files):
    """entry_values.find_call_site in one analysis (its memo) gives what a fresh analysis
    gives for every (callee, caller) pair of the crashing thread, the real pairs first: a
    caller's call site is its callee's only (a memo keyed by the caller alone would hand
    the site to any callee)."""
    from coredump.dwarf.entry_values import find_call_site

    core = make_core("O2", "segv")
    exe = cores.BUILD / "O2" / "segv"

    def target():
        return Target(open_core(str(core)), FileFinder(debug_files.finder_options(exe=str(exe))))

    crash = analyze_core(str(core), debug_files.analyze_options(exe=str(exe)))
    frames = [f for f in crash.threads[crash.crashing_thread].frames if not f.inline]
    pairs = [(i, i + 1) for i in range(len(frames) - 1)] + \
        [(i, j) for j in range(len(frames)) for i in range(j - 1) if i != j]
    shared = target()
    found = [find_call_site(shared, frames[i], frames[j]) for i, j in pairs]
    assert found == [find_call_site(target(), frames[i], frames[j]) for i, j in pairs]
    real = found[:len(frames) - 1]
    assert any(s is not None for s in real)
    assert any(s is None for s in found[len(frames) - 1:])
