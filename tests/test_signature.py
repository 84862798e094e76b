"""Signatures and fingerprints: stable across -O0 and -O2 builds, distinct across bugs."""

import os
import re
import resource
import shutil
import subprocess

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
from tests import cores
from tests.test_reason import make_killed_core

# One sample per bug (uselib crashes in libcrash.so; wild in its non-canonical mode).
SAMPLES = ["segv", "fpe", "abort_assert", "recursion", "threads", "sighandler", "illegal", "cxx_throw",
           "uselib", "rodata_write", "exec_heap", "misaligned", "double_free", "heap_overflow", "fortify",
           "int_overflow", "wild", "div_overflow", "mutual_recursion", "cxx_throw_kinds"]


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


def test_no_frames_has_no_runtime_note():
    result = generate_signature(_crash([]))
    assert result.signature == "SIGSEGV (no frames)"
    assert not any("C runtime" in n for n in result.notes)


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
    # Go methods (cmd/link names): the receiver stays; C++ parameters with a function pointer go
    ("main.(*ledger).post", "main.(*ledger).post"),
    ("net/http.(*conn).serve", "net/http.(*conn).serve"),
    ("main.(*List[go.shape.int_0]).Push", "main.(*List[go.shape.int_0]).Push"),
    ("main.ledger.settle", "main.ledger.settle"),
    ("run(int (*)(char))", "run"),
])
def test_normalize_function(name, normalized):
    assert normalize_function(name) == normalized


@pytest.mark.parametrize("name, other", [
    ("<app::Foo as core::fmt::Display>::fmt", "<app::Bar as core::fmt::Display>::fmt"),
    ("<app::Foo as core::fmt::Display>::fmt", "<app::Foo as core::fmt::Debug>::fmt"),
    ("<app::Foo>::value_of::<&str>", "<app::Bar>::value_of::<&str>"),
])
def test_distinct_rust_impls_do_not_merge(name, other):
    assert normalize_function(name) != normalize_function(other)


@pytest.mark.parametrize("names, normalized", [
    # v0 symbol, DWARF name (generics of the function and its impl follow the name), legacy symbol
    (("<rust_panic::Config>::value_of::<&str>", "rust_panic::Config::value_of<&str>",
      "rust_panic::Config::value_of::h0123456789abcdef"), "rust_panic::Config::value_of"),
    (("rust_panic::validate::<rust_panic::Config>::{closure#0}",
      "rust_panic::validate::{closure#0}<rust_panic::Config>"), "rust_panic::validate::{closure#0}"),
    (("<core::option::Option<u64>>::unwrap", "core::option::Option<u64>::unwrap<u64>",
      "core::option::Option<T>::unwrap::h0123456789abcdef"), "core::option::Option<T>::unwrap"),
    (("<core::slice::iter::Iter<&str> as core::iter::traits::iterator::Iterator>::fold::<u64, F>",
      "<core::slice::iter::Iter<T> as core::iter::traits::iterator::Iterator>::fold::h0123456789abcdef"),
     "<core::slice::iter::Iter<T> as core::iter::traits::iterator::Iterator>::fold"),
])
def test_rust_names_agree_across_dwarf_and_symbols(names, normalized):
    assert {normalize_function(n, rust=True) for n in names} == {normalized}


def test_rust_impl_namespace_from_dwarf_is_named_by_its_symbol():
    """DWARF's ``{impl#1}`` says nothing of the type; the linkage name does (v0 and legacy)."""
    dwarf = [Frame(0, 1, module="/p", function="rust_panic::{impl#1}::check", mangled=m) for m in (
        "_RNvXs_CsfeKkKwruTdU_10rust_panicNtB4_6ConfigNtB4_5Check5check",
        "_ZN56_$LT$rust_panic..Config$u20$as$u20$rust_panic..Check$GT$5check17hf3694860ae813301E")]
    symbol = Frame(0, 1, module="/p", function="<rust_panic::Config as rust_panic::Check>::check",
                   mangled=dwarf[0].mangled)
    assert {sig_frame(f).function for f in (*dwarf, symbol)} == {"<rust_panic::Config as rust_panic::Check>::check"}


def test_rust_provided_trait_method_is_named_by_its_trait():
    """v0 names a provided method with its self type (``Y``); DWARF and legacy symbols do not."""
    v0 = Frame(0, 1, module="/p", function="<fn() as core::ops::function::FnOnce<()>>::call_once",
               mangled="_RNvYFEuINtNtNtCsgEmfK2I1SDS_4core3ops8function6FnOnceuE9call_onceCs1_1a")
    dwarf = Frame(0, 1, module="/p", function="core::ops::function::FnOnce::call_once<fn(), ()>",
                  mangled=v0.mangled)
    assert sig_frame(v0).function == sig_frame(dwarf).function == "core::ops::function::FnOnce::call_once"


# -- mutual recursion ------------------------------------------------------------------------------

