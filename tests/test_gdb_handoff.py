"""coredump gdb: a bundled crash opened in gdb on a machine without the build tree."""

import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest

from coredump.store.gdb_handoff import prepare_gdb
from tests.bundles import build_uselib, crash_uselib, make_crash_dir
from tests.gdb_oracle import parse_gdb

UNWIND = ["lib_parse", "lib_entry", "run_parser", "main"]


def coredump_gdb(*args):
    return subprocess.run([sys.executable, "-m", "coredump.cli", "gdb", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def backtrace(out):
    """The frames `bt` printed: from the last ``#0`` line (gdb prints frame 0 once more
    when it loads the core)."""
    text = out.stdout[out.stdout.rfind("#0 "):]
    return parse_gdb("Thread 1 (LWP 1)\n" + text).threads[0].frames


@pytest.fixture(scope="module")
def bundle(make_core, gdb, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gdbbundle")
    exe, _lib = build_uselib(tmp / "build")
    core = crash_uselib(exe, tmp / "run")
    crash_dir = make_crash_dir(core, tmp / "coredump-artifacts")
    shutil.rmtree(tmp / "build")
    return SimpleNamespace(core=core, crash_dir=crash_dir, files=crash_dir.parent / "files")


def test_bt_in_batch_mode_names_the_crashing_function(bundle):
    out = coredump_gdb(bundle.crash_dir, "--", "-batch", "-nx", "-ex", "bt")
    assert out.returncode == 0, out.stderr
    frames = backtrace(out)
    assert [f.function for f in frames] == UNWIND
    assert (os.path.basename(frames[0].file), frames[0].line) == ("libcrash.c", 8)
    command = next(line for line in out.stderr.splitlines() if line.startswith("gdb "))
    assert "set sysroot" in command and str(bundle.files) in command


def test_without_the_bundle_gdb_cannot_name_the_frames(bundle, gdb):
    """The control: plain gdb on the core, with the build tree gone, names nothing."""
    out = subprocess.run([gdb, "-batch", "-nx", "-ex", "bt", "-c", str(bundle.core)],
                         capture_output=True, text=True, timeout=300)
    assert "lib_parse" not in out.stdout


def test_print_only_prints_the_command_and_keeps_the_links(bundle):
    out = coredump_gdb(bundle.crash_dir, "--print-only")
    assert out.returncode == 0, out.stderr
    command = out.stdout.strip()
    assert command.startswith("gdb ") and "set debug-file-directory" in command
    workdir = command.split("set sysroot ", 1)[1].split("/sysroot", 1)[0]
    try:
        links = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(workdir, "solib")) for f in fs]
        assert any(p.endswith("libcrash.so") for p in links)
        assert all(os.path.realpath(p).startswith(str(bundle.files)) for p in links)
    finally:
        shutil.rmtree(workdir)


def test_separate_debug_files_are_found_by_build_id(bundle, tmp_path):
    art = tmp_path / "coredump-artifacts"
    shutil.copytree(bundle.crash_dir.parent, art)
    made = set()
    for lib in art.glob("files/*/*"):
        if lib.name in ("libcrash.so", "uselib"):
            subprocess.run(["objcopy", "--only-keep-debug", str(lib), f"{lib}.debug"], check=True)
            subprocess.run(["strip", "-g", str(lib)], check=True)
            made.add(f"{lib}.debug")
    session = prepare_gdb(str(art / bundle.crash_dir.name), extra=["-batch", "-nx", "-ex", "bt"])
    try:
        # The two made here; the bundle carries the C library's own where the machine that
        # made it had them (libc6-dbg): those are found the same way.
        found = {m.debug_file for m in session.modules if m.debug_file}
        assert made <= found and len(made) == 2
        assert all(os.path.dirname(f).startswith(str(art / "files")) for f in found)
        out = subprocess.run(session.argv, capture_output=True, text=True, timeout=300)
    finally:
        session.cleanup()
    frames = backtrace(out)
    assert [f.function for f in frames] == UNWIND
    assert all(f.file is not None for f in frames), out.stdout


def test_plain_core_zst_opens_with_the_local_executable(make_core, tmp_path):
    import zstandard

    core = make_core("O0", "segv")
    zst = tmp_path / "core.zst"
    with open(core, "rb") as fin, open(zst, "wb") as fout:
        zstandard.ZstdCompressor().copy_stream(fin, fout)
    out = coredump_gdb(zst, "--", "-batch", "-nx", "-ex", "bt")
    assert out.returncode == 0, out.stderr
    assert backtrace(out)[0].function == "store_value"
    assert "not bundled" in out.stderr


def test_missing_crash_is_one_error_line(tmp_path):
    out = coredump_gdb(tmp_path / "absent", "--print-only")
    assert out.returncode == 1
    assert out.stderr.strip().startswith("Error: ") and "Traceback" not in out.stderr


def test_a_bundled_file_of_another_build_is_not_given_to_gdb(bundle, tmp_path):
    """files/<build-id>/libcrash.so replaced by another build: one warning naming it, and
    no link to it (gdb would show that build's symbols for this core)."""
    art = tmp_path / "coredump-artifacts"
    shutil.copytree(bundle.crash_dir.parent, art)
    _exe, other = build_uselib(tmp_path / "other", cflags=("-O2", "-g"))
    wrong = next(art.glob("files/*/libcrash.so"))
    shutil.copyfile(other, wrong)
    out = coredump_gdb(art / bundle.crash_dir.name, "--print-only")
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if "BUILD-ID MISMATCH" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ") and str(wrong) in warnings[0]
    workdir = out.stdout.strip().split("set sysroot ", 1)[1].split("/sysroot", 1)[0]
    try:
        links = [os.path.join(r, f) for r, _, fs in os.walk(workdir) for f in fs]
        assert links and all(os.path.realpath(p) != str(wrong) for p in links)
        assert not any(p.endswith("libcrash.so") for p in links)
    finally:
        shutil.rmtree(workdir)
