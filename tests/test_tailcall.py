"""Frames that tail calls removed, put back in every thread's backtrace from the caller's call
instruction; gdb (which rebuilds them from DWARF call sites) is the oracle."""


import pytest

from coredump.analysis import AnalyzeOptions, analyze_core
from coredump.elf.core import open_core
from coredump.elf.memory import AddressSpace, Segment
from coredump.model import Trust
from coredump.record import replace
from coredump.report.json import crash_to_dict
from coredump.report.text import render_text
from coredump.symbols.finder import FileFinder, FinderOptions
from coredump.target import Target
from coredump.unwind.tailcall import find_call_target, find_tail_jump, infer_tail_calls, resolve_plt
from tests import cores
from tests.gdb_oracle import run_gdb

O2_PROGRAMS = ["abort_assert", "segv", "fpe", "double_free", "sighandler", "uselib"]


def _analyze(variant, program, make_core, debug_files=None):
    core = make_core(variant, program)
    exe = cores.BUILD / variant / program
    options = debug_files.analyze_options(exe=str(exe)) if debug_files else AnalyzeOptions(exe=str(exe))
    return core, exe, analyze_core(str(core), options)


@pytest.mark.parametrize("program", O2_PROGRAMS)
def test_tail_call_frames_are_gdbs_at_O2(make_core, gdb, debug_files, program):
    """Each frame put back is one of gdb's TAILCALL frames: same number, pc (the return
    address of the jmp), function and file:line, and gdb has no other."""
    core, exe, crash = _analyze("O2", program, make_core, debug_files)
    report = run_gdb(str(exe), str(core), gdb, debug=debug_files)
    ours = {(t.tid, f.index): f for t in crash.threads for f in t.frames if f.tailcall}
    theirs = {(t.lwp, f.index): f for t in report.threads for f in t.frames if f.is_tailcall}
    assert ours and ours.keys() == theirs.keys()
    for key, f in ours.items():
        g = theirs[key]
        assert (f.pc, f.function, f.file, f.line) == (g.frame_pc, g.function, g.file, g.line), (f, g)
        assert f.trust == Trust.NONE and f.symbol_offset > 0  # the jmp's return address, past the entry
    for t in crash.threads:  # numbered as gdb numbers: no gap, no repeat
        assert [f.index for f in t.frames] == list(range(len(t.frames)))


@pytest.mark.parametrize("program", ["abort_assert", "segv", "fpe", "sighandler", "uselib"])
def test_O2_signature_names_the_O0_functions(make_core, program):
    assert _analyze("O2", program, make_core)[2].signature == _analyze("O0", program, make_core)[2].signature


@pytest.mark.parametrize("program", ["abort_assert", "segv", "double_free", "threads"])
def test_nothing_added_at_O0(make_core, debug_files, program):
    """Nothing in the -O0 program's own code (libc's tail calls, which libc6-dbg's call sites
    or its jmps show, are test_callsites.py's)."""
    _, exe, crash = _analyze("O0", program, make_core, debug_files)
    assert not [f for t in crash.threads for f in t.frames if (f.tailcall or f.trust == Trust.NONE)
                and f.module == str(exe)]


def test_reports_mark_the_frame(make_core):
    core, exe, crash = _analyze("O2", "abort_assert", make_core)
    frames = crash_to_dict(crash)["threads"][crash.crashing_thread]["frames"]
    marked = [f for f in frames if "tailcall" in f and f["module"] == crash.process.executable]
    assert [(f["function"], f["tailcall"], f["trust"]) for f in marked] == [("withdraw", True, "none")]
    line = next(x for x in render_text(crash).splitlines() if x.lstrip().startswith("#") and " withdraw " in x)
    assert line.endswith("[tail call]") and "abort_assert.c:12" in line


def _target(core, exe):
    return Target(open_core(str(core)), FileFinder(FinderOptions(exe=str(exe))))


