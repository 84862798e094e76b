"""Frames that tail calls removed, put back from the caller's call instruction; gdb (which
rebuilds them from DWARF call sites) is the oracle."""

import re
import subprocess

import pytest

from coredump.analysis import analyze_core
from coredump.elf.core import open_core
from coredump.elf.memory import AddressSpace, Segment
from coredump.model import Trust
from coredump.symbols.finder import FileFinder, FinderOptions
from coredump.target import Target
from coredump.triage.tailcall import find_call_target, infer_tail_calls, resolve_plt
from tests import cores


def _frames_with_tail_calls(core_path):
    crash = analyze_core(str(core_path))
    core = open_core(str(core_path))
    try:
        target = Target(core, FileFinder(FinderOptions(None, None, (), (), ())))
        return crash, infer_tail_calls(crash.threads[crash.crashing_thread].frames, target)
    finally:
        core.close()


def _gdb_program_functions(gdb, exe, core):
    """gdb's bt, the program's own frames only (library frames say "from /lib/...")."""
    out = subprocess.run([gdb, "-batch", "-nx", "-ex", "bt", str(exe), str(core)], capture_output=True,
                         text=True, timeout=120).stdout
    names = []
    for line in dict.fromkeys(out.splitlines()):  # gdb prints frame 0 twice
        m = re.match(r"#\d+\s+(?:0x[0-9a-f]+ in )?([\w:~]+) ", line)
        if m and " from /" not in line and m.group(1) != "_start":
            names.append(m.group(1))
    return names


@pytest.mark.parametrize("program", ["abort_assert", "segv", "double_free", "sighandler", "uselib"])
def test_program_frames_match_gdb_at_O2(make_core, gdb, program):
    core = make_core("O2", program)
    _, frames = _frames_with_tail_calls(core)
    ours = [f.function for f in frames if f.module and "/c_samples/" in f.module and f.function != "_start"]
    assert ours == _gdb_program_functions(gdb, cores.BUILD / "O2" / program, core)
    assert any(f.trust == Trust.NONE for f in frames)  # at least one frame was put back


@pytest.mark.parametrize("program", ["abort_assert", "segv", "double_free"])
def test_nothing_added_at_O0(make_core, program):
    _, frames = _frames_with_tail_calls(make_core("O0", program))
    assert not [f for f in frames if f.trust == Trust.NONE]


def _memory(code: bytes, at: int = 0x1000) -> AddressSpace:
    return AddressSpace(code, [Segment(at, len(code), 0, len(code), 5, len(code))])


def test_find_call_target():
    mem = _memory(b"\x90" * 11 + b"\xe8\xf0\xff\xff\xff" + b"\x90" * 16)  # call .-11 at 0x100b
    assert find_call_target(mem, 0x1010) == 0x1000
    assert find_call_target(mem, 0x1011) is None


def test_resolve_plt_follows_the_got_slot():
    got = (0x7F0000001234).to_bytes(8, "little")
    # jmp *0x2(%rip) at 0x1000 -> slot at 0x1008; then the slot itself
    mem = _memory(b"\xff\x25\x02\x00\x00\x00" + b"\x90\x90" + got)
    assert resolve_plt(mem, 0x1000) == 0x7F0000001234
    ibt = _memory(b"\xf3\x0f\x1e\xfa\xf2\xff\x25\x01\x00\x00\x00" + b"\x90" + got)
    assert resolve_plt(ibt, 0x1000) == 0x7F0000001234
    assert resolve_plt(_memory(b"\x90" * 16), 0x1000) is None
