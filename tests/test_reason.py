"""Reasons and classifications of real cores, one sample per kind of crash."""

import os
import resource
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from coredump.analysis import analyze_core
from coredump.model import CoreInfo, Crash, Process, Signal
from coredump.triage.reason import Facts, explain_reason
from tests import cores


def _raise_core_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))


_killed = {}


def make_killed_core(variant: str = "O0") -> Path:
    """A core of wait_kill killed with SIGSEGV by this process (kill(2): SI_USER, our pid)."""
    if variant in _killed:
        return _killed[variant]
    cores.build_samples()
    workdir = Path(tempfile.mkdtemp(prefix="coredump-kill-"))
    proc = subprocess.Popen([str(cores.BUILD / variant / "wait_kill")], cwd=workdir, stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, preexec_fn=_raise_core_limit)
    try:
        assert proc.stdout.readline() == b"ready\n"  # it is in pause() (or about to be)
        os.kill(proc.pid, signal.SIGSEGV)
        assert proc.wait(timeout=60) == -signal.SIGSEGV
    finally:
        proc.stdout.close()
        if proc.poll() is None:
            proc.kill()
    found = [p for p in workdir.iterdir() if p.name == "core" or p.name.startswith("core.")]
    assert found, "wait_kill was killed but left no core"
    _killed[variant] = found[0]
    return found[0]


@pytest.fixture(scope="module")
def crash_of(make_core):
    cache = {}

    def get(program, variant="O0", *args):
        key = (program, variant, args)
        if key not in cache:
            cache[key] = analyze_core(str(make_core(variant, program, *args)))
        return cache[key]
    return get


@pytest.mark.parametrize("variant", ["O0", "O2"])
def test_null_pointer_with_field_offset(crash_of, variant):
    crash = crash_of("segv", variant)
    assert crash.classification == "null-deref"
    # The pointer is store_value's parameter n (issue #17 item 3; tests/test_culprit.py).
    assert crash.reason.startswith("null pointer dereference: `n` is NULL (offset 0x8) in store_value")


def test_null_pointer_in_shared_library(crash_of):
    crash = crash_of("uselib")  # libcrash.so writes to 0x10: offset 0x10
    assert crash.classification == "null-deref"
    assert "at offset 0x10" in crash.reason and "lib_parse" in crash.reason


def test_wild_non_canonical_pointer(crash_of):
    crash = crash_of("wild", "O2")
    assert crash.signal.code_name == "SI_KERNEL"
    assert crash.classification == "wild-pointer"
    assert "non-canonical" in crash.reason and "next_id" in crash.reason


def test_wild_unmapped_pointer(crash_of):
    crash = crash_of("wild", "O0", "unmapped")
    assert crash.classification == "wild-pointer"
    assert "unmapped address 0x10000000000" in crash.reason


def test_write_to_read_only_memory(crash_of):
    crash = crash_of("rodata_write", "O2")
    assert crash.signal.code_name == "SEGV_ACCERR"
    assert crash.classification == "write-read-only"
    assert f"write to read-only memory at {crash.signal.address:#x} (mapped from rodata_write)" in crash.reason


def test_execute_of_heap(crash_of):
    crash = crash_of("exec_heap", "O2")
    assert crash.signal.address == crash.threads[crash.crashing_thread].registers["rip"]
    assert crash.classification == "execute-non-executable"
    assert "anonymous memory" in crash.reason


@pytest.mark.parametrize("variant", ["O0", "O2"])
def test_stack_overflow(crash_of, variant):
    crash = crash_of("recursion", variant)
    assert crash.classification == "stack-overflow"
    assert "guard gap below the stack" in crash.reason and "recurse" in crash.reason


def test_stack_overflow_names_the_recursion(crash_of):
    crash = crash_of("recursion", "O2")
    if len(crash.threads[crash.crashing_thread].frames) < 2:
        pytest.skip("this tree's stack walk gives frame 0 only")
    assert "recursion: recurse repeats" in crash.reason
    thread = crash.threads[crash.crashing_thread]
    if thread.frames_omitted:  # the whole depth, not only the frames kept, is what the reader needs
        assert f"{len(thread.frames) + thread.frames_omitted:,} frames deep" in crash.reason