def test_no_single_jump_keeps_the_entry(make_core):
    """A chain of two tail calls (main calls build, build jumps to fill_list, fill_list to
    store_value) without fill_list's frame: build's jmp goes to fill_list, not to the callee
    found, so the frame put back is build at its entry, with no line. Built without DWARF call
    sites (O2-nocs), which would say that no chain leads there."""
    core, exe, crash = _analyze("O2-nocs", "segv", make_core)
    frames = [f for f in crash.threads[crash.crashing_thread].frames if f.function not in ("build", "fill_list")]
    out = infer_tail_calls([replace(f, index=i) for i, f in enumerate(frames)], _target(core, exe))
    put_back = [f for f in out if f.tailcall]
    assert [(f.function, f.index, f.symbol_offset, f.file, f.line) for f in put_back] == [("build", 1, 0, None, None)]
    target = _target(core, exe)
    mod = target.find_module(put_back[0].pc)
    assert mod.symtab.lookup(put_back[0].pc - mod.bias) == ("build", 0)
    assert mod.function_start(put_back[0].pc + 1) == put_back[0].pc  # build's ELF symbol
    assert [f.index for f in out] == list(range(len(out)))


def _memory(code: bytes, at: int = 0x1000) -> AddressSpace:
    return AddressSpace(code, [Segment(at, len(code), 0, len(code), 5, len(code))])


def test_find_call_target():
    mem = _memory(b"\x90" * 11 + b"\xe8\xf0\xff\xff\xff" + b"\x90" * 16)  # call .-11 at 0x100b
    assert find_call_target(mem, 0x1010) == 0x1000
    assert find_call_target(mem, 0x1011) is None


def test_find_tail_jump():
    # 0x1000: jmp rel32 to 0x1100 (E9 FB 00 00 00); 0x1005: jmp rel8 to 0x1030 (EB 29)
    mem = _memory(b"\xe9\xfb\x00\x00\x00" + b"\xeb\x29" + b"\x90" * 0x140)
    assert find_tail_jump(mem, 0x1000, 0x1010, 0x1100) == 0x1005
    assert find_tail_jump(mem, 0x1000, 0x1010, 0x1030) == 0x1007
    assert find_tail_jump(mem, 0x1000, 0x1010, 0x1200) is None
    twice = _memory(b"\xe9\xfb\x00\x00\x00" + b"\xe9\xf6\x00\x00\x00" + b"\x90" * 0x140)
    assert find_tail_jump(twice, 0x1000, 0x1010, 0x1100) is None  # two jumps: which one?


def test_find_tail_jump_through_a_plt_stub():
    got = (0x7F0000001234).to_bytes(8, "little")
    # 0x1000: jmp rel8 to 0x1010, a stub `jmp *0x2(%rip)` whose slot at 0x1018 holds the callee
    mem = _memory(b"\xeb\x0e" + b"\x90" * 14 + b"\xff\x25\x02\x00\x00\x00\x90\x90" + got)
    assert find_tail_jump(mem, 0x1000, 0x1010, 0x7F0000001234) == 0x1002


def test_resolve_plt_follows_the_got_slot():
    got = (0x7F0000001234).to_bytes(8, "little")
    # jmp *0x2(%rip) at 0x1000 -> slot at 0x1008; then the slot itself
    mem = _memory(b"\xff\x25\x02\x00\x00\x00" + b"\x90\x90" + got)
    assert resolve_plt(mem, 0x1000) == 0x7F0000001234
    ibt = _memory(b"\xf3\x0f\x1e\xfa\xf2\xff\x25\x01\x00\x00\x00" + b"\x90" + got)
    assert resolve_plt(ibt, 0x1000) == 0x7F0000001234
    assert resolve_plt(_memory(b"\x90" * 16), 0x1000) is None


def _a64(*insns: int) -> bytes:
    return b"".join(i.to_bytes(4, "little") for i in insns)


def test_aarch64_find_call_target():
    # 0x1000: nop; 0x1004: bl .-4 (imm26 = -1: 0x97ffffff); 0x1008: bl .+0x100 (0x94000040)
    mem = _memory(_a64(0xD503201F, 0x97FFFFFF, 0x94000040) + b"\0" * 16)
    assert find_call_target(mem, 0x1008, "aarch64") == 0x1000
    assert find_call_target(mem, 0x100C, "aarch64") == 0x1108
    assert find_call_target(mem, 0x1004, "aarch64") is None  # after a nop
    assert find_call_target(mem, 0x1008) is None  # the same bytes are no x86_64 call


