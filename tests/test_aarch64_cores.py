"""aarch64 cores analyzed on any host: qemu-user cores of c_samples/ against gdb-multiarch,
the kernel-written elfutils corpus core against its expected backtrace, and committed
static qemu cores (one thread, six threads, a signal frame, an -O2 tail call) against
snapshots of our analysis (run where qemu is absent) and, where installed, gdb-multiarch."""

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coredump.elf.core import open_core
from coredump.symbols.finder import FileFinder, FinderOptions
from coredump.target import Target
from coredump.unwind import walk_thread
from coredump.unwind.common import SIGNAL_HANDLER_CALLED
from tests.cores import AARCH64_SYSROOT, BUILD
from tests.gdb_oracle import run_gdb
from tests.test_gdb_oracle import as_gdb_lists

# fpe is left out: A64 integer division by zero does not trap (Arm ARM C6.2.290 SDIV: "If the
# divisor is zero, the result is zero"), the program exits 0. illegal's __builtin_trap is
# `brk #1000`, a SIGTRAP.
PROGRAMS = ("segv", "threads", "sighandler", "abort_assert", "cxx_throw", "uselib", "illegal")
CASES = [(v, p) for v in ("O0", "O2", "static") for p in PROGRAMS if not (v == "static" and p == "uselib")]
CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "elfutils"
DATA = Path(__file__).resolve().parent / "data" / "aarch64"

# qemu-user cores have no NT_FILE and no dumped ELF headers, and gdb only relocates a PIE by
# reading its program headers from memory: it leaves a dynamic program's symbols unrelocated
# and finds no libraries. The oracle is given what it lacks, read by gdb itself: the PIE bias
# from AT_ENTRY, and each library's l_addr and l_name from the r_debug link map (DT_DEBUG).
GDB_RELOCATE = r"""
import os, re, gdb
inf = gdb.selected_inferior()
def word(a):
    return int.from_bytes(inf.read_memory(a, 8).tobytes(), "little")
def cstr(a):
    out = b""
    while b"\0" not in out:
        out += inf.read_memory(a + len(out), 16).tobytes()
    return out.split(b"\0")[0].decode()
exe, sysroot = os.environ["ORACLE_EXE"], os.environ["ORACLE_SYSROOT"]
entry = int(re.search(r"AT_ENTRY.*?(0x[0-9a-f]+)", gdb.execute("info auxv", to_string=True)).group(1), 16)
bias = entry - int(os.environ["ORACLE_E_ENTRY"])
gdb.execute("symbol-file -o %#x %s" % (bias, exe))
d = bias + int(os.environ["ORACLE_DYNAMIC"])
while word(d) not in (0, 21):  # DT_NULL, DT_DEBUG
    d += 16
lm = word(word(d + 8) + 8) if word(d) == 21 else 0  # r_debug.r_map
while lm:
    l_addr, name = word(lm), cstr(word(lm + 8)) or os.environ["ORACLE_INTERP"]
    path = os.path.join(sysroot, name.lstrip("/"))
    if l_addr and l_addr != bias:
        gdb.execute("add-symbol-file %s -o %#x" % (path if os.path.exists(path) else name, l_addr))
    lm = word(lm + 24)
"""
GDB_TIMEOUT = 120