def _core_with_stack_limit(variant, program, kib, workdir):
    """A core of `program` run under ``ulimit -s kib``."""
    def limits():
        soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
        resource.setrlimit(resource.RLIMIT_STACK, (kib * 1024, resource.getrlimit(resource.RLIMIT_STACK)[1]))
    workdir.mkdir()
    subprocess.run([str(cores.BUILD / variant / program)], cwd=workdir, preexec_fn=limits, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return next(p for p in workdir.iterdir() if p.name == "core" or p.name.startswith("core."))


@pytest.mark.parametrize("variant", ["O0", "O2"])
def test_mutual_recursion_has_one_signature(make_core, tmp_path, variant):
    """Which of a() and b() hits the guard page depends on the stack limit (and on where ASLR
    put the stack top): run under different limits until both were on top."""
    make_core(variant, "recursion")  # builds the samples
    crashes = {}
    for kib in (8192, 5000, 4096, 6000, 3000, 7000, 2000, 4500, 5500, 3500, 2500, 6500):
        crash = analyze_core(str(_core_with_stack_limit(variant, "mutual_recursion", kib, tmp_path / str(kib))))
        _full_stacks(crash)
        crashes.setdefault(crash.threads[crash.crashing_thread].frames[0].function, crash)
        if len(crashes) == 2:
            break
    assert set(crashes) == {"a", "b"}
    a, b = crashes["a"], crashes["b"]
    assert a.signature == b.signature == "SIGSEGV in a < b (mutual recursion)"
    assert a.fingerprint == b.fingerprint
    plain = analyze_core(str(make_core(variant, "recursion")))
    assert plain.signature == "SIGSEGV in recurse" and plain.fingerprint != a.fingerprint


def test_cycle_keeps_the_frames_above_it_and_needs_repeats():
    helper = ["helper"] + ["b", "a"] * 10
    assert generate_signature(_crash(helper)).signature == "SIGSEGV in helper < a < b (mutual recursion)"
    three = ["a", "b", "c"] * 8
    assert generate_signature(_crash(["c", "a", "b"] * 8)).fingerprint == generate_signature(_crash(three)).fingerprint
    shallow = ["eval", "apply", "eval", "apply", "main"]  # not deep: the top is where it crashed
    assert generate_signature(_crash(shallow)).signature == "SIGSEGV in eval < apply < eval"
    plain = generate_signature(_crash(["a", "b"]))
    assert plain.fingerprint != generate_signature(_crash(["a", "b"] * 10)).fingerprint


# -- C++ exception type -----------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["O0", "O2"])
def test_uncaught_exception_type_is_in_the_signature(make_core, variant):
    crashes = {k: analyze_core(str(make_core(variant, "cxx_throw_kinds", k))) for k in ("int", "myerr", "range")}
    _full_stacks(crashes["int"])
    assert {k: c.signature for k, c in crashes.items()} == {
        "int": "SIGABRT (int) in f < main", "myerr": "SIGABRT (MyErr) in f < main",
        "range": "SIGABRT (std::out_of_range) in f < main"}
    assert len({c.fingerprint for c in crashes.values()}) == 3


def test_exception_type_enters_the_head():
    with_type = generate_signature(_crash(["f", "main"], signal=("SIGABRT", 6, -6)), exception="MyErr")
    without = generate_signature(_crash(["f", "main"], signal=("SIGABRT", 6, -6)))
    assert with_type.signature == "SIGABRT (MyErr) in f < main"
    assert with_type.fingerprint != without.fingerprint


# -- Rust: debug and no-debug builds, v0 and legacy mangling ----------------------------------------

@pytest.mark.parametrize("args", [(), ("unwrap",)])
def test_rust_builds_share_a_signature(tmp_path, args, monkeypatch):
    """rust_panic (DWARF names, v0 linkage names), rust_panic_legacy (DWARF, legacy) and
    rust_panic_nodebug (.symtab only, v0) are one program: one signature, and one fingerprint
    once the executables have one file name (the module name enters the fingerprint). With
    ``unwrap`` the debug builds see Option::unwrap inlined into main; the irrelevant-frame
    list skips it, since a build without DWARF cannot see inline frames. The clocks are
    lifted: on a loaded machine the DWARF budget cut std's DWARF, and the names changed."""
    from coredump.analysis import AnalyzeOptions
    from tests.budgets import lift_clocks
    from tests.rust_samples import build_rust_samples

    lift_clocks(monkeypatch)

    reason = cores.core_skip_reason()
    if reason:
        pytest.skip(reason)
    env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
    results = {}
    for program in ("rust_panic", "rust_panic_legacy", "rust_panic_nodebug"):
        (tmp_path / program).mkdir()
        exe = tmp_path / program / "rust_panic"
        shutil.copy2(build_rust_samples() / program, exe)
        _, core = cores.run_crash([str(exe), *args], tmp_path / program, env=env)
        crash = analyze_core(str(core), AnalyzeOptions(exe=str(exe)))
        results[program] = crash.signature, crash.fingerprint
    assert len(set(results.values())) == 1, results
    signature = results["rust_panic"][0]
    if args:
        assert signature == "SIGABRT in rust_panic::main < core::ops::function::FnOnce::call_once"
    else:
        assert signature == ("SIGABRT in rust_panic::Config::value_of"
                             " < <rust_panic::Config as rust_panic::Check>::check < rust_panic::validate::{closure#0}")


@pytest.mark.parametrize("program", ["cxx_throw", "abort_assert", "segv"])
def test_aarch64_qemu_core_has_the_x86_64_signature(crash_of, program):
    """A qemu-user core has no text pages and no NT_FILE: the exception's type name (a
    string in libstdc++'s .rodata) is read from the library's file, so the head still names it."""
    from coredump.analysis import AnalyzeOptions

    reason = cores.qemu_skip_reason() or cores.core_skip_reason()
    if reason:
        pytest.skip(reason)
    exe = cores.BUILD / "aarch64-O0" / program
    guest = analyze_core(str(cores.make_qemu_core("O0", program)),
                         AnalyzeOptions(exe=str(exe), sysroot=cores.AARCH64_SYSROOT))
    host = crash_of(program, "O0")
    assert (guest.signature, guest.fingerprint) == (host.signature, host.fingerprint)
