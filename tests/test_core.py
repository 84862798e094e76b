"""Opening cores: real ones, damaged ones, and things that are not cores at all."""

import os
import subprocess
import sys

import pytest

from coredump.elf.core import open_core
from coredump.errors import CoreFormatError, MissingFileError
from tests.cores import BUILD


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "coredump.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def assert_one_line_error(out):
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), out.stderr


def test_not_elf(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello, this is not a core\n" * 10)
    with pytest.raises(CoreFormatError, match="not an ELF"):
        open_core(str(p))
    assert_one_line_error(run_cli("analyze", p))


def test_elf_that_is_not_a_core(make_core):
    make_core("O0", "segv")  # builds the samples
    exe = BUILD / "O0" / "segv"
    with pytest.raises(CoreFormatError, match="ET_DYN, not a core"):
        open_core(str(exe))
    assert_one_line_error(run_cli("analyze", exe))


def test_empty_file(tmp_path):
    p = tmp_path / "core"
    p.write_bytes(b"")
    assert_one_line_error(run_cli("analyze", p))


def test_missing_path(tmp_path):
    with pytest.raises(MissingFileError):
        open_core(str(tmp_path / "nope"))
    assert_one_line_error(run_cli("analyze", tmp_path / "nope"))


def test_directory(tmp_path):
    assert_one_line_error(run_cli("analyze", tmp_path))


def test_elf_header_only(tmp_path, make_core):
    core = make_core("O0", "segv")
    p = tmp_path / "core"
    p.write_bytes(core.read_bytes()[:40])
    assert_one_line_error(run_cli("analyze", p))


def test_real_core_threads_and_notes(make_core):
    core = make_core("O2", "threads")
    with open_core(str(core)) as c:
        assert c.arch.name == "x86_64"
        assert len(c.threads) == 6  # main + 5 workers
        assert c.siginfo.si_signo == 11
        assert c.threads[0].cursig == 11
        assert c.prpsinfo.pr_fname == "threads"
        assert any(m.filename.endswith("/threads") for m in c.files)
        assert c.get_argv() == (str(BUILD / "O2" / "threads"),)
        assert not c.truncated and not c.warnings


def truncation_points(size, phoff_end):
    return sorted({phoff_end - 10, phoff_end + 100, size // 4, size // 2, size - 4096, size - 1})


def test_truncated_cores_give_partial_results(tmp_path, make_core):
    core = make_core("O0", "segv")
    data = core.read_bytes()
    exe = BUILD / "O0" / "segv"
    with open_core(str(core)) as c:
        notes_end = max(s.p_offset for s in c.segments)
        first_load = min(s.p_offset for s in c.segments)
    phoff_end = 64 + 56 * int.from_bytes(data[56:58], "little")  # Elf64_Ehdr e_phnum; the notes follow
    inside_notes = {phoff_end + 40, (phoff_end + first_load) // 2}  # in the first note; in a later one
    errors = 0
    for cut in sorted(set(truncation_points(len(data), first_load)) | inside_notes):
        p = tmp_path / f"core.{cut}"
        p.write_bytes(data[:cut])
        out = run_cli("analyze", "--exe", exe, p)
        assert "Traceback" not in out.stderr, out.stderr
        if out.returncode == 0:
            # Past the notes: the thread, the signal and frame 0 are still there, with a warning.
            assert "SIGSEGV" in out.stdout and "store_value" in out.stdout, out.stdout
            assert "truncated" in out.stdout, out.stdout
        else:
            assert_one_line_error(out)
            errors += 1
    assert notes_end > first_load
    assert errors >= 1  # a cut in the first note leaves nothing to explain: an error, not an empty report


def test_unreadable_file(tmp_path, make_core):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    p = tmp_path / "core"
    p.write_bytes(make_core("O0", "segv").read_bytes())
    p.chmod(0)
    assert_one_line_error(run_cli("analyze", p))


@pytest.mark.parametrize("flag,value", [("--exe", "no-such-exe"), ("--sysroot", "no-such-root"),
                                        ("--search-path", "no-such-dir")])
def test_a_mistyped_path_option_is_an_error_not_missing_symbols(make_core, tmp_path, flag, value):
    out = run_cli("analyze", make_core("O0", "segv"), flag, tmp_path / value)
    assert_one_line_error(out)
    assert flag in out.stderr and value in out.stderr


def test_a_core_cut_before_the_stack_says_so(tmp_path, make_core):
    from coredump.analysis import analyze_core

    core = make_core("O0", "segv")
    with open_core(str(core)) as c:
        sp = c.threads[0].registers["rsp"]
        stack = next(s for s in c.segments if s.p_vaddr <= sp < s.p_vaddr + s.p_memsz)
    cut = tmp_path / "core"
    cut.write_bytes(core.read_bytes()[:stack.p_offset])
    crash = analyze_core(str(cut), None)
    assert any(f"{sp:#x} is not in the core" in w for w in crash.warnings), crash.warnings
