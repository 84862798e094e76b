"""coredump analyze on a crash directory, a core.zst and a core: the bundle's files win."""

import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest

from coredump.errors import CoreFormatError, MissingFileError
from coredump.jsondoc import read_document
from coredump.model import CRASH_SCHEMA
from coredump.store.bundle import find_crash_input, open_input
from tests.bundles import analyze_json, build_uselib, crash_uselib, make_crash_dir

FRAME_KEYS = ("index", "pc", "function", "offset", "module", "module_offset", "file", "line", "inline", "trust")


def frames(crash):
    return [[{k: f[k] for k in FRAME_KEYS} for f in t["frames"]] for t in crash["threads"]]


@pytest.fixture(scope="module")
def bundle(make_core, tmp_path_factory):
    """A uselib crash analyzed on its 'build machine', bundled, then its build tree deleted."""
    tmp = tmp_path_factory.mktemp("bundle")
    exe, lib = build_uselib(tmp / "build")
    core = crash_uselib(exe, tmp / "run")
    on_build_machine = analyze_json(core)
    crash_dir = make_crash_dir(core, tmp / "coredump-artifacts")
    shutil.rmtree(tmp / "build")
    return SimpleNamespace(tmp=tmp, exe=exe, lib=lib, core=core, crash_dir=crash_dir,
                           files=crash_dir.parent / "files", expected=on_build_machine)


def test_build_machine_analysis_is_clean(bundle):
    assert bundle.expected["warnings"] == []
    crashed = bundle.expected["threads"][bundle.expected["crashing_thread"]]["frames"]
    assert [f["function"] for f in crashed[:4]] == ["lib_parse", "lib_entry", "run_parser", "main"]
    assert all(f["file"] and f["line"] for f in crashed[:4])


def test_crash_dir_equals_build_machine(bundle):
    ours = analyze_json(bundle.crash_dir)
    assert frames(ours) == frames(bundle.expected)
    assert ours["signal"] == bundle.expected["signal"]
    assert ours["warnings"] == []
    assert ours["core"]["path"] == os.path.abspath(bundle.crash_dir)
    for m in ours["modules"]:
        assert m["status"] == "ok", m
        if m["path"] != "[vdso]":
            assert m["file"].startswith(str(bundle.files)), m
            assert m["file_build_id"] == m["build_id"]


def test_without_the_bundle_the_deleted_build_is_missed(bundle):
    """The control: the same core with no files/ beside it cannot find the build."""
    ours = analyze_json(bundle.core)
    assert any("not found" in w for w in ours["warnings"])
    assert frames(ours) != frames(bundle.expected)


def test_core_zst_in_crash_dir_uses_the_bundle(bundle):
    ours = analyze_json(bundle.crash_dir / "core.zst")
    assert frames(ours) == frames(bundle.expected)
    assert ours["warnings"] == []


def test_bundle_wins_over_a_different_build_at_the_original_path(bundle, tmp_path):
    """A rebuilt uselib at the core's path (another build-id) must not be used."""
    exe, lib = build_uselib(bundle.exe.parent, define="OTHER_BUILD=1", cflags=("-O1", "-g"))
    try:
        ours = analyze_json(bundle.crash_dir)
        assert ours["warnings"] == []
        assert frames(ours) == frames(bundle.expected)
        on_disk = analyze_json(bundle.core)
        assert any("build-id mismatch" in w for w in on_disk["warnings"])
    finally:
        shutil.rmtree(bundle.exe.parent)


def test_separate_debug_file_comes_from_the_bundle(bundle, tmp_path):
    """A stripped library in files/ with <name>.debug beside it gets file:line again."""
    libdir = next(p for p in bundle.files.iterdir() if (p / "libcrash.so").exists())
    art = tmp_path / "coredump-artifacts"
    shutil.copytree(bundle.crash_dir.parent, art)
    lib = art / "files" / libdir.name / "libcrash.so"
    debug = lib.with_name("libcrash.so.debug")
    subprocess.run(["objcopy", "--only-keep-debug", str(lib), str(debug)], check=True)
    subprocess.run(["strip", "-g", str(lib)], check=True)
    ours = analyze_json(art / bundle.crash_dir.name)
    mod = next(m for m in ours["modules"] if m["path"].endswith("libcrash.so"))
    assert mod["file"] == str(lib) and mod["debug_file"] == str(debug), mod
    assert mod["status"] == "ok"
    assert frames(ours) == frames(bundle.expected)


