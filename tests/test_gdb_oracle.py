"""The whole stack of every thread from ``coredump analyze --format json`` against gdb on
the same core: every c_samples variant and program, cores of programs nobody here wrote
(python3, sleep), and the elfutils corpus against the frames elfutils' tests expect.

Every difference from gdb is an explicit exception below, with its reason."""

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from tests import budgets, cores
from tests.cores import BUILD
from tests.gdb_oracle import SIGNAL_HANDLER_CALLED, parse_frame, run_gdb, run_gdb_deep, strip_params
from tests.test_callsites import _jump_before

PROGRAMS = ["segv", "fpe", "abort_assert", "threads", "sighandler", "illegal", "cxx_throw", "uselib", "jit"]
VARIANTS = ["O0", "O2", "stripped", "static"]
CASES = [(v, p) for v in VARIANTS for p in PROGRAMS] + [("O0", "bigheap"), ("O0", "jit_gap")]
# A stack overflow has ~10^5 frames: gdb prints the top DEEP_TOP and bottom DEEP_BOTTOM
# (`bt N`, `bt -N`), we keep MAX_FRAMES of them (top and bottom) and count the rest.
DEEP_TOP, DEEP_BOTTOM = 1024, 64
CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "elfutils"


def analyze_json(core, exe, *extra):
    """``coredump analyze --format json``, with the analysis' clocks lifted (tests/budgets.py):
    the frames gdb shows are the subject, not how fast a loaded machine finds them."""
    out = subprocess.run(budgets.command("analyze", "--format", "json", "--exe", str(exe), *extra, str(core)),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return json.loads(out.stdout)


def _module_start(crash, path):
    return next(int(m["start"], 16) for m in crash["modules"] if m["path"] == path)


def assert_frame(crash, ours, theirs, where):
    """One of our frames against gdb's frame at the same place in the stack."""
    where = (where, ours, theirs)
    pc = int(ours["pc"], 16)
    if theirs.frame_pc is not None:  # gdb's frame.pc(): inline frames share their caller's
        assert pc == theirs.frame_pc, where
        assert ours["inline"] == theirs.is_inline, where
        # A tail-call frame's pc is the return address of the tail-calling jmp, as gdb's.
        assert ours.get("tailcall", False) == theirs.is_tailcall, where
    if theirs.pc is not None:
        assert pc == theirs.pc, where
    if theirs.is_signal:
        assert ours["function"] == SIGNAL_HANDLER_CALLED, where
        return
    if theirs.function is None and ours.get("jit"):
        # gdb's `??` in anonymous executable memory (c_samples/jit.c): no file, so no module
        # either, even in a hole of the executable's span (jit_gap); we say it is JIT code.
        assert ours["function"] is None and ours["file"] is None and ours["module"] is None, where
    elif theirs.function is None:
        # gdb prints `??`: no symbol covers the pc (a local function of a stripped library,
        # e.g. Debian's libc.so.6 keeps only .dynsym). We name nothing either, but say where.
        assert ours["function"] is None and ours["file"] is None, where
        assert ours["module"] is not None, where
        assert int(ours["module_offset"], 16) == pc - _module_start(crash, ours["module"]), where
    elif theirs.file is not None:
        # DWARF: gdb prints the DW_AT_name, qualified, without parameters; we print the
        # demangled linkage name, with its parameter list for C++ (`f(int)` where gdb says `f`).
        assert strip_params(ours["function"]) == theirs.function, where
        assert (ours["file"], ours["line"]) == (theirs.file, theirs.line), where
    else:
        # An ELF symbol: both print it demangled, C++ parameters included (`std::terminate()`).
        assert ours["function"] == theirs.function, where
        assert ours["file"] is None, where
    if theirs.library is not None:
        # gdb names a library by its link-map name (the soname path), we by its NT_FILE path.
        assert os.path.realpath(ours["module"]) == os.path.realpath(theirs.library), where


def as_gdb_lists(frames, gdb_frames):
    """Our frames as gdb lists them; the two differences, each for its reason:

    - gdb stacks no inline frames on a tail-call frame: it prints one frame, named by the
      innermost function at the jmp (an inlined one, in python's PyObject_Vectorcall) with that
      one's line. We list the inline frames there as at any other pc; the group is compared as
      gdb's one frame: the innermost name and line, the tail-call frame's pc.
    - gdb rebuilds a tail-call frame from DWARF call-site entries (DW_TAG_call_site with
      DW_AT_call_tail_call, dwarf2/frame-tailcall.c), starting from the caller's call site:
      code built without -g (the static samples' libc.a, a distribution's libc.so.6) has none,
      nor has code built at -O0 (gcc emits call sites only when optimizing) or without DWARF
      (a distribution's python). We need only the caller's `call` instruction and ELF symbols,
      so we show frames there that gdb does not. Each is either without line information (no
      DWARF there either), or the code proves it (_proved_tail_call: the instruction before
      its pc is a direct jmp to the very function of the frame below; an -O0 main's
      pthread_join, python's sem_wait, with libc6-dbg's lines)."""
    out, theirs, pending, callee = [], list(gdb_frames), [], None
    for f in frames:
        if f["inline"]:
            pending.append(f)
            continue
        group, pending = pending + [f], []
        if not f.get("tailcall"):
            out.extend(group)
        elif len(out) < len(theirs) and theirs[len(out)].is_tailcall:
            top = group[0]
            out.append(dict(f, function=top["function"], file=top["file"], line=top["line"]))
        elif [(g["file"], g["line"]) for g in group] != [(None, None)]:
            assert _proved_tail_call(f, callee), (group, callee)
        callee = f
    return out + pending


@functools.cache
def _first_load(path):
    """The page of the file's first PT_LOAD: where NT_FILE's first mapping, the module's start,
    begins (System V gABI, Program Loading: segments map at p_vaddr + the load bias)."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        return min(s["p_vaddr"] for s in elf.iter_segments("PT_LOAD")) & ~0xfff


def _proved_tail_call(tail, callee):
    """objdump (the oracle) decodes a direct jmp ending at the tail-call frame's pc whose target
    is the start of the function the frame below is in (its pc less its offset), in one file."""
    if callee is None or tail["module"] is None or tail["module"] != callee["module"] or callee["offset"] is None:
        return False
    base = _first_load(tail["module"])
    insn = _jump_before(tail["module"], base + int(tail["module_offset"], 16))
    target = insn and re.search(r"\sjmp\s+([0-9a-f]+) <", insn)
    return bool(target) and int(target.group(1), 16) == base + int(callee["module_offset"], 16) - callee["offset"]


def assert_stack(crash, thread, gdb_thread, where):
    """Same frames in the same order: physical, inline and tail-call ones, `<signal handler
    called>` where gdb has it (tail-call frames as gdb lists them: as_gdb_lists)."""
    expected = gdb_thread.frames
    assert all(f.frame_pc is not None for f in expected), "gdb's Python pass missed frames"
    frames = as_gdb_lists(thread["frames"], expected)
    got = [(f["function"], f["file"], f["line"]) for f in frames]
    want = [(f.function, f.file, f.line) for f in expected]
    assert len(got) == len(want), (where, got, want)
    for ours, theirs in zip(frames, expected):
        assert_frame(crash, ours, theirs, where)


def assert_threads(crash, report):
    """Same signal, same threads (by LWP), same crashing thread."""
    assert crash["signal"]["name"] == report.signal
    assert {t["tid"] for t in crash["threads"]} == {t.lwp for t in report.threads}
    assert crash["threads"][crash["crashing_thread"]]["tid"] == report.current_lwp


def assert_modules(crash, report):
    """Our modules are gdb's shared libraries (its link-map names, our NT_FILE paths: the
    same files), the executable and the vDSO; never the data files a process maps
    (locale archives, gconv caches): those are no modules, and no warning names them."""
    ours = {os.path.realpath(m["path"]) for m in crash["modules"]
            if m["path"] not in (crash["process"]["executable"], "[vdso]")}
    assert ours == {os.path.realpath(p) for p in report.libraries}
    assert not [w for w in crash["warnings"] if "not found" in w]


def assert_matches_gdb(core, exe, gdb, debug_files, *extra):
    crash = analyze_json(core, exe, *debug_files.cli_args, *extra)
    report = run_gdb(str(exe), str(core), gdb, debug=debug_files)
    assert_threads(crash, report)
    assert_modules(crash, report)
    for thread in crash["threads"]:
        assert not thread["truncated"] and thread["frames_omitted"] == 0
        assert_stack(crash, thread, report.thread_by_lwp(thread["tid"]), thread["tid"])
    return crash, report


@pytest.mark.parametrize("variant,program", CASES, ids=[f"{v}-{p}" for v, p in CASES])
def test_every_thread_matches_gdb(make_core, gdb, debug_files, variant, program):
    core = make_core(variant, program)
    crash, report = assert_matches_gdb(core, BUILD / variant / program, gdb, debug_files)
    # Every stack reaches its start: main's caller chain to _start, threads to clone3.
    for thread in report.threads:
        assert thread.frames[-1].function in ("_start", None, "clone3", "clone"), thread


def test_sighandler_handler_frame_is_where_gdb_has_it(make_core, gdb, debug_files):
    core = make_core("O2", "sighandler")
    crash, report = assert_matches_gdb(core, BUILD / "O2" / "sighandler", gdb, debug_files)
    names = [f["function"] for f in crash["threads"][crash["crashing_thread"]]["frames"]]
    assert names.index(SIGNAL_HANDLER_CALLED) == 1
    assert [f.function for f in report.crashing.frames].index(SIGNAL_HANDLER_CALLED) == 1


@pytest.mark.parametrize("variant", VARIANTS)
def test_deep_recursion_top_and_bottom_match_gdb(make_core, gdb, debug_files, variant):
    core = make_core(variant, "recursion")
    exe = BUILD / variant / "recursion"
    crash = analyze_json(core, exe, *debug_files.cli_args)
    report = run_gdb_deep(str(exe), str(core), gdb, DEEP_TOP, DEEP_BOTTOM, debug=debug_files)
    assert_threads(crash, report)
    thread = crash["threads"][crash["crashing_thread"]]
    gdb_thread = report.crashing
    assert gdb_thread.total > 80_000
    assert thread["truncated"] and thread["frames_omitted"] == gdb_thread.total - len(thread["frames"])
    by_index = {f.index: f for f in gdb_thread.frames}
    top = [f for f in thread["frames"] if f["index"] < DEEP_TOP]
    bottom = [f for f in thread["frames"] if f["index"] >= DEEP_TOP]
    assert len(top) >= 512 and bottom and len(bottom) <= DEEP_BOTTOM
    assert [f["index"] for f in top] == list(range(len(top)))  # the top, unbroken
    assert bottom[-1]["index"] == gdb_thread.total - 1  # the bottom keeps gdb's numbers
    assert [f["index"] for f in bottom] == list(range(bottom[0]["index"], gdb_thread.total))
    for f in thread["frames"]:
        assert_frame(crash, f, by_index[f["index"]], f["index"])


# Programs nobody here wrote. A binary without a build-id could not be checked against
# the core's, so only pythons that have one are used.
def _pythons():
    seen = {}
    for path in (sys.executable, "/usr/bin/python3"):
        real = os.path.realpath(path)
        if os.path.exists(real) and real not in seen and _has_build_id(real):
            seen[real] = path
    return sorted(seen)


def _has_build_id(path):
    from coredump.elf.image import ElfImage

    try:
        return ElfImage(path).build_id is not None
    except Exception:
        return False


PYTHONS = _pythons()
SEGV = "import ctypes; ctypes.string_at(0)"
ABORT = ("import os, threading; ev = threading.Event(); ts = [threading.Thread(target=ev.wait) "
         "for _ in range(3)]; [t.start() for t in ts]; os.abort()")


def _python_core(python, code, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    rc, core = cores.run_crash([python, "-c", code], tmp_path, env=env)
    assert core is not None, rc
    return core


@pytest.mark.parametrize("python", PYTHONS)
def test_python_segv_matches_gdb(make_core, gdb, debug_files, python, tmp_path):
    """ctypes reads address 0 in libc; the stack goes through libffi and the interpreter."""
    core = _python_core(python, SEGV, tmp_path)
    crash, report = assert_matches_gdb(core, python, gdb, debug_files)
    names = [f["function"] for f in crash["threads"][0]["frames"]]
    assert "ffi_call" in names and names[-1] == "_start"
    assert crash["signal"]["name"] == "SIGSEGV" and crash["signal"]["address"] == "0x0"


@pytest.mark.parametrize("python", PYTHONS)
def test_python_threads_abort_matches_gdb(make_core, gdb, debug_files, python, tmp_path):
    core = _python_core(python, ABORT, tmp_path)
    crash, report = assert_matches_gdb(core, python, gdb, debug_files)
    assert len(crash["threads"]) == 4 and crash["signal"]["name"] == "SIGABRT"
    crashed = crash["threads"][crash["crashing_thread"]]["frames"]
    # The symbol abort; with libc6-dbg the DWARF name __GI_abort, as gdb's (assert_stack).
    assert {"abort", "__GI_abort"} & {f["function"] for f in crashed}
    for thread in crash["threads"]:
        if thread is not crash["threads"][crash["crashing_thread"]]:
            assert thread["frames"][-1]["function"] in (None, "clone3")  # libc's clone3: `??`


def test_sleep_killed_by_sigabrt_matches_gdb(make_core, gdb, debug_files, tmp_path):
    sleep = subprocess.run(["sh", "-c", "command -v sleep"], capture_output=True, text=True).stdout.strip()
    core = cores.run_and_kill([sleep, "100"], tmp_path)
    crash, report = assert_matches_gdb(core, os.path.realpath(sleep), gdb, debug_files)
    assert crash["signal"]["name"] == "SIGABRT" and crash["signal"]["sender_pid"] == os.getpid()
    names = [f["function"] for f in crash["threads"][0]["frames"]]
    # Killed while asleep (state S): frame 0 is in the sleep call (the symbol clock_nanosleep, or
    # with libc6-dbg the DWARF name __GI___clock_nanosleep, as gdb's), and the stack reaches
    # libc's start (the symbol __libc_start_main; DWARF: __libc_start_main_impl).
    assert names[0].endswith("clock_nanosleep") and names[0] == report.crashing.frames[0].function
    assert {"__libc_start_main", "__libc_start_main_impl"} & set(names)


def test_oracle_parses_what_gdb_prints():
    """The parser itself, on lines as gdb 13 prints them with frame-arguments none."""
    f = parse_frame("#7  0x000055c54e1401a1 in store::load_config (cfg=...) at cxx_throw.cpp:12")
    assert (f.index, f.pc, f.function, f.file, f.line, f.library) == (
        7, 0x55c54e1401a1, "store::load_config", "cxx_throw.cpp", 12, None)
    f = parse_frame("#5  0x00007fd0348a8e85 in std::terminate() () from /lib/x86_64-linux-gnu/libstdc++.so.6")
    assert (f.function, f.library) == ("std::terminate()", "/lib/x86_64-linux-gnu/libstdc++.so.6")
    f = parse_frame("#2  0x00007f2c37b18f7a in ?? () from /lib/x86_64-linux-gnu/libffi.so.8")
    assert f.function is None and f.file is None
    f = parse_frame("#1  <signal handler called>")
    assert f.is_signal and f.pc is None
    # `bt` with values printed (other tests read plain gdb output): strings may hold parentheses.
    f = parse_frame('#0  lib_parse (s=0x4 "a)\\"b", n=3) at libcrash.c:8')
    assert (f.function, f.file, f.line) == ("lib_parse", "libcrash.c", 8)


# The elfutils corpus: cores made on another machine, through the CLI.
@pytest.fixture(scope="module")
def corpus():
    if not (CORPUS / "expected.json").exists():
        pytest.skip("the elfutils corpus is not beside this checkout")
    cases = json.loads((CORPUS / "expected.json").read_text())["cases"]
    return [c for c in cases if c["arch"] == "x86_64"]


def _same_function(ours, expected):
    """elfutils prints the symbol as the ELF symbol table has it, demangled (`cxxfunc(int)`)."""
    if ours is None:
        return False
    # elfutils' expectation `raise` where glibc 2.x's symbol at that address is `__GI_raise`
    # or `gsignal`'s other alias: compare without the leading underscores.
    return ours == expected or ours.lstrip("_") == expected.lstrip("_")


def test_corpus_backtraces_through_the_cli(corpus):
    for case in corpus:
        crash = analyze_json(CORPUS / case["core"], CORPUS / case["exe"], "--search-path", str(CORPUS))
        assert crash["signal"]["name"] == case["signal"]
        assert crash["threads"][crash["crashing_thread"]]["tid"] == case["crashing_tid"]
        assert {str(t["tid"]) for t in crash["threads"]} == set(case["threads"])
        for thread in crash["threads"]:
            expected = case["threads"][str(thread["tid"])]
            # elfutils' unwinder shows no tail-call frames (no DWARF call sites are read).
            frames = [f for f in thread["frames"] if not f["inline"] and not f.get("tailcall")]
            names = [f["function"] for f in frames]
            # elfutils' expectations stop at main; past it are frames in a libc that is not
            # in the corpus (the core's libc belongs to the machine that made it).
            assert len(names) >= len(expected), (case["core"], names)
            for name, want in zip(names, expected):
                assert _same_function(name, want), (case["core"], thread["tid"], names, expected)
            for frame in frames[:len(expected)]:
                if frame["function"] in case.get("lines", {}):
                    assert [frame["file"], frame["line"]] == case["lines"][frame["function"]]
        if "frame0_pc" in case:
            frame0 = crash["threads"][crash["crashing_thread"]]["frames"][0]
            assert frame0["pc"] == case["frame0_pc"]
            assert Path(frame0["module"]).name == case["module_of_frame0"]
            module = next(m for m in crash["modules"] if m["path"] == frame0["module"])
            # The core names a path on the machine that made it; --search-path found the file.
            assert module["file"] is not None and Path(module["file"]).parent == CORPUS