def analyze_json(core, *args):
    out = subprocess.run([sys.executable, "-m", "coredump.cli.main", "analyze", "--format", "json", *args, str(core)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    return json.loads(out.stdout)


def _elf_facts(exe):
    from elftools.elf.elffile import ELFFile

    with open(exe, "rb") as f:
        elf = ELFFile(f)
        dynamic = next((s.header.p_vaddr for s in elf.iter_segments() if s.header.p_type == "PT_DYNAMIC"), None)
        interp = next((s.get_interp_name() for s in elf.iter_segments() if s.header.p_type == "PT_INTERP"), "")
        return elf.header.e_entry, dynamic, interp


def gdb_report(gdb, exe, core, tmp_path, monkeypatch):
    extra = ["-iex", "set auto-load safe-path /nonexistent", "-ex", f"set sysroot {AARCH64_SYSROOT}",
             "-ex", "set backtrace past-main on", "-ex", "set print frame-arguments none"]
    e_entry, dynamic, interp = _elf_facts(exe)
    if dynamic is not None:
        script = tmp_path / "relocate.py"
        script.write_text(GDB_RELOCATE)
        for key, value in (("EXE", str(exe)), ("SYSROOT", AARCH64_SYSROOT), ("E_ENTRY", str(e_entry)),
                           ("DYNAMIC", str(dynamic)), ("INTERP", interp)):
            monkeypatch.setenv(f"ORACLE_{key}", value)
        extra += ["-x", str(script)]
    return run_gdb(str(exe), str(core), gdb, extra)


def base_name(name):
    """gdb names a C++ frame without its parameter list when it has DWARF."""
    return name.split("(", 1)[0] if name else "??"


def assert_thread_matches(ours, theirs):
    # Tail-call frames as gdb lists them (test_gdb_oracle.as_gdb_lists): gdb puts back only
    # those DWARF call sites describe, none in the static samples' libc.a (pthread_join's
    # `b __pthread_clockjoin_ex`), and prints no inline frames on one.
    ours = as_gdb_lists(ours, theirs)
    assert len(ours) == len(theirs), ([f.get("function") for f in ours], [g.function for g in theirs])
    for frame, g in zip(ours, theirs):
        if g.pc is not None:
            assert int(frame["pc"], 16) == g.pc, (frame, g)
        assert base_name(frame.get("function")) == base_name(g.function), (frame, g)
        if g.file:
            assert (frame["file"], frame["line"]) == (g.file, g.line), (frame, g)


@pytest.mark.parametrize("variant,program", CASES, ids=[f"{v}-{p}" for v, p in CASES])
def test_qemu_cores_match_gdb(make_qemu_core, gdb_multiarch, variant, program, tmp_path, monkeypatch):
    core = make_qemu_core(variant, program)
    exe = BUILD / f"aarch64-{variant}" / program
    ours = analyze_json(core, "--exe", str(exe), "--sysroot", AARCH64_SYSROOT)
    assert ours["process"]["arch"] == "aarch64"
    names = [f["function"] for f in ours["threads"][ours["crashing_thread"]]["frames"]]
    if program == "sighandler":
        # gdb-multiarch 13 never finishes frame 0 of a qemu 7.2 sighandler core (it spins
        # sniffing qemu's trampoline page): the stack is checked against the sample instead.
        i = names.index(SIGNAL_HANDLER_CALLED)
        assert names[0] == "on_usr1" and i == 1 and names.index("busy_loop") > i
        assert ours["threads"][0]["frames"][i + 1]["trust"] == "signal"
        return
    theirs = gdb_report(gdb_multiarch, exe, core, tmp_path, monkeypatch)
    # gdb takes the signal from the last NT_PRSTATUS (BFD's elfcore_grok_prstatus), and
    # qemu-user sets pr_cursig only in the crashing thread's (the kernel, in every thread's):
    # for a qemu core of several threads gdb names no signal.
    if theirs.signal is not None or len(ours["threads"]) == 1:
        assert ours["signal"]["name"] == theirs.signal
    else:
        assert ours["signal"]["number"] > 0
    gdb_current = next(t for t in theirs.threads if t.number == theirs.current)
    assert ours["threads"][ours["crashing_thread"]]["tid"] == gdb_current.lwp
    assert {t["tid"] for t in ours["threads"]} == {t.lwp for t in theirs.threads}
    for thread in ours["threads"]:
        assert_thread_matches(thread["frames"], theirs.thread_by_lwp(thread["tid"]).frames)


def test_tail_call_frames_match_gdb_at_O2(make_qemu_core, gdb_multiarch, tmp_path, monkeypatch):
    """The frames -O2 tail calls removed are put back where gdb-multiarch puts its TAILCALL
    frames: build (b fill_list) in segv, withdraw in abort_assert, lib_entry (through the
    PLT: run_parser's bl goes to libcrash.so's stub) in uselib."""
    for program, name in (("segv", "build"), ("abort_assert", "withdraw"), ("uselib", "lib_entry")):
        core = make_qemu_core("O2", program)
        exe = BUILD / "aarch64-O2" / program
        ours = analyze_json(core, "--exe", str(exe), "--sysroot", AARCH64_SYSROOT)
        frames = ours["threads"][ours["crashing_thread"]]["frames"]
        theirs = [f for f in gdb_report(gdb_multiarch, exe, core, tmp_path, monkeypatch).threads[0].frames
                  if f.is_tailcall]
        put_back = [f for f in frames if f.get("tailcall")]
        assert [(f["function"], int(f["pc"], 16), f["file"], f["line"]) for f in put_back] == \
            [(g.function, g.frame_pc, g.file, g.line) for g in theirs], (put_back, theirs)
        assert [f["function"] for f in put_back] == [name] and put_back[0]["trust"] == "none"


@pytest.mark.parametrize("program", ("segv", "abort_assert", "cxx_throw"))
def test_signature_matches_x86_64_at_O2(make_core, make_qemu_core, program):
    """The same bug has the same signature and fingerprint on both architectures."""
    from coredump.analysis import AnalyzeOptions, analyze_core

    x86 = analyze_core(str(make_core("O2", program)), AnalyzeOptions(exe=str(BUILD / "O2" / program)))
    arm = analyze_core(str(make_qemu_core("O2", program)),
                       AnalyzeOptions(exe=str(BUILD / "aarch64-O2" / program), sysroot=AARCH64_SYSROOT))
    assert (x86.process.arch, arm.process.arch) == ("x86_64", "aarch64")
    assert arm.signature == x86.signature and arm.fingerprint == x86.fingerprint
    assert arm.signature.count(" < ") >= 1


# -- the kernel-written elfutils core ---------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_case():
    if not (CORPUS / "expected.json").exists():
        pytest.skip("the elfutils corpus is not beside this checkout")
    cases = json.loads((CORPUS / "expected.json").read_text())["cases"]
    return next(c for c in cases if c["arch"] == "aarch64")


def test_corpus_backtrace_frames_and_lines(corpus_case):
    ours = analyze_json(CORPUS / corpus_case["core"], "--exe", str(CORPUS / corpus_case["exe"]))
    assert ours["signal"]["name"] == corpus_case["signal"]
    assert ours["threads"][ours["crashing_thread"]]["tid"] == corpus_case["crashing_tid"]
    lines = {name: tuple(where) for name, where in corpus_case["lines"].items()}
    for thread in ours["threads"]:
        expected = corpus_case["threads"][str(thread["tid"])]
        frames = thread["frames"]
        # elfutils stops at main and clone; we go on to the entry function, as gdb with
        # "backtrace past-main on" does, and stop there (gdb's past-entry rule): nothing
        # found by scanning the initial stack above _start.
        assert [f["function"] for f in frames[:len(expected)]] == expected
        assert frames[-1]["function"] in ("_start", "clone"), frames[-1]
        assert all(f["trust"] in ("context", "cfi") for f in frames), [f["trust"] for f in frames]
        for f in frames[:len(expected)]:
            if f["function"] in lines:
                assert (f["file"], f["line"]) == lines[f["function"]], f


def test_corpus_frames_use_cfi_not_guesses(corpus_case):
    """Every expected frame of the kernel core is found by CFI from the registers."""
    target = Target(open_core(str(CORPUS / corpus_case["core"])),
                    FileFinder(FinderOptions(exe=str(CORPUS / corpus_case["exe"]))))
    for thread in target.core.threads:
        n = len(corpus_case["threads"][str(thread.tid)])
        frames = walk_thread(target, thread.registers).frames[:n]
        assert [f.trust.tag for f in frames] == ["context"] + ["cfi"] * (n - 1)


# -- the committed qemu core and the snapshot of its analysis --------------------------------


def _decompress(src: Path, dest: Path) -> Path:
    import zstandard

    with open(src, "rb") as fin, open(dest, "wb") as fout:
        zstandard.ZstdDecompressor().copy_stream(fin, fout)
    return dest


def _neutral(value):
    """The analysis without this machine's paths: absolute paths keep their last component."""
    if isinstance(value, dict):
        return {k: _neutral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_neutral(v) for v in value]
    if isinstance(value, str) and value.startswith("/"):
        return os.path.basename(value)
    return value


# The committed cases (tests/data/aarch64/README.md; tests/data/aarch64/make_cases.py makes them).
SNAPSHOTS = ("segv-static", "threads-static", "sighandler-static", "segv-static-O2")


def committed_case(case: str, workdir: Path):
    """The committed core and executable of `case`, decompressed into `workdir`."""
    return (_decompress(DATA / f"{case}.core.zst", workdir / f"{case}.core"),
            _decompress(DATA / f"{case}.zst", workdir / case))


def snapshot_analysis(case: str, workdir: Path) -> dict:
    core, exe = committed_case(case, workdir)
    return _neutral(analyze_json(core, "--exe", str(exe)))


def _names(thread):
    return [f["function"] for f in thread["frames"]]


def _check_segv_static(crash):
    assert _names(crash["threads"][0])[:4] == ["store_value", "fill_list", "build", "main"]


def _check_threads_static(crash):
    """Six threads: main in pthread_join, four idle workers, the faulting bad_worker."""
    threads = crash["threads"]
    crashing = threads[crash["crashing_thread"]]
    assert len(threads) == 6 and _names(crashing)[:2] == ["crunch", "bad_worker"]
    assert sum("idle_worker" in _names(t) for t in threads) == 4
    main = next(t for t in threads if t["tid"] == crash["process"]["pid"])
    assert "main" in _names(main) and main is not crashing
    for t in threads:  # each stack ends where the thread began: _start or clone's child
        assert _names(t)[-1] in ("_start", "thread_start"), _names(t)


def _check_sighandler_static(crash):
    """on_usr1 faults; the sigreturn trampoline's frame leads back to raise and busy_loop."""
    names = _names(crash["threads"][0])
    assert names[:2] == ["on_usr1", SIGNAL_HANDLER_CALLED] and names.index("busy_loop") > 2
    assert crash["threads"][0]["frames"][2]["trust"] == "signal"


def _check_segv_static_O2(crash):
    """build's `b fill_list` left no return address: build is put back as a tail-call frame."""
    frames = crash["threads"][0]["frames"]
    assert _names(crash["threads"][0])[:4] == ["store_value", "fill_list", "build", "main"]
    assert [f["function"] for f in frames if f.get("tailcall")] == ["build"] and frames[2]["trust"] == "none"


CHECKS = {"segv-static": _check_segv_static, "threads-static": _check_threads_static,
          "sighandler-static": _check_sighandler_static, "segv-static-O2": _check_segv_static_O2}


@pytest.mark.parametrize("case", SNAPSHOTS)
def test_snapshot_of_committed_qemu_core(case, tmp_path):
    expected = json.loads((DATA / f"{case}.analysis.json").read_text())
    ours = snapshot_analysis(case, tmp_path)
    assert ours == expected, f"regenerate with: python -m tests.test_aarch64_cores --regenerate {case}"
    assert ours["process"]["arch"] == "aarch64"
    CHECKS[case](ours)


def _gdb_with_timeout(gdb, exe, core, tmp_path, monkeypatch):
    """gdb_report, given up after GDB_TIMEOUT seconds rather than run_gdb's 600."""
    import tests.gdb_oracle as oracle

    def run(argv):
        try:
            out = subprocess.run(list(argv), capture_output=True, text=True, timeout=GDB_TIMEOUT,
                                 stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.fail(f"gdb-multiarch took more than {GDB_TIMEOUT} s on {core.name}")
        return out.stdout + out.stderr

    monkeypatch.setattr(oracle, "_run", run)
    return gdb_report(gdb, exe, core, tmp_path, monkeypatch)


@pytest.mark.parametrize("case", SNAPSHOTS)
def test_committed_cores_match_gdb(case, gdb_multiarch, tmp_path, monkeypatch):
    """The committed cores' frames, every thread, against gdb-multiarch on the same files."""
    if case.startswith("sighandler"):
        pytest.skip("gdb-multiarch 13 never finishes frame 0 of a qemu 7.2 sighandler core "
                    "(it spins sniffing qemu's trampoline page); checked against the sample instead")
    core, exe = committed_case(case, tmp_path)
    ours = analyze_json(core, "--exe", str(exe))
    theirs = _gdb_with_timeout(gdb_multiarch, exe, core, tmp_path, monkeypatch)
    gdb_current = next(t for t in theirs.threads if t.number == theirs.current)
    assert ours["threads"][ours["crashing_thread"]]["tid"] == gdb_current.lwp
    assert {t["tid"] for t in ours["threads"]} == {t.lwp for t in theirs.threads}
    for thread in ours["threads"]:
        assert_thread_matches(thread["frames"], theirs.thread_by_lwp(thread["tid"]).frames)
    put_back = [f for f in ours["threads"][ours["crashing_thread"]]["frames"] if f.get("tailcall")]
    gdb_tail = [f for f in gdb_current.frames if f.is_tailcall]
    assert [(f["function"], int(f["pc"], 16)) for f in put_back] == [(g.function, g.frame_pc) for g in gdb_tail]


def write_snapshot(case: str) -> None:
    """Write <case>.analysis.json from the committed core and executable."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        snapshot = snapshot_analysis(case, Path(tmp))
    out = io.StringIO()
    json.dump(snapshot, out, indent=2, sort_keys=True)
    (DATA / f"{case}.analysis.json").write_text(out.getvalue() + "\n")
    print(f"wrote {DATA / f'{case}.analysis.json'}")


if __name__ == "__main__" and "--regenerate" in sys.argv:
    for name in [a for a in sys.argv[1:] if a != "--regenerate"] or SNAPSHOTS:
        write_snapshot(name)


def test_cross_sysroot_is_used_without_sysroot_option(make_qemu_core):
    """A foreign-architecture core analyzed without --sysroot finds its libraries in
    Debian's cross root, as `coredump run -- qemu-aarch64 …` needs."""
    import json
    import subprocess
    import sys

    from tests.cores import AARCH64_SYSROOT, BUILD

    core = make_qemu_core("O0", "uselib")
    out = subprocess.run([sys.executable, "-m", "coredump.cli.main", "analyze", "--format", "json",
                          "--exe", str(BUILD / "aarch64-O0" / "uselib"), str(core)],
                         capture_output=True, text=True, timeout=120)
    crash = json.loads(out.stdout)
    libc = next(m for m in crash["modules"] if m["path"].endswith("libc.so.6"))
    assert libc["file"].startswith(AARCH64_SYSROOT)
    names = [f["function"] for f in crash["threads"][0]["frames"]]
    assert names[:4] == ["lib_parse", "lib_entry", "run_parser", "main"]
    assert "__libc_start_main" in names


# -- the binary missing ---------------------------------------------------------------------


def _core_without_binary(variant, program, tmp_path):
    """A qemu core of a copy of the program run as ./<program> in a directory then removed:
    nothing names a file that exists (no --exe, AT_EXECFN unresolvable, no NT_FILE)."""
    from tests.cores import _raise_core_limit, make_qemu_core

    make_qemu_core(variant, program)  # builds the samples
    run = tmp_path / "gone"
    run.mkdir()
    shutil.copy(BUILD / f"aarch64-{variant}" / program, run / program)
    subprocess.run(["qemu-aarch64", "-L", AARCH64_SYSROOT, f"./{program}"], cwd=run, preexec_fn=_raise_core_limit,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=60)
    core = shutil.move(str(next(run.glob("qemu_*.core"))), str(tmp_path / "core"))
    shutil.rmtree(run)
    return core


def _analyze_in(core, cwd):
    out = subprocess.run([sys.executable, "-m", "coredump.cli.main", "analyze", "--format", "json", str(core)],
                         capture_output=True, text=True, timeout=300, cwd=cwd,
                         env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("variant", ("O0", "O2"))
def test_signal_frame_without_the_binary(make_qemu_core, variant, tmp_path):
    """The handler's x30 is the sigreturn trampoline, in no module: still the signal frame,
    and the interrupted pc and its callers are the ones found with the binary."""
    with_exe = analyze_json(make_qemu_core(variant, "sighandler"), "--exe",
                            str(BUILD / f"aarch64-{variant}" / "sighandler"), "--sysroot", AARCH64_SYSROOT)
    ours = _analyze_in(_core_without_binary(variant, "sighandler", tmp_path), tmp_path)
    assert not ours["modules"]
    frames = ours["threads"][0]["frames"]
    assert frames[1]["function"] == SIGNAL_HANDLER_CALLED and frames[2]["trust"] == "signal"
    expected = with_exe["threads"][0]["frames"]
    # The same addresses (qemu loads the same way each run): the interrupted pc and raise;
    # at -O0 every frame, by frame records (-O2 code keeps none, and a tail call is put
    # back with the binary only).
    n = None if variant == "O0" else 4
    assert [f["pc"] for f in frames[2:n]] == [f["pc"] for f in expected[2:n] if not f.get("tailcall")]


def test_leaf_caller_without_the_binary(tmp_path):
    """The committed static core, analyzed where ./segv is not: store_value's caller
    fill_list comes from x30, unchecked (scan trust), and a warning names the file."""
    core = _decompress(DATA / "segv-static.core.zst", tmp_path / "segv-static.core")
    ours = _analyze_in(core, tmp_path)
    frames = ours["threads"][0]["frames"]
    with_exe = json.loads((DATA / "segv-static.analysis.json").read_text())["threads"][0]["frames"]
    assert [f["pc"] for f in frames] == [f["pc"] for f in with_exe]  # store_value, fill_list, build, ...
    assert frames[1]["trust"] == "scan" and [f["function"] for f in frames] == [None] * len(frames)
    assert any(w.startswith("./segv not found") and "x30" in w for w in ours["warnings"]), ours["warnings"]