def test_divide_by_zero(crash_of):
    crash = crash_of("fpe", "O2")
    assert (crash.classification, crash.reason) == ("divide-by-zero",
                                                    "integer division by zero: `count` is 0 in average")


def test_ud2_trap(crash_of):
    crash = crash_of("illegal", "O2")
    assert crash.classification == "illegal-instruction"
    assert crash.reason.startswith("ud2 trap instruction in unreachable_state")


def test_misaligned_access(crash_of):
    crash = crash_of("misaligned", "O2")
    assert crash.signal.code_name == "BUS_ADRALN"
    assert crash.classification == "bus-error"
    assert crash.reason == "misaligned access in load_word (alignment checking is on: EFLAGS.AC)"


def test_killed_by_another_process(make_core):
    crash = analyze_core(str(make_killed_core()))
    assert crash.signal.code_name == "SI_USER" and crash.signal.sender_pid == os.getpid()
    assert crash.classification == "killed"
    assert crash.reason.startswith(f"killed by SIGSEGV sent with kill() by process {os.getpid()}")


@pytest.mark.parametrize("variant", ["O0", "O2"])
def test_crash_inside_signal_handler(crash_of, variant):
    crash = crash_of("sighandler", variant)
    assert crash.classification == "null-deref"
    assert crash.reason == "null pointer dereference in on_usr1, inside the handler for SIGUSR1"


def test_plain_fault_is_not_in_a_handler(crash_of):
    assert "handler" not in crash_of("segv").reason


@pytest.mark.parametrize("program, classification, words", [
    ("abort_assert", "assertion", "assertion `balance >= 0 && \"balance must never go negative\"` failed "
                                  "in check_balance (abort_assert.c:7)"),
    ("double_free", "heap-corruption", "free(): double free detected in tcache 2"),
    ("heap_overflow", "heap-corruption", "malloc(): corrupted top size"),
    ("fortify", "buffer-overflow", "buffer overflow caught by _FORTIFY_SOURCE"),
    ("cxx_throw", "uncaught-exception", "uncaught C++ exception std::runtime_error: config file not found"),
])
@pytest.mark.parametrize("variant", ["O0", "O2", "static"])
def test_abort_kinds(crash_of, program, classification, words, variant):
    crash = crash_of(program, variant)
    assert crash.signal.name == "SIGABRT"
    assert crash.classification == classification
    assert words in crash.reason


def test_integer_overflow_with_ftrapv(crash_of):
    crash = crash_of("int_overflow", "O2")
    if len(crash.threads[crash.crashing_thread].frames) < 2:
        pytest.skip("this tree's stack walk gives frame 0 only; __addvsi3 is frame 3")
    assert crash.classification == "integer-overflow"
    assert crash.reason == "signed integer overflow trapped by -ftrapv (__addvsi3) in add_tickets"


def test_reason_without_target_memory_keeps_kernel_words():
    sig = Signal(8, "SIGFPE", 1, "FPE_INTDIV", 0x1000, "integer divide by zero at 0x1000")
    crash = Crash(CoreInfo("core", 1), Process(1, "p"), sig, None, (), ())

    class NoTarget:
        arch = None

    e = explain_reason(crash, NoTarget(), Facts(where="f"))
    assert (e.classification, e.reason) == ("divide-by-zero", "integer division by zero in f")


@pytest.mark.parametrize("variant", ["O0", "O2", "static"])
def test_division_overflow_is_not_divide_by_zero(crash_of, variant):
    crash = crash_of("div_overflow", variant)
    assert crash.signal.code_name == "FPE_INTDIV"  # the kernel cannot tell them apart
    assert crash.classification == "integer-overflow"
    assert crash.reason.endswith("(the most negative value divided by -1) in scale")
