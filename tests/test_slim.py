"""coredump slim: a small core that gdb reads with the same backtrace as the full one."""

import subprocess
import sys

import pytest

from coredump.elf.core import open_core
from coredump.store.slim import PT_LOAD, PT_NOTE, read_phdrs, slim_core
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


def test_notes_and_mappings_are_kept(slimmed):
    core, slim, result = slimmed("O0", "threads")
    assert notes(slim) == notes(core)
    full_loads = [(p.p_vaddr, p.p_vaddr + p.p_memsz, p.p_flags) for p in phdrs(core) if p.p_type == PT_LOAD]
    slim_loads = [p for p in phdrs(slim) if p.p_type == PT_LOAD]
    # Every mapping is still described, cut into consecutive pieces, in address order.
    pieces = iter(slim_loads)
    for start, end, flags in full_loads:
        at = start
        while at < end:
            p = next(pieces)
            assert (p.p_vaddr, p.p_flags) == (at, flags) and p.p_filesz in (0, p.p_memsz)
            at += p.p_memsz
        assert at == end
    assert next(pieces, None) is None
    assert any(p.p_filesz == 0 and p.p_memsz for p in slim_loads)
    assert result.segments == len(full_loads)
    with open_core(str(slim)) as c, open_core(str(core)) as f:
        assert [t.registers for t in c.threads] == [t.registers for t in f.threads]
        assert c.files == f.files and c.siginfo == f.siginfo and not c.truncated


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
    out = subprocess.run([sys.executable, "-m", "coredump.cli", "slim", str(core), "-o", str(tmp_path / "s")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "smaller" in out.stdout and (tmp_path / "s").stat().st_size > 0
    bad = tmp_path / "notacore"
    bad.write_bytes(b"\x7fELF" + b"\0" * 100)
    out = subprocess.run([sys.executable, "-m", "coredump.cli", "slim", str(bad), "-o", str(tmp_path / "t")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and out.stderr.startswith("Error: ") and "Traceback" not in out.stderr
    assert not (tmp_path / "t").exists()
