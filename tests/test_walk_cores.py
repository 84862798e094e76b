"""The walk on real kernel cores of c_samples/, frame by frame against gdb, and on the
elfutils corpus cores against the backtraces that elfutils' own tests expect."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from coredump.elf.core import open_core
from coredump.symbols.finder import FileFinder, FinderOptions
from coredump.target import Target
from coredump.unwind import walk_thread, x86_64
from coredump.unwind.common import SIGNAL_HANDLER_CALLED
from tests.cores import BUILD

VARIANTS = ("O0", "O2", "stripped", "static")
PROGRAMS = ("segv", "threads", "sighandler", "abort_assert", "cxx_throw", "uselib")
CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "elfutils"

# gdb stops at main by default; our walk goes on to _start as drgn and elfutils do.
GDB = ("-batch", "-nx", "-ex", "set backtrace past-main on")
# gdb's frame types (gdb.TAILCALL_FRAME, gdb.SIGTRAMP_FRAME), printed after the backtraces.
FRAME_TYPES = r"""python
for th in gdb.selected_inferior().threads():
    th.switch()
    f, i = gdb.newest_frame(), 0
    while f is not None:
        print("FRAMETYPE %d %d %d" % (th.ptid[1], i, f.type()))
        try:
            f, i = f.older(), i + 1
        except gdb.error:
            break
"""
_THREAD = re.compile(r"^Thread \d+ .*\bLWP (\d+)\)")
_FRAME = re.compile(r"^#(\d+)\s+(?:(0x[0-9a-f]+) in )?(.*)$")


def open_target(core, exe, search_paths=()):
    options = FinderOptions(exe=str(exe), search_paths=list(search_paths))
    return Target(open_core(str(core)), FileFinder(options))


def parse_bt(text):
    """{tid: [(index, pc or None, rest of line)]} from `thread apply all bt`; a lone `bt`
    (one thread) lands under tid None."""
    threads, current = {}, None
    for line in text.splitlines():
        m = _THREAD.match(line)
        if m:
            current = int(m.group(1))
            threads[current] = []
            continue
        m = _FRAME.match(line)
        if m:
            frames = threads.setdefault(current, [])
            index = int(m.group(1))
            if not frames or frames[-1][0] < index:  # gdb repeats frame 0 of the crash
                frames.append((index, int(m.group(2), 16) if m.group(2) else None, m.group(3)))
    return threads


def gdb_threads(gdb, exe, core):
    out = subprocess.run([gdb, *GDB, "-ex", "thread apply all bt", "-ex", FRAME_TYPES, str(exe), str(core)],
                         capture_output=True, text=True, timeout=120).stdout
    types = {}
    for line in out.splitlines():
        if line.startswith("FRAMETYPE "):
            tid, index, kind = map(int, line.split()[1:])
            types[(tid, index)] = kind
    threads = parse_bt(out)
    threads.pop(None, None)  # the "#0" line gdb prints for the crashing thread on load
    return threads, types


TAILCALL_FRAME, SIGTRAMP_FRAME = 3, 4


def assert_matches_gdb(frames, gdb_frames, types, tid, registers):
    # gdb adds frames for tail calls from DW_TAG_call_site (DW_AT_call_tail_call): they have
    # no stack frame of their own, so a physical unwinder cannot see them.
    expected = [f for f in gdb_frames if types.get((tid, f[0])) != TAILCALL_FRAME]
    assert len(frames) == len(expected), (tid, [hex(f.pc) for f in frames], expected)
    for ours, (index, pc, rest) in zip(frames, expected):
        if types.get((tid, index)) == SIGTRAMP_FRAME or rest.startswith("<signal handler called>"):
            assert ours.function == SIGNAL_HANDLER_CALLED, (tid, index)
        elif pc is None:  # gdb omits the address of a frame 0 that sits at a line's start
            assert index == 0 and ours.pc == registers["rip"]
        else:
            assert ours.pc == pc, (tid, index, hex(ours.pc), hex(pc))


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_frames_match_gdb(make_core, gdb, variant, program):
    core = make_core(variant, program)
    exe = BUILD / variant / program
    target = open_target(core, exe)
    expected, types = gdb_threads(gdb, exe, core)
    assert set(expected) == {t.tid for t in target.core.threads}
    for thread in target.core.threads:
        result = walk_thread(target, thread.registers)
        assert not result.truncated and result.warnings == []
        assert_matches_gdb(result.frames, expected[thread.tid], types, thread.tid, thread.registers)


def test_signal_frames(make_core):
    """The handler's caller is the trampoline, named as gdb names it; the frame it
    interrupted has an exact pc (trust signal)."""
    core = make_core("O2", "sighandler")
    target = open_target(core, BUILD / "O2" / "sighandler")
    frames = walk_thread(target, target.core.threads[0].registers).frames
    names = [f.function for f in frames]
    i = names.index(SIGNAL_HANDLER_CALLED)
    assert i == 1 and frames[i + 1].trust.tag == "signal" and frames[i + 1].lookup_pc == frames[i + 1].pc



@pytest.mark.parametrize("variant", VARIANTS)
def test_ucontext_decoding_agrees_with_glibc_cfi(make_core, variant):
    """glibc describes __restore_rt with CFI expressions over the same ucontext; the
    signal-frame strategy, which reads the kernel's struct layout, must agree with it."""
    core = make_core(variant, "sighandler")
    target = open_target(core, BUILD / variant / "sighandler")
    frames = walk_thread(target, target.core.threads[0].registers).frames
    by_ucontext = x86_64.caller_by_signal_frame(frames[1], target)
    assert by_ucontext is not None and by_ucontext.trust.tag == "signal"
    for name in ("rip", "rsp", "rbp", "rbx", "r12", "r15"):
        assert by_ucontext.registers[name] == frames[2].registers[name], name


