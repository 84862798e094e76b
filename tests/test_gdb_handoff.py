"""coredump gdb: a bundled crash opened in gdb on a machine without the build tree."""

import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest

from coredump.store.gdb_handoff import file_build_id, prepare_gdb
from tests.bundles import build_uselib, crash_uselib, make_crash_dir
from tests.coreedit import rename_mapped_file
from tests.cores import BUILD
from tests.gdb_oracle import parse_gdb

pytest_plugins = ("tests.s3server",)  # moto_server and s3env, for the fetched bundle

# A relative NT_FILE name that getopt takes for gdb's -ex (gdb/main.c long_options).
INJECTED = "--eval-command=shell sh x.sh"

UNWIND = ["lib_parse", "lib_entry", "run_parser", "main"]


def coredump_gdb(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "coredump.cli.main", "gdb", *map(str, args)],
                          capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


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


def _hostile_core(make_core, dest, name: bytes):
    """A real segv core whose NT_FILE names the executable `name` (edited in the core)."""
    shutil.copyfile(make_core("O0", "segv"), dest)
    assert rename_mapped_file(dest, str(BUILD / "O0" / "segv"), name) > 0
    return dest


def _plant_attack(where):
    """The binary under the injected name (same build-id, so the hand-off accepts it) and
    the script its -ex would run."""
    shutil.copyfile(BUILD / "O0" / "segv", where / INJECTED)
    (where / "x.sh").write_text("touch pwned\n")


def test_an_executable_named_like_an_option_runs_no_command(make_core, gdb, tmp_path):
    art = tmp_path / "art"
    art.mkdir()
    _hostile_core(make_core, art / "core", INJECTED.encode())
    _plant_attack(art)
    out = coredump_gdb(art, "--", "-batch", "-nx", "-ex", "bt", cwd=art)
    assert not (art / "pwned").exists(), "gdb ran the core's command"
    assert out.returncode == 0, out.stderr
    assert backtrace(out)[0].function == "store_value"  # the file is still gdb's executable


def test_the_fetched_bundle_runs_no_command(make_core, gdb, s3env, tmp_path):
    """The same attack through `coredump fetch`: the job holds the binary and x.sh beside
    the crash directories, its files/ does not hold the executable."""
    from coredump.capture.harvest import HarvestOptions, harvest
    from coredump.store.s3 import upload_artifacts
    from coredump.store.s3fetch import fetch_artifacts

    job, art, dest = tmp_path / "job", tmp_path / "art", tmp_path / "dest"
    job.mkdir()
    core = _hostile_core(make_core, job / "core", INJECTED.encode())
    result = harvest(HarvestOptions(output=str(art), paths=(str(job),)), echo=lambda line: None,
                     cores=[str(core)])
    assert result.ok and len(result.records) == 1, result.errors
    _plant_attack(art)
    # The author also records the planted files in summary.json, so fetch brings them (it
    # brings only what the summary records, with its digest: an unrecorded object stays out).
    from coredump.store.hashing import hash_file

    summary = json.loads((art / "summary.json").read_text())
    for name in (INJECTED, "x.sh"):
        summary["digests"][name] = {"size": (art / name).stat().st_size, "sha256": hash_file(str(art / name))}
    (art / "summary.json").write_text(json.dumps(summary))
    upload_artifacts(art, s3env.url("p"), job="j1")
    fetch_artifacts(s3env.url("p", "j1"), dest)
    crash_dir = next(p.parent.name for p in dest.glob("*/core.zst"))
    out = coredump_gdb(crash_dir, "--", "-batch", "-nx", "-ex", "bt", cwd=dest)
    assert (dest / INJECTED).is_file() and not (dest / "pwned").exists(), "gdb ran the core's command"
    assert out.returncode == 0, out.stderr


