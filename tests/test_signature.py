"""Signatures and fingerprints: stable across -O0 and -O2 builds, distinct across bugs."""

import re

import pytest

from coredump.analysis import analyze_core
from coredump.model import CoreInfo, Crash, Frame, Process, Signal, Thread, Trust
from coredump.triage.signature import (
    RULES,
    Rule,
    compute_fingerprint,
    generate_signature,
    normalize_function,
    sig_frame,
)
from tests.test_reason import make_killed_core

# One sample per bug (uselib crashes in libcrash.so; wild in its non-canonical mode).
SAMPLES = ["segv", "fpe", "abort_assert", "recursion", "threads", "sighandler", "illegal", "cxx_throw",
           "uselib", "rodata_write", "exec_heap", "misaligned", "double_free", "heap_overflow", "fortify",
           "int_overflow", "wild", "div_overflow"]


@pytest.fixture(scope="module")
def crash_of(make_core):
    cache = {}

    def get(program, variant):
        if (program, variant) not in cache:
            cache[program, variant] = analyze_core(str(make_core(variant, program)))
        return cache[program, variant]
    return get


def _full_stacks(crash):
    if len(crash.threads[crash.crashing_thread].frames) < 3:
        pytest.skip("this tree's stack walk gives frame 0 only")


@pytest.mark.parametrize("program", SAMPLES)
def test_same_signature_at_O0_and_O2(crash_of, program):
    o0, o2 = crash_of(program, "O0"), crash_of(program, "O2")
    assert o0.signature == o2.signature
    assert o0.fingerprint == o2.fingerprint
    assert re.fullmatch(r"[0-9a-f]{16}", o0.fingerprint)


@pytest.mark.parametrize("program", SAMPLES)
def test_signature_has_no_addresses_or_runtime_frames(crash_of, program):
    crash = crash_of(program, "O2")
    _full_stacks(crash)
    assert not re.search(r"0x|\+|libc\.so|raise|abort|__pthread_kill|__assert_fail|malloc_printerr|__cxa_throw|"
                         r"std::terminate|_start|__libc_start", crash.signature)


def test_different_bugs_never_share_a_fingerprint(crash_of):
    crashes = {p: crash_of(p, "O2") for p in SAMPLES}
    _full_stacks(crashes["segv"])
    by_fp = {}
    for program, crash in crashes.items():
        by_fp.setdefault(crash.fingerprint, []).append(program)
    assert [v for v in by_fp.values() if len(v) > 1] == []
    assert len({c.signature for c in crashes.values()}) == len(SAMPLES)


@pytest.mark.parametrize("program, signature", [
    ("segv", "SIGSEGV in store_value < fill_list < build"),
    ("abort_assert", "SIGABRT in check_balance < withdraw < main"),
    ("double_free", "SIGABRT in close_session < main"),
    ("heap_overflow", "SIGABRT in rename_user < main"),
    ("fortify", "SIGABRT in set_name < main"),
    ("cxx_throw", "SIGABRT (std::runtime_error) in store::load_config < main"),
    ("int_overflow", "SIGABRT in add_tickets < sell < main"),
    ("sighandler", "SIGSEGV in on_usr1 < busy_loop < main"),
    ("exec_heap", "SIGSEGV in dispatch < run_plugin < main"),
    ("recursion", "SIGSEGV in recurse"),
])
@pytest.mark.parametrize("variant", ["O0", "O2"])
def test_expected_signatures(crash_of, program, signature, variant):
    crash = crash_of(program, variant)
    _full_stacks(crash)
    assert crash.signature == signature


def test_static_build_skips_named_libc_frames(crash_of):
    crash = crash_of("abort_assert", "static")
    _full_stacks(crash)
    assert crash.signature == "SIGABRT in check_balance < withdraw < main"


def test_signal_sent_by_another_process_is_marked(make_core):
    crash = analyze_core(str(make_killed_core()))
    _full_stacks(crash)
    assert crash.signature.startswith("SIGSEGV (kill) in ")
    assert "pause" not in crash.signature


# -- rules on hand-made stacks -----------------------------------------------------------------

def _crash(names, module="prog", signal=("SIGSEGV", 11, 1), sender=None):
    frames = tuple(Frame(i, 0x1000 + i, trust=Trust.CFI, module=m, module_offset=0x10 * i, function=n)
                   for i, (n, m) in enumerate((x if isinstance(x, tuple) else (x, module)) for x in names))
    name, number, code = signal
    return Crash(CoreInfo("core", 1), Process(42, "prog"), Signal(number, name, code, None, 0, "", sender),
                 0, (Thread(42, {}, frames),), ())


def test_unnamed_libc_frames_on_top_are_skipped():
    libc = "/lib/x86_64-linux-gnu/libc.so.6"
    crash = _crash([(None, libc), ("raise", libc), ("abort", libc), (None, libc), ("free", libc),
                    "close_session", "main", ("__libc_start_call_main", libc), "_start"],
                   signal=("SIGABRT", 6, -6))
    assert generate_signature(crash).signature == "SIGABRT in close_session < main"


def test_trampoline_below_a_handler_is_dropped():
    libc = "/usr/lib/libc.so.6"
    crash = _crash(["on_usr1", ("<signal handler called>", None), (None, libc), ("raise", libc), "busy_loop",
                    "main"])
    assert generate_signature(crash).signature == "SIGSEGV in on_usr1 < busy_loop < main"


def test_recursion_collapses():
    assert generate_signature(_crash(["recurse"] * 30 + ["main"])).signature == "SIGSEGV in recurse < main"


def test_all_runtime_frames_fall_back_to_named_ones():
    libc = "/lib/libc.so.6"
    result = generate_signature(_crash([(None, libc), ("raise", libc), ("abort", libc)], signal=("SIGABRT", 6, -6)))
    assert result.signature == "SIGABRT in raise < abort"
    assert result.notes


def test_module_names_enter_the_fingerprint_not_paths():
    a = generate_signature(_crash(["f", "main"], module="/build/a/prog"))
    b = generate_signature(_crash(["f", "main"], module="/other/place/prog"))
    c = generate_signature(_crash(["f", "main"], module="/build/a/tool"))
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert a.signature == c.signature


def test_a_failing_rule_becomes_a_note():
    class Broken(Rule):
        def action(self, state):
            raise ValueError("boom")

    result = generate_signature(_crash(["f"]), rules=(Broken(), *RULES))
    assert result.signature == "SIGSEGV in f"
    assert any("Broken failed: boom" in n for n in result.notes)


def test_fingerprint_depends_on_signal():
    frames = [sig_frame(Frame(0, 1, module="/p", function="f"))]
    assert compute_fingerprint("SIGSEGV", frames) != compute_fingerprint("SIGBUS", frames)


@pytest.mark.parametrize("name, normalized", [
    ("store::load_config(store::Config const&)", "store::load_config"),
    ("fill_list.constprop.0", "fill_list"),
    ("parse.isra.0.cold", "parse"),
    ("f [clone .cold]", "f"),
    ("(anonymous namespace)::worker(int)", "(anonymous namespace)::worker"),
    ("Foo::operator()(int) const", "Foo::operator()"),
    ("std::map<int, int>::operator[](int const&)", "std::map<T>::operator[]"),
    ("void run<std::vector<int> >(int)", "run<T>"),
    ("app::main::h0123456789abcdef", "app::main"),
    ("__GI___libc_free", "__libc_free"),
    ("__strlen_avx2", "strlen"),
    ("__memmove_avx_unaligned_erms", "memmove"),
])
def test_normalize_function(name, normalized):
    assert normalize_function(name) == normalized
