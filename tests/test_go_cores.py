"""Real cores of c_samples/go_nil (GOTRACEBACK=crash): a binary with a compressed
.debug_frame and no .eh_frame unwound by its CFI alone, every thread's frames against gdb,
the frames gdb cannot reach (past the Go runtime's own signal trampoline) against the
runtime's traceback, and the reason against what the runtime printed."""

import re
import signal

import pytest

from coredump.analysis import AnalyzeOptions, analyze_core
from coredump.elf.compressed import SHF_COMPRESSED
from coredump.elf.image import open_image
from coredump.model import SIGNAL_HANDLER_CALLED, Trust
from coredump.unwind.goruntime import HEURISTIC_TOPS, TOP_OF_STACK
from tests.gdb_oracle import run_gdb
from tests.go_samples import make_go_core, parse_go_traceback

_crashes = {}
# runtime/signal_unix.go sigpanic's report: "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x...]"
_SIGNAL_LINE = re.compile(r"^\[signal (SIG\w+): .* pc=(0x[0-9a-f]+)\]$", re.M)
_PANIC_LINE = re.compile(r"^panic: (?:runtime error: )?(.*)$", re.M)


def analyzed(mode=(), debug_files=None):
    key = (mode, debug_files)
    if key not in _crashes:
        run = make_go_core("go_nil", *mode)
        options = debug_files.analyze_options(exe=str(run.exe)) if debug_files else AnalyzeOptions(exe=str(run.exe))
        _crashes[key] = run, analyze_core(str(run.core), options)
    return _crashes[key]


def _crashing_goroutine(stderr):
    """The runtime's traceback of the goroutine that panicked: the first printed, [running]."""
    first = re.search(r"^goroutine (\d+) \[running\]", stderr, re.M)
    return parse_go_traceback(stderr)[int(first.group(1))]


def test_the_binary_has_only_a_compressed_debug_frame_and_unwinds_by_it():
    run, crash = analyzed()
    image = open_image(str(run.exe))
    assert not image.has_section(".eh_frame") and not image.has_section(".eh_frame_hdr")
    assert image.section_flags(".debug_frame") & SHF_COMPRESSED or image.has_section(".zdebug_frame")
    for thread in crash.threads:
        physical = [f for f in thread.frames if not f.inline]
        # No guessing: each caller by CFI (or through a signal frame), no frame made up.
        assert all(f.trust in (Trust.CONTEXT, Trust.CFI, Trust.SIGNAL) for f in physical), thread.frames
        assert not any(f.tailcall for f in thread.frames), thread.frames


def _compare(ours, theirs):
    for o, t in zip(ours, theirs):
        assert o.index == t.index and o.function == t.function, (o, t)
        assert o.pc == (t.pc if t.pc is not None else t.frame_pc), (o, t)
        assert o.inline == t.is_inline and (o.file, o.line) == (t.file, t.line), (o, t)


def test_frames_match_gdb(gdb, debug_files):
    """Every thread (the runtime's Ms too) as gdb shows it, up to where gdb loses the stack:
    gdb does not know the Go runtime's sigreturn trampoline (it names it ``??``, then shows
    garbage), and an M's stack ends in a ``0x0 in ??`` frame; ours has the trampoline
    there, as "<signal handler called>", or ends."""
    run, crash = analyzed(debug_files=debug_files)
    report = run_gdb(str(run.exe), str(run.core), gdb, debug=debug_files)
    assert len(report.threads) == len(crash.threads) > 1
    for thread in crash.threads:
        theirs = report.thread_by_lwp(thread.tid).frames
        named = next(i for i, t in enumerate(theirs) if t.function is None)
        _compare(thread.frames, theirs[:named])
        if theirs[named].pc == 0:
            assert len(thread.frames) == named, thread.frames
        else:
            assert thread.frames[named].function == SIGNAL_HANDLER_CALLED
            assert thread.frames[named].pc == theirs[named].pc


def test_frames_past_the_signal_frame_match_the_runtime_traceback():
    """Past the trampoline: the runtime's crash path, then the goroutine that faulted, as the
    runtime's own traceback printed it (gopanic is printed ``panic``), pcs included: the
    faulting function's is its faulting instruction (runtime.sigpanic's caller)."""
    run, crash = analyzed()
    ours = crash.threads[crash.crashing_thread].frames
    go = _crashing_goroutine(run.stderr)
    assert go[0].function == "panic"
    start = next(i for i, f in enumerate(ours) if f.function == "runtime.gopanic")
    assert len(ours) - start == len(go)
    for o, g in zip(ours[start:], go):
        assert o.function == ("runtime.gopanic" if g.function == "panic" else g.function), (o, g)
        assert (o.file, o.line) == (g.file, g.line), (o, g)
        assert o.inline == (g.pc is None), (o, g)
        if g.pc is not None:
            assert o.pc == g.pc, (o, g)


def _expected_reason(run, what, signal_name):
    core_signal = signal.Signals(-run.returncode).name
    return f"Go runtime: {what}{signal_name} in {{}}, re-raised as {core_signal} by the runtime (GOTRACEBACK=crash)"


def test_reason_names_the_fault_and_the_runtime_re_raise():
    """Not "abort() called in runtime.raise, inside the handler for SIGHUP": the signal the
    runtime reported, in the function at the pc it reported, then the runtime's re-raise."""
    run, crash = analyzed()
    sig, pc = _SIGNAL_LINE.search(run.stderr).groups()
    assert "nil pointer dereference" in _PANIC_LINE.search(run.stderr).group(1)
    faulted = next(f.function for f in _crashing_goroutine(run.stderr) if f.pc == int(pc, 16))
    assert crash.reason == _expected_reason(run, "nil pointer dereference", f" ({sig})").format(faulted)
    assert crash.classification == "null-deref"
    assert crash.signature == f"{crash.signal.name} in {faulted} < main.main"