def test_debug_file_alone_is_never_the_module(tmp_path, bundle):
    from coredump.symbols.finder import FileFinder, FinderOptions

    libdir = next(p for p in bundle.files.iterdir() if (p / "libcrash.so").exists())
    only = tmp_path / "files" / libdir.name
    only.mkdir(parents=True)
    subprocess.run(["objcopy", "--only-keep-debug", str(libdir / "libcrash.so"), str(only / "a.debug")],
                   check=True)
    finder = FileFinder(FinderOptions(build_id_dirs=(str(tmp_path / "files"),), debug_dirs=()))
    found = finder.find_file("/nowhere/libcrash.so", libdir.name)
    assert found is None or not found.path.endswith(".debug")


def test_plain_zst_core_is_decompressed_to_a_temp_file_and_removed(bundle, tmp_path):
    import zstandard

    zst = tmp_path / "core.zst"
    with open(bundle.core, "rb") as fin, open(zst, "wb") as fout:
        zstandard.ZstdCompressor().copy_stream(fin, fout)
    with open_input(str(zst)) as (core_path, overrides):
        assert core_path != str(zst)
        assert os.path.getsize(core_path) == os.path.getsize(bundle.core)
        assert overrides == {}
    assert not os.path.exists(core_path)


def test_plain_core_is_used_in_place(bundle):
    with open_input(str(bundle.core)) as (core_path, overrides):
        assert core_path == str(bundle.core) and overrides == {}


def test_crash_dir_finds_files_beside_it(bundle):
    found = find_crash_input(str(bundle.crash_dir))
    assert found.core.endswith("core.zst") and found.compressed
    assert found.files_dir == str(bundle.files)
    assert read_document(found.crash_json, CRASH_SCHEMA)["schema"] == CRASH_SCHEMA


def test_bad_inputs_are_errors(tmp_path):
    with pytest.raises(MissingFileError):
        find_crash_input(str(tmp_path / "absent"))
    with pytest.raises(CoreFormatError):
        find_crash_input(str(tmp_path))
    bad = tmp_path / "core.zst"
    bad.write_bytes(b"\x28\xb5\x2f\xfd" + b"junk" * 10)
    with pytest.raises(CoreFormatError):
        with open_input(str(bad)):
            pass
    out = subprocess.run([sys.executable, "-m", "coredump.cli.main", "analyze", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 1 and out.stderr.startswith("Error: ") and "Traceback" not in out.stderr


def test_build_id_mismatch_is_reported(make_core, tmp_path):
    """--exe pointing at another build of the same program: status mismatch and a warning."""
    core = make_core("O0", "segv")
    other = tmp_path / "segv"
    from tests.cores import SAMPLES

    subprocess.run(["gcc", "-O1", "-g", "-DOTHER_BUILD", "-o", str(other), str(SAMPLES / "segv.c")], check=True)
    ours = analyze_json(core, "--exe", str(other))
    exe = next(m for m in ours["modules"] if m["file"] == str(other))
    assert exe["status"] == "mismatch"
    assert exe["build_id"] != exe["file_build_id"]
    assert any("build-id mismatch" in w and exe["path"] in w for w in ours["warnings"])


def _compressed(core) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(write_content_size=True, write_checksum=True).compress(core.read_bytes())


@pytest.mark.parametrize("damage, reason", [
    (lambda z: z[:len(z) // 2], "ends early"),
    (lambda z: z[:len(z) // 2] + bytes([z[len(z) // 2] ^ 0xFF]) + z[len(z) // 2 + 1:], ""),
    (lambda z: b"\0" * 16 + z, "does not start with a zstd frame"),
    (lambda z: z[:6], ""),
], ids=["truncated", "flipped", "not zstd", "header only"])
def test_a_damaged_core_zst_says_so(make_core, tmp_path, damage, reason):
    zst = tmp_path / "core.zst"
    zst.write_bytes(damage(_compressed(make_core("O0", "segv"))))
    out = subprocess.run([sys.executable, "-m", "coredump.cli.main", "analyze", str(zst)],
                         capture_output=True, text=True, timeout=300)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1, out.stderr
    assert lines[0].startswith(f"Error: {zst} is zstd-compressed but cannot be decompressed: ")
    assert reason in lines[0] and "not an ELF" not in lines[0]


def test_errors_about_a_decompressed_core_name_the_users_file(tmp_path):
    """The temporary copy a core.zst is decompressed to is never what an error names."""
    import zstandard

    from tests.cores import BUILD, build_samples

    build_samples()
    zst = tmp_path / "core.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress((BUILD / "O0" / "segv").read_bytes()))  # an ELF, not a core
    out = subprocess.run([sys.executable, "-m", "coredump.cli", "analyze", str(zst)],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert out.returncode == 1 and out.stderr == f"Error: {zst} is an ELF ET_DYN, not a core (ET_CORE)\n", out.stderr
