"""coredump slim: a small core that gdb reads with the same backtrace as the full one."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coredump.elf.core import open_core
from coredump.elf.notes import COREDUMP_NOTE_NAME, NT_COREDUMP_SLIM, decode_slim_note, iter_raw_notes
from coredump.elf.phdrs import read_phdrs
from coredump.store.slim import PT_LOAD, PT_NOTE, slim_core
from tests.bundles import analyze_json
from tests.cores import BUILD

CASES = [("O0", "segv"), ("O2", "segv"), ("O0", "threads"), ("O2", "threads"), ("O0", "uselib"),
         ("O2", "abort_assert")]


def gdb_bt(gdb, exe, core):
    out = subprocess.run([gdb, "-batch", "-nx", "-iex", "set debuginfod enabled off",
                          "-ex", "thread apply all bt", str(exe), str(core)],
                         capture_output=True, text=True, timeout=300)
    return [line for line in out.stdout.splitlines() if line.startswith(("#", "Thread "))]


def phdrs(path):
    with open(path, "rb") as f:
        return read_phdrs(f, str(path))[1]


def notes(path):
    with open(path, "rb") as f:
        out = []
        for ph in phdrs(path):
            if ph.p_type == PT_NOTE:
                f.seek(ph.p_offset)
                out.append(f.read(ph.p_filesz))
        return out


@pytest.fixture(scope="module")
def slimmed(make_core, tmp_path_factory):
    made = {}

    def get(variant, program):
        if (variant, program) not in made:
            core = make_core(variant, program)
            dst = tmp_path_factory.mktemp("slim") / "core.slim"
            made[variant, program] = (core, dst, slim_core(str(core), str(dst)))
        return made[variant, program]

    return get


@pytest.mark.parametrize("variant,program", CASES, ids=[f"{v}-{p}" for v, p in CASES])
def test_gdb_gives_the_same_backtrace(slimmed, gdb, variant, program):
    core, slim, result = slimmed(variant, program)
    exe = BUILD / variant / program
    full_bt = gdb_bt(gdb, exe, core)
    assert any(line.startswith("#1 ") for line in full_bt), full_bt
    assert gdb_bt(gdb, exe, slim) == full_bt
    assert result.size < result.original_size


@pytest.mark.parametrize("variant,program", CASES, ids=[f"{v}-{p}" for v, p in CASES])
def test_our_analysis_is_unchanged(slimmed, variant, program):
    core, slim, _ = slimmed(variant, program)
    exe = BUILD / variant / program
    full, small = analyze_json(core, "--exe", str(exe)), analyze_json(slim, "--exe", str(exe))
    assert any(len(t["frames"]) > 1 for t in full["threads"])
    assert [t["frames"] for t in small["threads"]] == [t["frames"] for t in full["threads"]]
    assert small["signal"] == full["signal"] and small["modules"] == full["modules"]


def test_notes_kept_and_left_out_memory_recorded(slimmed):
    """The original notes, then our COREDUMP note; each original PT_LOAD is cut into pieces
    kept whole, never-dumped ones (p_filesz 0, as in the original) and left-out ranges that
    have no program header and are listed in the note."""
    core, slim, result = slimmed("O0", "threads")
    slim_notes = notes(slim)
    assert slim_notes[:-1] == notes(core)
    found = [n for n in iter_raw_notes(slim_notes[-1]) if n.n_name == COREDUMP_NOTE_NAME]
    assert [n.n_type for n in found] == [NT_COREDUMP_SLIM]
    info = decode_slim_note(found[0].desc)
    assert info.omitted_bytes == result.omitted_bytes == sum(hi - lo for lo, hi in info.omitted) > 0
    assert info.original_size == result.original_size and info.missing_bytes == 0
    with open_core(str(slim)) as s, open_core(str(core)) as c:
        assert s.slim == info and c.slim is None
    full = [p for p in phdrs(core) if p.p_type == PT_LOAD]
    pieces = sorted([(p.p_vaddr, p.p_vaddr + p.p_memsz, p.p_filesz == p.p_memsz) for p in phdrs(slim)
                     if p.p_type == PT_LOAD] + [(lo, hi, "omitted") for lo, hi in info.omitted])
    at = iter(pieces)
    for ph in full:
        pos = ph.p_vaddr
        while pos < ph.p_vaddr + ph.p_memsz:
            lo, hi, kind = next(at)
            assert lo == pos, (hex(lo), hex(pos))
            # Left-out and kept bytes come from what the original dumped, never past p_filesz.
            assert kind is False or hi <= ph.p_vaddr + ph.p_filesz
            pos = hi
        assert pos == ph.p_vaddr + ph.p_memsz
    assert next(at, None) is None and result.segments == len(full)
    with open_core(str(slim)) as c, open_core(str(core)) as f:
        assert [t.registers for t in c.threads] == [t.registers for t in f.threads]
        assert c.files == f.files and c.siginfo == f.siginfo and not c.truncated


def test_slim_core_is_marked_in_the_analysis(slimmed, tmp_path):
    core, slim, result = slimmed("O0", "segv")
    exe = BUILD / "O0" / "segv"
    full, small = analyze_json(core, "--exe", str(exe)), analyze_json(slim, "--exe", str(exe))
    assert "slimmed" not in full["core"] and not any("slimmed" in w for w in full["warnings"])
    assert small["core"]["slimmed"] is True
    assert small["core"]["slim_omitted_bytes"] == result.omitted_bytes > 0
    assert (f"slimmed core: {result.omitted_bytes} bytes of memory left out (heap/anon mappings); "
            "values there are unknown") in small["warnings"]


def test_gdb_cannot_read_left_out_memory(slimmed, gdb):
    """Left-out heap reads as an error in gdb, not as zeros."""
    core, slim, result = slimmed("O0", "bigheap")
    info = slim_note(slim)
    lo, hi = max(info.omitted, key=lambda r: r[1] - r[0])
    address = hex(lo + (hi - lo) // 2)

    def x(path):
        return subprocess.run([gdb, "-batch", "-nx", "-iex", "set debuginfod enabled off", "-ex",
                               f"x/gx {address}", str(BUILD / "O0" / "bigheap"), str(path)],
                              capture_output=True, text=True, timeout=300)

    assert "Cannot access memory" not in x(core).stderr
    assert f"Cannot access memory at address {address}" in x(slim).stderr


def test_large_heap_core_is_twenty_times_smaller(slimmed, gdb):
    core, slim, result = slimmed("O0", "bigheap")
    assert result.original_size > 200 << 20
    print(f"bigheap: {result.original_size} -> {result.size} bytes, {result.ratio:.0f}x")
    assert result.ratio >= 20
    full_bt = gdb_bt(gdb, BUILD / "O0" / "bigheap", core)
    assert any("crash_after_heap" in line for line in full_bt), full_bt
    assert gdb_bt(gdb, BUILD / "O0" / "bigheap", slim) == full_bt


def test_cli(slimmed, tmp_path):
    core, _, _ = slimmed("O0", "segv")
    out = subprocess.run([sys.executable, "-m", "coredump.cli.main", "slim", str(core), "-o", str(tmp_path / "s")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "smaller" in out.stdout and (tmp_path / "s").stat().st_size > 0
    bad = tmp_path / "notacore"
    bad.write_bytes(b"\x7fELF" + b"\0" * 100)
    out = subprocess.run([sys.executable, "-m", "coredump.cli.main", "slim", str(bad), "-o", str(tmp_path / "t")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and out.stderr.startswith("Error: ") and "Traceback" not in out.stderr
    assert not (tmp_path / "t").exists()


ROOT = str(Path(__file__).resolve().parent.parent)


def slim_cli(*args, **kwargs):
    env = dict(os.environ, PYTHONPATH=ROOT)  # this tree's coredump, whatever the cwd
    return subprocess.run([sys.executable, "-m", "coredump.cli.main", "slim", *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env, **kwargs)


def one_error(out):
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), out.stderr
    return lines[0]


@pytest.mark.parametrize("how", ["same path", "symlink", "hard link", "relative"])
def test_output_that_is_the_input_is_refused(make_core, tmp_path, how):
    import hashlib
    import shutil

    core = tmp_path / "core"
    shutil.copyfile(make_core("O0", "segv"), core)
    digest = hashlib.sha256(core.read_bytes()).hexdigest()
    out_path = {"same path": core, "symlink": tmp_path / "link", "hard link": tmp_path / "hard",
                "relative": "core"}[how]
    if how == "symlink":
        out_path.symlink_to(core)
    elif how == "hard link":
        os.link(core, out_path)
    line = one_error(slim_cli(core, "-o", out_path, cwd=tmp_path))
    assert "is the input core" in line
    assert hashlib.sha256(core.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"core", os.path.basename(str(out_path))})


def test_a_failed_write_leaves_the_old_output_alone(make_core, tmp_path):
    """RLIMIT_FSIZE makes the write fail half-way (EFBIG): the previous output is intact and
    no temporary file is left."""
    import resource
    import signal

    dst = tmp_path / "out.core"
    dst.write_bytes(b"previous")

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))

    line = one_error(slim_cli(make_core("O0", "segv"), "-o", dst, preexec_fn=limit))
    assert "cannot write" in line
    assert dst.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == ["out.core"]


def test_truncated_input_warns_and_keeps_what_it_has(make_core, gdb, tmp_path):
    core = make_core("O0", "segv")
    cut = tmp_path / "core.cut"
    cut.write_bytes(core.read_bytes()[:core.stat().st_size // 2])
    with open_core(str(cut)) as c:
        missing = c.missing_bytes
    assert missing > 0
    out = slim_cli(cut, "-o", tmp_path / "slim")
    assert out.returncode == 0, out.stderr
    warnings = out.stderr.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning: ") and "truncated" in warnings[0]
    assert f"{missing} bytes past the end" in warnings[0]
    with open_core(str(tmp_path / "slim")) as s, open_core(str(cut)) as c:
        assert [t.registers for t in s.threads] == [t.registers for t in c.threads]
        for seg in c.segments:  # every byte the cut core still holds of what slim keeps
            for kept in s.segments:
                lo, hi = max(seg.p_vaddr, kept.p_vaddr), min(seg.p_vaddr + seg.available, kept.end)
                if lo < hi and kept.available:
                    assert s.memory().read(lo, hi - lo) == c.memory().read(lo, hi - lo)
    info = slim_note(tmp_path / "slim")
    assert info.missing_bytes == missing


def slim_note(path):
    blob = b"".join(notes(path))
    return decode_slim_note(next(n for n in iter_raw_notes(blob) if n.n_name == COREDUMP_NOTE_NAME).desc)


def test_a_core_zst_and_a_crash_directory_are_slimmed_as_analyze_takes_them(make_core, tmp_path):
    """slim takes what analyze takes (#16): the artifacts' own core.zst and a crash directory."""
    import json
    import subprocess

    import zstandard

    from tests.cli import command
    from tests.cores import ROOT

    raw = make_core("O0", "segv")
    crash = tmp_path / "segv-1"
    crash.mkdir()
    (crash / "core.zst").write_bytes(zstandard.ZstdCompressor().compress(raw.read_bytes()))
    plain = tmp_path / "plain.slim"
    assert slim_cli(raw, "-o", plain).returncode == 0
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}
    for source, out in ((crash / "core.zst", tmp_path / "a.slim"), (crash, tmp_path / "b.slim")):
        r = slim_cli(source, "-o", out)
        assert r.returncode == 0, r.stderr
        assert out.read_bytes() == plain.read_bytes()  # the same slim core as from the raw one
        a = subprocess.run(command("analyze", "--format", "json", str(out)), env=env, capture_output=True,
                           text=True, timeout=120)
        assert json.loads(a.stdout)["signature"].startswith("SIGSEGV in store_value")
    line = one_error(slim_cli(crash, "-o", crash / "core.zst"))  # never over its own input
    assert "is the input" in line
    assert zstandard.ZstdDecompressor().decompress((crash / "core.zst").read_bytes()) == raw.read_bytes()