@pytest.mark.parametrize("variant", VARIANTS)
def test_deep_recursion_top_and_bottom_match_gdb(make_core, gdb, variant):
    core = make_core(variant, "recursion")
    exe = BUILD / variant / "recursion"
    target = open_target(core, exe)
    result = walk_thread(target, target.core.threads[0].registers)
    out = subprocess.run([gdb, *GDB, "-ex", "bt 1100", "-ex", "bt -40", str(exe), str(core)],
                         capture_output=True, text=True, timeout=300).stdout
    by_index = {i: pc for i, pc, _ in parse_bt(out)[None] if pc is not None}
    by_index.setdefault(0, target.core.threads[0].registers["rip"])
    gdb_total = max(by_index) + 1
    assert result.truncated and len(result.frames) == 1024
    assert result.frames[-1].index + 1 == gdb_total
    assert result.frames_omitted == gdb_total - len(result.frames)
    assert [f.pc for f in result.frames] == [by_index[f.index] for f in result.frames]


@pytest.fixture(scope="module")
def corpus():
    if not (CORPUS / "expected.json").exists():
        pytest.skip("the elfutils corpus is not beside this checkout")
    cases = json.loads((CORPUS / "expected.json").read_text())["cases"]
    return [c for c in cases if c["arch"] == "x86_64"]


def _symbol(target, frame):
    module = target.find_module(frame.lookup_pc)
    if module is None or module.symtab is None:
        return None
    found = module.symtab.lookup(frame.lookup_pc - module.bias)
    return found[0] if found else None


def _same_function(symbol, expected):
    if symbol is None:
        return False
    if "(" in expected:  # elfutils demangles; the symbol table holds the mangled name
        base = expected.split("(")[0]
        return symbol == base or f"{len(base)}{base}" in symbol
    return symbol.lstrip("_") == expected.lstrip("_")


def test_corpus_backtraces(corpus):
    for case in corpus:
        target = open_target(CORPUS / case["core"], CORPUS / case["exe"], [str(CORPUS)])
        for thread in target.core.threads:
            result = walk_thread(target, thread.registers)
            expected = case["threads"][str(thread.tid)]
            names = [_symbol(target, f) for f in result.frames]
            # elfutils' expectations stop at main; the frames past it are in a libc that is
            # not in the corpus (found by scanning) or in the static executable.
            assert len(names) >= len(expected), (case["core"], names)
            for name, want in zip(names, expected):
                assert _same_function(name, want), (case["core"], thread.tid, names, expected)
            if "frame0_pc" in case and thread.tid == case["crashing_tid"]:
                assert result.frames[0].pc == int(case["frame0_pc"], 16)
