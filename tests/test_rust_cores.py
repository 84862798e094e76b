"""Real cores of c_samples/rust_panic.rs (-C panic=abort): frames against gdb, the panic's
message and location read back from memory, and the classification."""

import os
import re

import pytest

from coredump.analysis import AnalyzeOptions, analyze_core
from tests import cores
from tests.gdb_oracle import run_gdb
from tests.rust_samples import build_rust_samples, make_rust_core

# c_samples/rust_panic.rs: Config::value_of's panic!, and Option::unwrap in main
PANIC_MESSAGE = 'config value "width" out of range: 4242 > 1000'
UNWRAP_MESSAGE = "called `Option::unwrap()` on a `None` value"
_crashes = {}


def analyzed(program, *args, debug_files=None):
    """(exe, core, Crash), analyzed once per session: a -g Rust build takes seconds."""
    key = (program, *args, debug_files)
    if key not in _crashes:
        exe = build_rust_samples() / program
        core = make_rust_core(program, *args)
        options = debug_files.analyze_options(exe=str(exe)) if debug_files else AnalyzeOptions(exe=str(exe))
        _crashes[key] = exe, core, analyze_core(str(core), options)
    return _crashes[key]


def _source_line(text: str) -> int:
    """The last line with `text` (the file's header comment quotes the code)."""
    source = (build_rust_samples().parent.parent / "rust_panic.rs").read_text().splitlines()
    return [i for i, line in enumerate(source, 1) if text in line][-1]


def _without_disambiguators(name):
    """gdb prints a symbol-table name as c++filt does, with ``crate[hash]`` and ``::h<hash>``."""
    return re.sub(r"::h[0-9a-f]{16}$", "", re.sub(r"\[[0-9a-f]+\]", "", name)) if name else name


@pytest.mark.parametrize("program", ["rust_panic", "rust_panic_legacy", "rust_panic_nodebug"])
def test_frames_match_gdb(gdb, debug_files, program):
    """With DWARF, gdb names a Rust frame by DW_AT_name under its namespaces
    (``rust_panic::{impl#1}::check``) whichever the mangling; without, by its demangled symbol."""
    exe, core, crash = analyzed(program, debug_files=debug_files)
    theirs = run_gdb(str(exe), str(core), gdb, debug=debug_files).crashing.frames
    ours = crash.threads[crash.crashing_thread].frames
    assert [f.index for f in ours] == [f.index for f in theirs]
    for o, t in zip(ours, theirs):
        assert o.function == _without_disambiguators(t.function), (o.index, o.function, t.function)
        if t.file is not None:
            assert (o.file or "").endswith(t.file) and o.line == t.line, (o.index, o, t)
    names = [f.function for f in ours]
    assert "rust_panic::main" in names
    if program != "rust_panic_nodebug":
        assert any(f.mangled and f.mangled.startswith("_R" if program == "rust_panic" else "_ZN") for f in ours)


@pytest.mark.parametrize("program", ["rust_panic", "rust_panic_legacy", "rust_panic_nodebug"])
def test_panic_message(program):
    """The formatted message (a String the default hook built) and the panic's Location."""
    _, _, crash = analyzed(program)
    line = _source_line('panic!("config value')
    assert crash.signal.name == "SIGABRT" and crash.classification == "panic"
    assert re.fullmatch(rf"panicked at \S*rust_panic\.rs:{line}:\d+: " + re.escape(PANIC_MESSAGE),
                        crash.assertion), crash.assertion
    assert crash.reason.startswith("Rust panic in ") and crash.reason.endswith(": " + PANIC_MESSAGE)
    assert "value_of" in crash.signature.split(" < ")[0]


def test_static_str_panic_message():
    """``Option::unwrap`` panics with a &'static str payload, not a formatted String."""
    _, _, crash = analyzed("rust_panic_nodebug", "unwrap")
    line = _source_line("missing.unwrap()")
    assert crash.classification == "panic"
    assert re.fullmatch(rf"panicked at \S*rust_panic\.rs:{line}:\d+: " + re.escape(UNWRAP_MESSAGE),
                        crash.assertion), crash.assertion


def test_unsafe_null_write_is_a_segfault():
    """A write two words past a null pointer in `unsafe` code: no panic, a null-page fault."""
    _, _, crash = analyzed("rust_panic_nodebug", "segv")
    assert crash.signal.name == "SIGSEGV" and crash.signal.address == 0x10
    assert crash.classification == "null-deref" and crash.assertion is None
    top = crash.threads[crash.crashing_thread].frames[0].function
    assert top == "rust_panic::store" and crash.signature.startswith("SIGSEGV in rust_panic::store")


def test_executable_mapped_twice_is_one_module(tmp_path):
    """With RUST_BACKTRACE=1 std maps the executable and libc a second time, read-only, to
    print its backtrace: the loaded (executable) mapping is the module, and libc frames keep
    their names."""
    reason = cores.core_skip_reason()
    if reason:
        pytest.skip(reason)
    exe = build_rust_samples() / "rust_panic"
    _, core = cores.run_crash([str(exe)], tmp_path, env={**os.environ, "RUST_BACKTRACE": "1"})
    crash = analyze_core(str(core), AnalyzeOptions(exe=str(exe)))
    main = next(m for m in crash.modules if m.path == str(exe))
    assert main.end - main.start < 64 << 20  # one image, not the span of two mappings
    frames = crash.threads[crash.crashing_thread].frames
    # Physical frames: with libc's debug files, pthread_kill's jump to the static
    # __pthread_kill_implementation (frame 0) is a tail-call frame between them.
    physical = [f for f in frames if not f.tailcall and not f.inline]
    # gdb names them by DW_AT_linkage_name where libc6-dbg is installed (__GI_raise)
    assert [f.function.removeprefix("__GI_") for f in physical[1:3]] == ["raise", "abort"]
    assert all(f.trust.tag != "scan" for f in frames)
