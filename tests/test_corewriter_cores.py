"""Damaged and odd cores built by tests/corewriter.py: each ends in a result with warnings or
one ``CoreDumpError`` (one ``Error:`` line in the CLI), within a few seconds."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import resource
import signal
import subprocess
import sys

import pytest

from coredump.analysis import MAX_WALKED_THREADS, AnalyzeOptions, analyze_core
from coredump.errors import CoreDumpError, CoreFormatError
from coredump.report.html import render_crash_html
from coredump.report.json import dumps
from coredump.report.junit import render_junit
from coredump.report.text import render_text
from tests.budgets import lift_clocks
from tests.corewriter import (
    BUILD_ID,
    CODE_BASE,
    EXE_NAME,
    PAGE,
    PF_R,
    PF_X,
    FileEntry,
    Load,
    Note,
    SiginfoDesc,
    ThreadDesc,
    build_core,
    default_notes,
    file_desc,
    fp_stack,
    layout,
    note_bytes,
    simple_process,
    write_core,
)

NT_PRSTATUS, NT_SIGINFO, NT_FILE = 1, 0x53494749, 0x46494C45


class Hang(Exception):
    """An analysis ran past its time limit."""


# A wait the CPU clock does not see (a blocking read) is failed after this many times the
# CPU limit of wall time: a margin for a machine whose other processes take the CPU.
WALL_FACTOR = 10


@contextlib.contextmanager
def bounded(seconds: float = 10.0, extra_memory: int = 1 << 30):
    """Fail an analysis that takes more than `seconds` of CPU time (ITIMER_PROF, setitimer(2):
    this process' user and system time, which other processes on the machine do not inflate)
    or WALL_FACTOR times that of wall time (ITIMER_REAL), or maps more than `extra_memory`
    bytes beyond what the process has now (RLIMIT_AS, so MemoryError)."""

    def on_timer(signum, frame):
        clock = "CPU" if signum == signal.SIGPROF else "wall-clock"
        raise Hang(f"analysis took more than {seconds * (1 if signum == signal.SIGPROF else WALL_FACTOR)} s "
                   f"of {clock} time")

    with open("/proc/self/statm") as f:
        vm_now = int(f.read().split()[0]) * resource.getpagesize()
    old_as = resource.getrlimit(resource.RLIMIT_AS)
    limit = vm_now + extra_memory
    if old_as[1] != resource.RLIM_INFINITY:
        limit = min(limit, old_as[1])
    old_handlers = {signo: signal.signal(signo, on_timer) for signo in (signal.SIGPROF, signal.SIGALRM)}
    resource.setrlimit(resource.RLIMIT_AS, (limit, old_as[1]))
    signal.setitimer(signal.ITIMER_PROF, seconds)
    signal.setitimer(signal.ITIMER_REAL, seconds * WALL_FACTOR)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        resource.setrlimit(resource.RLIMIT_AS, old_as)
        for signo, handler in old_handlers.items():
            signal.signal(signo, handler)


def analyze_everything(path, options=None, seconds: float = 10.0):
    """analyze_core and every renderer (text, JSON, HTML, JUnit); a Crash, or the CoreDumpError it raised. Anything
    else (a traceback, a hang, MemoryError) propagates and fails the test."""
    with bounded(seconds):
        try:
            crash = analyze_core(str(path), options)
        except CoreDumpError as exc:
            assert "\n" not in str(exc), repr(str(exc))
            return exc
        data = json.loads(dumps(crash))
        render_text(crash)
        render_text(crash, color=True)
        render_crash_html(data)
        render_junit([(None, data)])
    return crash


def analyze_desc(tmp_path, desc, name="core", options=None):
    path = tmp_path / name
    write_core(path, desc)
    return analyze_everything(path, options)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "coredump.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def crashing_frames(crash):
    return crash.threads[crash.crashing_thread].frames


def test_well_formed_core(tmp_path):
    crash = analyze_desc(tmp_path, simple_process())
    assert [t.tid for t in crash.threads] == [1000]
    assert crash.signal.name == "SIGSEGV" and crash.signal.address == 0
    frame = crashing_frames(crash)[0]
    assert frame.pc == CODE_BASE + PAGE + 4
    # The binary is missing: the frame still says module+offset.
    assert (frame.module, frame.module_offset) == (EXE_NAME, PAGE + 4)
    assert crash.process.argv == (EXE_NAME, "arg1")
    (mod,) = crash.modules
    assert (mod.path, mod.start, mod.build_id) == (EXE_NAME, CODE_BASE, BUILD_ID.hex())
    assert any(EXE_NAME in w and "not found" in w for w in crash.warnings)
    out = run_cli("analyze", "--format", "json", tmp_path / "core")
    assert out.returncode == 0 and '"SIGSEGV"' in out.stdout, out.stderr


def test_odd_note_alignment(tmp_path):
    """Notes padded to 1 instead of 4 (gABI): "CORE\\0" is 5 bytes, so every later header
    is read 3 bytes off; the notes are garbage after the first, never a traceback."""
    desc = simple_process()
    desc.notes = [dataclasses.replace(n, align=1) for n in _notes_of(desc)]
    crash = analyze_desc(tmp_path, desc)
    assert isinstance(crash, CoreDumpError) or crash.warnings


def test_eight_byte_note_alignment(tmp_path):
    desc = simple_process()
    desc.notes = [dataclasses.replace(n, align=8) for n in _notes_of(desc)]
    crash = analyze_desc(tmp_path, desc)
    assert not isinstance(crash, CoreDumpError)


def _notes_of(desc):
    return default_notes(desc)


def test_unsorted_segments_read_the_same(tmp_path):
    desc = simple_process()
    straight = analyze_desc(tmp_path, desc, "a")
    desc.loads.reverse()
    reversed_ = analyze_desc(tmp_path, desc, "b")
    assert crashing_frames(straight) == crashing_frames(reversed_)
    assert reversed_.modules == straight.modules and reversed_.process.argv == straight.process.argv


def test_overlapping_segments(tmp_path):
    desc = simple_process()
    code = desc.loads[0]
    # A second, writable mapping over the same code page, with other bytes.
    desc.loads.append(Load(CODE_BASE, b"\xcc" * (2 * PAGE), flags=PF_R))
    desc.loads.append(Load(CODE_BASE + PAGE // 2, b"\xcc" * PAGE, flags=PF_R | PF_X))
    crash = analyze_desc(tmp_path, desc)
    assert crashing_frames(crash)[0].pc == CODE_BASE + PAGE + 4
    assert code.vaddr == CODE_BASE


def test_filesz_past_end_of_file(tmp_path):
    """A truncated core: the stack's p_filesz claims 1 MiB more than the file holds. Threads
    and frame 0 come from the notes; a warning says how many bytes are missing."""
    desc = simple_process()
    desc.loads[1].filesz = desc.loads[1].memsz = STACK_SIZE_PLUS = 0x104000
    crash = analyze_desc(tmp_path, desc)
    assert crash.core.truncated
    assert crashing_frames(crash)[0].pc == CODE_BASE + PAGE + 4
    missing = STACK_SIZE_PLUS - len(desc.loads[1].data)
    assert any(f"{missing} bytes" in w for w in crash.warnings), crash.warnings


def test_truncated_inside_load_data(tmp_path):
    desc = simple_process()
    _, offsets = layout(desc)
    desc.truncate = offsets[1] + 0x80  # inside the stack, before the frames at +0x100
    crash = analyze_desc(tmp_path, desc)
    assert crash.core.truncated and crashing_frames(crash)[0].pc == CODE_BASE + PAGE + 4
    assert any("truncated" in w and "bytes" in w for w in crash.warnings)


def test_truncated_inside_notes(tmp_path):
    desc = simple_process()
    notes_off, _ = layout(desc)
    desc.truncate = notes_off + 400  # inside NT_PRPSINFO, after the first NT_PRSTATUS
    crash = analyze_desc(tmp_path, desc)
    assert crash.core.truncated and [t.tid for t in crash.threads] == [1000]
    assert any("notes" in w for w in crash.warnings)


def test_zero_length_notes(tmp_path):
    desc = simple_process()
    desc.notes = [Note(b"", 0, b"")] * 3 + _notes_of(desc) + [Note(b"CORE\0", NT_PRSTATUS, b"")]
    crash = analyze_desc(tmp_path, desc)
    assert [t.tid for t in crash.threads] == [1000]
    assert any("NT_PRSTATUS" in w for w in crash.warnings)


def test_duplicate_notes(tmp_path):
    desc = simple_process()
    desc.extra_notes = [n for n in _notes_of(desc) if n.n_type != NT_PRSTATUS]
    desc.extra_notes[1] = Note(b"CORE\0", NT_SIGINFO, b"\x06" + b"\0" * 127)  # a second, other signal
    crash = analyze_desc(tmp_path, desc)
    assert crash.signal.name == "SIGSEGV" and len(crash.threads) == 1
    assert crash.process.argv == (EXE_NAME, "arg1") and len(crash.modules) == 1


def test_many_threads_are_bounded(tmp_path, monkeypatch):
    """MAX_WALKED_THREADS bounds the walks (the unwinding clock is lifted: on a loaded
    machine it cut in first), and the analysis' CPU time with them."""
    lift_clocks(monkeypatch)
    desc = simple_process(nthreads=20000)
    crash = analyze_desc(tmp_path, desc)
    assert len(crash.threads) == 20000
    assert any("threads are unwound" in w for w in crash.warnings), crash.warnings
    assert all(len(t.frames) == 1 for t in crash.threads[MAX_WALKED_THREADS:])


def test_stack_that_loops_on_itself(tmp_path):
    stack, _ = fp_stack([(32, CODE_BASE + PAGE + 0x20)], loop_to=0)
    crash = analyze_desc(tmp_path, simple_process(stack=stack))
    frames = crashing_frames(crash)
    assert frames[0].pc == CODE_BASE + PAGE + 4 and len(frames) < 1024
    assert len({f.sp for f in frames[1:]}) == len(frames) - 1


def test_stack_with_a_cycle(tmp_path):
    stack, _ = fp_stack([(32, CODE_BASE + PAGE + 0x20), (48, CODE_BASE + PAGE + 0x40),
                         (64, CODE_BASE + PAGE + 0x60)], loop_to=0)
    crash = analyze_desc(tmp_path, simple_process(stack=stack), options=AnalyzeOptions(max_frames=100000))
    frames = crashing_frames(crash)
    assert frames[0].pc == CODE_BASE + PAGE + 4 and len(frames) < 100
    sps = [f.sp for f in frames[1:]]
    assert sps == sorted(set(sps)), "a walk that loops must stop before the stack pointer repeats"


def test_pc_in_unmapped_memory(tmp_path):
    crash = analyze_desc(tmp_path, simple_process({"rip": 0xDEAD0000}))
    (frame, *_) = crashing_frames(crash)
    assert frame.pc == 0xDEAD0000 and frame.module is None and frame.function is None


@pytest.mark.parametrize("regs", [
    {"rip": 0x8000_0000_0000_0000, "rsp": 0xFFFF_8000_0000_0000},
    {"rip": 0xFFFF_FFFF_FFFF_FFFF, "rsp": 0xFFFF_FFFF_FFFF_FFF8, "rbp": 0xFFFF_FFFF_FFFF_FFF8},
    {"rip": 0, "rsp": 0, "rbp": 0},
])
def test_non_canonical_addresses(tmp_path, regs):
    crash = analyze_desc(tmp_path, simple_process(regs, si_addr=0xDEAD_BEEF_0000_0000))
    assert crashing_frames(crash)[0].pc == regs["rip"]
    assert crash.signal.address == 0xDEAD_BEEF_0000_0000


def test_pn_xnum_program_header_count(tmp_path):
    desc = simple_process()
    plain = analyze_desc(tmp_path, desc, "a")
    desc.pn_xnum = True
    xnum = analyze_desc(tmp_path, desc, "b")
    assert crashing_frames(xnum) == crashing_frames(plain) and xnum.modules == plain.modules


def test_pn_xnum_claiming_too_many_headers(tmp_path):
    desc = simple_process()
    desc.pn_xnum = True
    data = bytearray(build_core(desc))
    # Section 0's sh_info (at 44 in Elf64_Shdr) claims 2**32 - 1 program headers.
    shoff = int.from_bytes(data[40:48], "little")
    data[shoff + 44:shoff + 48] = b"\xff\xff\xff\xff"
    path = tmp_path / "core"
    path.write_bytes(bytes(data))
    crash = analyze_everything(path)
    assert [t.tid for t in crash.threads] == [1000]
    assert any("4294967295 program headers claimed" in w for w in crash.warnings), crash.warnings


@pytest.mark.parametrize("e_phentsize", [0, 8, 55])
def test_program_header_size_too_small(tmp_path, e_phentsize):
    data = bytearray(build_core(simple_process()))
    data[0x36:0x38] = e_phentsize.to_bytes(2, "little")
    path = tmp_path / "core"
    path.write_bytes(bytes(data))
    result = analyze_everything(path)
    assert isinstance(result, CoreDumpError) and "e_phentsize" in str(result)


@pytest.mark.parametrize("size", [4, 5, 6, 20, 63])
def test_file_shorter_than_elf_header(tmp_path, size):
    """Found by test_fuzz: a 4-byte "\x7fELF" file raised IndexError."""
    desc = simple_process()
    desc.truncate = size
    result = analyze_desc(tmp_path, desc)
    assert isinstance(result, CoreDumpError) and ("ELF header" in str(result) or "64-bit" in str(result))


def test_note_descsz_past_segment(tmp_path):
    desc = simple_process()
    desc.extra_notes = [Note(b"CORE\0", NT_SIGINFO, b"\0" * 16, descsz=0x7FFF_FFFF)]
    crash = analyze_desc(tmp_path, desc)
    assert [t.tid for t in crash.threads] == [1000] and crash.signal.name == "SIGSEGV"
    assert any("past its segment" in w for w in crash.warnings), crash.warnings


def test_note_filesz_past_end_of_file(tmp_path):
    desc = simple_process()
    desc.note_filesz = 1 << 40
    crash = analyze_desc(tmp_path, desc)
    assert isinstance(crash, CoreDumpError) or crash.warnings


def test_nt_file_with_huge_count(tmp_path):
    desc = simple_process()
    desc.file_count = 1 << 62
    crash = analyze_desc(tmp_path, desc)
    assert [t.tid for t in crash.threads] == [1000]
    assert any("NT_FILE" in w for w in crash.warnings), crash.warnings


def test_nt_file_with_many_entries(tmp_path):
    desc = simple_process()
    desc.files += [FileEntry(0x10_0000_0000 + i * PAGE, 0x10_0000_0000 + (i + 1) * PAGE, 0, f"/lib/x{i}.so")
                   for i in range(50000)]
    crash = analyze_desc(tmp_path, desc)
    assert [t.tid for t in crash.threads] == [1000]


def test_nt_file_names_missing(tmp_path):
    desc = simple_process()
    desc.notes = [n for n in _notes_of(desc) if n.n_type != NT_FILE]
    desc.notes.append(Note(b"CORE\0", NT_FILE, file_desc(desc.files)[:16 + 24]))
    crash = analyze_desc(tmp_path, desc)
    assert [t.tid for t in crash.threads] == [1000]


def test_missing_siginfo_uses_pr_cursig(tmp_path):
    desc = simple_process(signo=6)
    desc.siginfo = None
    crash = analyze_desc(tmp_path, desc)
    assert crash.signal.number == 6 and crash.signal.name == "SIGABRT" and crash.signal.code is None
    assert crash.crashing_thread == 0


def test_no_prstatus_at_all(tmp_path):
    desc = simple_process()
    desc.notes = [n for n in _notes_of(desc) if n.n_type != NT_PRSTATUS]
    crash = analyze_desc(tmp_path, desc)
    assert crash.threads == () and crash.crashing_thread is None
    assert crash.signal.name == "SIGSEGV"
    assert any("NT_PRSTATUS" in w for w in crash.warnings)
    out = run_cli("analyze", tmp_path / "core")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr


def test_no_notes_and_no_segments(tmp_path):
    from tests.corewriter import CoreDesc

    # Nothing to explain: one error that says why, not an empty report.
    result = analyze_desc(tmp_path, CoreDesc())
    assert isinstance(result, CoreFormatError) and "nothing could be read" in str(result)


def test_short_prstatus(tmp_path):
    desc = simple_process()
    desc.threads[0].size = 100
    crash = analyze_desc(tmp_path, desc)
    assert any("NT_PRSTATUS" in w for w in crash.warnings)


def test_thread_with_siginfo_other_signal(tmp_path):
    desc = simple_process(nthreads=3)
    desc.threads[0].cursig = 0
    desc.threads[2] = ThreadDesc(1002, desc.threads[0].regs, 11)
    desc.siginfo = SiginfoDesc(11, 1, 0, 0x10)
    crash = analyze_desc(tmp_path, desc)
    assert crash.threads[crash.crashing_thread].tid == 1002


def test_unknown_machine(tmp_path):
    desc = simple_process()
    desc.machine = 0x1234
    crash = analyze_desc(tmp_path, desc)
    assert any("unsupported architecture" in w for w in crash.warnings)


def test_one_line_error_for_headers_past_eof(tmp_path):
    data = build_core(simple_process())
    path = tmp_path / "core"
    path.write_bytes(data[:100])  # inside the program headers
    out = run_cli("analyze", path)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.startswith("Error: ") and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_note_bytes_layout():
    """The writer's own framing, checked against the gABI by hand."""
    assert note_bytes(Note(b"CORE\0", 1, b"ab")) == b"\x05\0\0\0\x02\0\0\0\x01\0\0\0CORE\0\0\0\0ab\0\0"


def test_thread_notes_past_the_limit_are_counted(tmp_path, monkeypatch):
    import coredump.elf.core

    monkeypatch.setattr(coredump.elf.core, "MAX_THREADS", 10)
    crash = analyze_desc(tmp_path, simple_process(nthreads=15))
    assert len(crash.threads) == 10
    assert any("5 threads past the first 10 ignored" in w for w in crash.warnings), crash.warnings