def test_aarch64_find_tail_jump():
    # 0x1000: b .+0x100 (0x14000040); 0x1004: b.le (0x5400010d, conditional: not a tail call);
    # 0x1008: b .-8 (0x17fffffe)
    mem = _memory(_a64(0x14000040, 0x5400010D, 0x17FFFFFE) + b"\0" * 0x120)
    assert find_tail_jump(mem, 0x1000, 0x100C, 0x1100, "aarch64") == 0x1004
    assert find_tail_jump(mem, 0x1000, 0x100C, 0x1000, "aarch64") == 0x100C
    assert find_tail_jump(mem, 0x1000, 0x100C, 0x1028, "aarch64") is None
    twice = _memory(_a64(0x14000040, 0x1400003F) + b"\0" * 0x120)
    assert find_tail_jump(twice, 0x1000, 0x1008, 0x1100, "aarch64") is None


def _a64_plt(bti: bool) -> AddressSpace:
    """A PLT entry at 0x1000 whose GOT slot is 0x2010 (page 0x2000, :lo12: 0x10), as binutils
    writes it: adrp x16, 0x2000 (immlo 1, immhi 0: 0xb0000010); ldr x17, [x16, #0x10]
    (imm12 2: 0xf9400a11); add x16, x16, #0x10 (0x91004210); br x17 (0xd61f0220)."""
    stub = _a64(0xB0000010, 0xF9400A11, 0x91004210, 0xD61F0220)
    code = (_a64(0xD503245F) + stub if bti else stub + _a64(0xD503201F))
    got = (0x7F0000001234).to_bytes(8, "little")
    return _memory(code + b"\0" * (0x1010 - len(code)) + got + b"\0" * 8)


def test_aarch64_resolve_plt_follows_the_got_slot():
    assert resolve_plt(_a64_plt(False), 0x1000, "aarch64") == 0x7F0000001234
    assert resolve_plt(_a64_plt(True), 0x1000, "aarch64") == 0x7F0000001234  # bti c first
    assert resolve_plt(_memory(_a64(0xD503201F) * 8), 0x1000, "aarch64") is None
    assert resolve_plt(_a64_plt(False), 0x1000) is None  # no x86_64 stub


def test_aarch64_find_tail_jump_through_a_plt_stub():
    # A function at 0x1800 whose b goes to the stub at 0x1000 (imm26 = -0x200), stub -> callee.
    mem = _a64_plt(False)
    data = bytearray(mem.read(0x1000, 0x1020))
    data[0x800:0x804] = _a64(0x17FFFE00)
    mem = _memory(bytes(data))
    assert find_tail_jump(mem, 0x1800, 0x1808, 0x7F0000001234, "aarch64") == 0x1804


def test_one_analysis_answers_each_question_on_its_own(make_core, monkeypatch):
    """The frames put back between a caller and a callee are remembered per analysis (the
    threads of a pool wait in the same calls): asked with one caller and two callees, or one
    callee under two names, one target gives what a fresh target gives each time, and a
    question asked again is not searched again."""
    from coredump.unwind import tailcall

    core, exe, crash = _analyze("O2-nocs", "segv", make_core)
    frames = crash.threads[crash.crashing_thread].frames
    without = [f for f in frames if f.function not in ("build", "fill_list")]
    variants = {
        "main calls, store_value found": without,
        "main calls, fill_list found": [f for f in frames if f.function != "build"],
        # the callee named after the function main's call names: nothing was removed
        "callee named build": [replace(f, function="build") if f.function == "store_value" else f for f in without],
        "as walked": list(frames),
    }

    def run(fs, target):
        out = infer_tail_calls([replace(f, index=i) for i, f in enumerate(fs)], target)
        return [(f.function, f.tailcall, f.line) for f in out]

    shared = _target(core, exe)
    got = {name: run(fs, shared) for name, fs in variants.items()}
    assert got == {name: run(fs, _target(core, exe)) for name, fs in variants.items()}
    assert ("build", True, None) in got["main calls, store_value found"]
    assert not any(tail for _, tail, _ in got["callee named build"])
    searched = []
    real = tailcall._find_missing_frames
    monkeypatch.setattr(tailcall, "_find_missing_frames", lambda *a: searched.append(a) or real(*a))
    assert {name: run(fs, shared) for name, fs in variants.items()} == got
    assert searched == []