def test_a_dotdot_name_plants_no_link_outside_the_workdir(make_core, tmp_path):
    """NT_FILE names the executable ``../../planted/x``: --print-only's links (sysroot/,
    solib/) all stay inside the work folder."""
    art = tmp_path / "art"
    (art / "c1").mkdir(parents=True)
    _hostile_core(make_core, art / "c1" / "core", b"../../planted/x")
    build_id = file_build_id(str(BUILD / "O0" / "segv"))
    (art / "files" / build_id).mkdir(parents=True)
    shutil.copyfile(BUILD / "O0" / "segv", art / "files" / build_id / "x")
    tmp = tmp_path / "t" / "u"
    tmp.mkdir(parents=True)
    out = coredump_gdb(art / "c1", "--print-only", env=dict(os.environ, TMPDIR=str(tmp)))
    assert out.returncode == 0, out.stderr
    workdir = out.stdout.strip().split("set sysroot ", 1)[1].split("/sysroot", 1)[0]
    links = [os.path.join(r, n) for r, ds, fs in os.walk(tmp_path) for n in ds + fs
             if os.path.islink(os.path.join(r, n))]
    assert links and all(link.startswith(workdir + os.sep) for link in links), links
    assert any(os.path.realpath(link) == str(art / "files" / build_id / "x") for link in links)


def _all_frames(text):
    """(lwp, [(pc, function, file, line)]) of every thread `thread apply all bt` printed."""
    return [(t.lwp, [(f.pc, f.function, f.file and os.path.basename(f.file), f.line) for f in t.frames])
            for t in parse_gdb(text).threads]


def test_cxx_backtrace_is_plain_gdbs_on_the_build_machine(make_core, gdb, tmp_path):
    """gdb looks libstdc++ up as l_name's libstdc++.so.6 (sysroot + l_name, then its
    DT_SONAME in solib-search-path); the bundle holds the real file, libstdc++.so.6.0.30."""
    core = make_core("O0", "cxx_throw")
    bt = ["-batch", "-nx", "-ex", "thread apply all bt"]
    plain = subprocess.run([gdb, *bt, str(BUILD / "O0" / "cxx_throw"), str(core)], capture_output=True, text=True,
                           timeout=300)
    crash_dir = make_crash_dir(core, tmp_path / "coredump-artifacts", "1-cxx")
    assert any(p.name.startswith("libstdc++.so.6.") for p in crash_dir.parent.glob("files/*/*"))
    out = coredump_gdb(crash_dir, "--", *bt)
    assert out.returncode == 0, out.stderr
    assert "Could not load shared library symbols" not in out.stdout + out.stderr
    expected = _all_frames(plain.stdout)
    assert expected and "__cxa_throw" in plain.stdout  # the oracle saw libstdc++'s frames
    assert _all_frames(out.stdout) == expected


def test_soname_is_readelfs(make_core, tmp_path):
    from coredump.store.gdb_names import read_soname

    readelf = shutil.which("readelf") or pytest.skip("readelf is the oracle")
    crash_dir = make_crash_dir(make_core("O0", "cxx_throw"), tmp_path / "coredump-artifacts", "1-cxx")
    libs = [p for p in crash_dir.parent.glob("files/*/*.so*") if not p.name.endswith(".debug")]
    assert libs
    for lib in libs:
        out = subprocess.run([readelf, "-d", str(lib)], capture_output=True, text=True, check=True).stdout
        want = next((line.split("[", 1)[1].rstrip("]") for line in out.splitlines() if "(SONAME)" in line), None)
        assert read_soname(str(lib)) == want, lib


def test_names_from_the_core_are_printed_without_their_controls(make_core, tmp_path):
    """The printed command and the warnings quote NT_FILE names: shown, never obeyed."""
    art = tmp_path / "art"
    (art / "c1").mkdir(parents=True)
    name = "x\x1b]0;title\x07\r\n::error::y"
    _hostile_core(make_core, art / "c1" / "core", b"/tmp/" + name.encode())
    build_id = file_build_id(str(BUILD / "O0" / "segv"))
    (art / "files" / build_id).mkdir(parents=True)
    shutil.copyfile(BUILD / "O0" / "segv", art / "files" / build_id / name)
    out = coredump_gdb(art / "c1", "--print-only")
    assert out.returncode == 0, out.stderr
    assert "error::y" in out.stdout  # the executable is in the command, escaped
    for text in (out.stdout, out.stderr):
        assert not set(text) & set("\x1b\x07\r")
        assert not any(line.startswith("::") for line in text.splitlines())
    shutil.rmtree(out.stdout.split("set sysroot ", 1)[1].split("/sysroot", 1)[0])