@pytest.mark.parametrize("mode, what, classification", [
    ("divide", "integer divide by zero", "divide-by-zero"),  # amd64: the compiler's check, no SIGFPE
    ("panic", "panic", "panic"),
])
def test_reason_of_a_runtime_error_and_of_a_panic(mode, what, classification):
    run, crash = analyzed((mode,))
    message = _PANIC_LINE.search(run.stderr).group(1)
    assert what in message or what == "panic"
    assert _SIGNAL_LINE.search(run.stderr) is None  # no fault: the runtime printed no signal
    go = _crashing_goroutine(run.stderr)
    caller = next(f.function for f in go if not f.function.startswith("runtime.") and f.function != "panic")
    assert crash.reason == _expected_reason(run, what, "").format(caller)
    assert crash.classification == classification


def test_without_dwarf_no_frame_is_made_up():
    """-ldflags=-w: no .debug_frame, so frame pointers. A frameless assembly function
    (runtime.raise, runtime.futex) makes the chain skip its caller, whose call names another
    function than the one found below it; that caller calls it, so no tail call removed a
    frame, and none is put back (it was once: ``runtime.dieFromSignal`` at its first byte)."""
    run = make_go_core("go_nil_nodwarf")
    crash = analyze_core(str(run.core), AnalyzeOptions(exe=str(run.exe)))
    for thread in crash.threads:
        assert not any(f.tailcall for f in thread.frames), thread.frames
        # runtime/traceback.go topofstack: a stack starts in mstart, mcall, goexit...; what a
        # frame-pointer chain or a scan finds above one is a stale word of a reused stack
        # (it once gave mcall < mstart < clone, and traceback1 as a tail call after mstart).
        starts = [i for i, f in enumerate(thread.frames) if f.function in TOP_OF_STACK]
        assert not starts or starts[0] == len(thread.frames) - 1, thread.frames
    assert any(f.function in TOP_OF_STACK for t in crash.threads for f in t.frames)
    ours = crash.threads[crash.crashing_thread].frames
    sig, pc = _SIGNAL_LINE.search(run.stderr).groups()
    faulted = next(f for f in ours if f.pc == int(pc, 16))
    assert faulted.function == next(f.function for f in _crashing_goroutine(run.stderr) if f.pc == int(pc, 16))
    # Without DWARF the inlined runtime.panicmem is not seen: the fault's kind is not told.
    assert crash.reason == _expected_reason(run, "fatal signal", "").format(faulted.function)


def test_a_method_frame_is_named_as_gdb_names_it(gdb, debug_files):
    """``go_nil method``: one thread sits in read(2) under main.(*waiter).block, a frame gdb
    reaches (no Go signal trampoline on that stack): the thread's frames, that method's name
    with its pointer receiver among them, are gdb's."""
    run, crash = analyzed(("method",), debug_files=debug_files)
    report = run_gdb(str(run.exe), str(run.core), gdb, debug=debug_files)
    waiting = [t for t in report.threads if "main.(*waiter).block" in [f.function for f in t.frames]]
    assert len(waiting) == 1, [[f.function for f in t.frames] for t in report.threads]
    theirs = waiting[0].frames
    ours = next(t for t in crash.threads if t.tid == waiting[0].lwp).frames
    named = next((i for i, t in enumerate(theirs) if t.function is None), len(theirs))
    assert len(ours) == named and "main.(*waiter).block" in [f.function for f in ours]
    _compare(ours, theirs[:named])


def test_a_method_keeps_its_receiver_in_the_signature():
    """The Go linker names a method ``main.(*ledger).post``: the receiver is no C++ parameter
    list to strip (it once gave ``main..post``). The signature is the panicking goroutine's
    frames as the runtime's traceback names them."""
    run, crash = analyzed(("method",))
    go = [f.function for f in _crashing_goroutine(run.stderr) if f.function != "panic"]
    assert go[:3] == ["main.(*ledger).post", "main.ledger.settle", "main.main"]
    assert crash.signature == f"{crash.signal.name} in {go[0]} < {go[1]} < {go[2]}"
    assert crash.reason == _expected_reason(run, "panic", "").format(go[0])


def test_without_dwarf_every_stack_ends_at_its_top_frame():
    """The runtime's TOPFRAME functions end a stack (runtime/traceback.go) where no CFI goes
    on, and so does runtime.clone. A frame-pointer chain went on past runtime.mstart, or
    past runtime.clone in a thread just made, into the stack of the thread that made the M
    (clone(2) leaves the child its parent's rbp), with frames that depended on what ran
    there since (tail calls were put back between them), or found runtime.clone by
    scanning."""
    run = make_go_core("go_nil_nodwarf")
    crash = analyze_core(str(run.core), AnalyzeOptions(exe=str(run.exe)))
    tops = set(HEURISTIC_TOPS)
    ended = 0
    for thread in crash.threads:
        names = [f.function for f in thread.frames]
        at = next((i for i, name in enumerate(names) if name in tops), None)
        assert at is None or at == len(names) - 1, names
        ended += at is not None
    assert ended >= len(crash.threads) - 1  # every M but the goroutine's, which ends in runtime.main
