"""
Supplementary debug files (dwz): cores of c_samples' uselib + libcrash.so whose debug files
``dwz -m`` compressed at test time, analyzed with the debug directory that holds them and
compared with gdb given the same directory; the supplementary file missing, or of another
build; bundles and the gdb hand-off carrying it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from coredump.analysis import AnalyzeOptions, analyze_core
from coredump.dwarf.cache import entry_kind
from coredump.dwarf.index import DwarfIndex
from coredump.dwarf.supplementary import file_identity, read_link
from coredump.elf.image import ElfImage
from coredump.report.json import dumps
from coredump.store.artifacts import ArtifactDir, CrashRecord
from tests.bundles import analyze_json
from tests.cores import run_crash
from tests.dwz_samples import LAYOUTS, dwz_debug_dir, dwz_skip_reason, strip_pair
from tests.gdb_oracle import run_gdb, strip_params

UNWIND = ["lib_parse", "lib_entry", "run_parser", "main"]


@pytest.fixture(scope="module")
def pair(make_core, tmp_path_factory):
    """The stripped pair, its split debug files and a real core of it (SIGSEGV in lib_parse)."""
    reason = dwz_skip_reason()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("dwz")
    split = strip_pair(tmp)
    (tmp / "run").mkdir()
    rc, core = run_crash([str(tmp / "bin" / "uselib")], tmp / "run")
    assert core is not None, f"uselib exited {rc} without a core"
    return SimpleNamespace(root=tmp, split=split, exe=tmp / "bin" / "uselib", core=core)


def _debug_dir(pair, tmp_path, layout):
    root = tmp_path / f"debug-{layout}"
    sup = dwz_debug_dir(pair.split, root, layout)
    return root, sup


def _plain_debug_dir(pair, tmp_path):
    """The split debug files as objcopy left them (no dwz), by build-id."""
    root = tmp_path / "debug-plain"
    for path in pair.split.values():
        build_id = ElfImage(str(path)).build_id
        dest = root / ".build-id" / build_id[:2] / (build_id[2:] + ".debug")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    return root


def _ours(crash):
    """(function, file's base name, line) of the crashing thread's frames up to main."""
    frames = crash["threads"][crash["crashing_thread"]]["frames"][:len(UNWIND)]
    return [(f["function"], f["file"] and os.path.basename(f["file"]), f["line"]) for f in frames]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_frames_match_gdb_with_the_supplementary_file(pair, tmp_path, layout, gdb):
    root, sup = _debug_dir(pair, tmp_path, layout)
    link = read_link(ElfImage(str(next(root.glob(".build-id/*/*.debug")))))
    assert link is not None and link.section == (".debug_sup" if layout == "dwarf5" else ".gnu_debugaltlink")
    crash = analyze_json(pair.core, "--debug-dir", str(root))
    ours = _ours(crash)
    assert [f[0] for f in ours] == UNWIND
    assert all(line for _, _, line in ours), ours  # names and lines are the DWARF's
    assert not any("supplementary" in w for w in crash["warnings"]), crash["warnings"]
    assert {m["supplementary_file"] for m in crash["modules"] if "supplementary_file" in m} == {str(sup)}
    # gdb 13 stops at DW_FORM_ref_sup4 ("Cannot handle DW_FORM_ref_sup4 in DWARF reader"): for
    # DWARF 5 supplementary files its oracle is the same debug info before dwz.
    oracle = _plain_debug_dir(pair, tmp_path) if layout == "dwarf5" else root
    report = run_gdb(pair.exe, pair.core, gdb, extra=("-iex", f"set debug-file-directory {oracle}"))
    theirs = [(strip_params(f.function), f.file and os.path.basename(f.file), f.line)
              for f in report.crashing.frames[:len(ours)]]
    assert ours == theirs, report.raw


def test_a_missing_supplementary_file_is_one_warning_and_symbol_names(pair, tmp_path):
    root, sup = _debug_dir(pair, tmp_path, "dwz-dir")
    sup.unlink()
    crash = analyze_json(pair.core, "--debug-dir", str(root))
    ours = _ours(crash)
    assert [f[0] for f in ours] == UNWIND  # from .symtab: never DWARF string offsets
    assert all(line is None for _, _, line in ours)
    about = [w for w in crash["warnings"] if "supplementary" in w]
    assert len(about) == 1 and LAYOUTS["dwz-dir"]["name"] in about[0] and "not found" in about[0], about


def test_a_supplementary_file_of_another_build_is_refused(pair, tmp_path):
    root, sup = _debug_dir(pair, tmp_path, "dwz-dir")
    other_split = {n: tmp_path / f"other-{n}.debug" for n in pair.split}
    for name, path in other_split.items():
        shutil.copyfile(pair.split[name], path)
    other = tmp_path / "other-common.debug"
    # Another multifile: the same inputs with the roles of the two files' DIEs re-ordered.
    subprocess.run(["dwz", "-m", str(other), "-M", "x", *map(str, reversed(list(other_split.values())))],
                   check=True, capture_output=True)
    assert file_identity(ElfImage(str(other))) != file_identity(ElfImage(str(sup)))
    shutil.copyfile(other, sup)
    crash = analyze_json(pair.core, "--debug-dir", str(root))
    assert [f[0] for f in _ours(crash)] == UNWIND
    about = [w for w in crash["warnings"] if "supplementary" in w]
    assert len(about) == 1 and str(sup) in about[0] and "has build-id" in about[0], about


def test_cache_entries_name_the_supplementary_file(pair, tmp_path):
    root, sup = _debug_dir(pair, tmp_path, "dwz-dir")
    debug = ElfImage(str(next(root.glob(".build-id/*/*.debug"))))
    with_sup = entry_kind("funcs", debug, 0, supplementary=ElfImage(str(sup)))
    assert with_sup != entry_kind("funcs", debug, 0)
    assert file_identity(ElfImage(str(sup))) in with_sup
    assert DwarfIndex(debug, supplementary=ElfImage(str(sup)))._key != DwarfIndex(debug)._key


def test_bundle_and_gdb_handoff_carry_the_supplementary_file(pair, tmp_path, gdb):
    root, sup = _debug_dir(pair, tmp_path, "dwz-dir")
    crash = analyze_core(str(pair.core), AnalyzeOptions(debug_dirs=(str(root),)))
    art = ArtifactDir(str(tmp_path / "coredump-artifacts"))
    art.ensure()
    record = CrashRecord("1-uselib", str(pair.core))
    art.crash_dir(record.id)
    art.bundle_modules(record, crash.modules)
    crash_dir = Path(art.path(record.id))
    (crash_dir / "crash.json").write_text(dumps(crash))
    shutil.copyfile(pair.core, crash_dir / "core")
    identity = file_identity(ElfImage(str(sup)))
    assert f"files/{identity}/common.debug" in record.files
    assert record.files.count(f"files/{identity}/common.debug") == 1  # two modules, one file
    shutil.rmtree(root)  # the build machine's debug directory is gone
    empty = tmp_path / "empty"
    empty.mkdir()
    ours = _ours(analyze_json(crash_dir, "--debug-dir", str(empty)))
    assert [f[0] for f in ours] == UNWIND and all(line for _, _, line in ours), ours
    out = subprocess.run([sys.executable, "-m", "coredump.cli.main", "gdb", str(crash_dir), "--", "-batch", "-nx",
                          "-iex", "set debuginfod enabled off", "-ex", "bt"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "could not find supplementary" not in out.stdout + out.stderr
    assert "lib_entry (text=" in out.stdout and "libcrash.c:" in out.stdout, out.stdout


def test_supplementary_file_from_debuginfod(pair, tmp_path):
    """Debug files and their supplementary file served by a debuginfod-protocol server on
    127.0.0.1 only: the supplementary file is fetched by the build-id its link names."""
    from tests.test_debuginfod import serve

    root, sup = _debug_dir(pair, tmp_path, "dwz-dir")
    files = {(p.parent.name + p.name[:-len(".debug")], "debuginfo"): p.read_bytes()
             for p in root.glob(".build-id/*/*.debug")}
    identity = file_identity(ElfImage(str(sup)))
    files[(identity, "debuginfo")] = sup.read_bytes()
    server, hits = serve(files)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = dict(os.environ, DEBUGINFOD_URLS=f"http://127.0.0.1:{server.server_address[1]}",
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    try:
        out = subprocess.run([sys.executable, "-m", "coredump.cli.main", "analyze", "--format", "json",
                              "--debug-dir", str(empty), str(pair.core)],
                             capture_output=True, text=True, env=env, timeout=120)
    finally:
        server.shutdown()
    assert out.returncode == 0, out.stderr
    crash = json.loads(out.stdout)
    ours = _ours(crash)
    assert [f[0] for f in ours] == UNWIND and all(line for _, _, line in ours), (ours, crash["warnings"])
    assert f"/buildid/{identity}/debuginfo" in hits


def _with_section(src: Path, dst: Path, name: str, content: bytes) -> ElfImage:
    """A copy of the debug file `src` with section `name` holding `content` (objcopy)."""
    blob = dst.with_suffix(".blob")
    blob.write_bytes(content)
    subprocess.run(["objcopy", "--add-section", f"{name}={blob}", str(src), str(dst)], check=True,
                   capture_output=True)
    return ElfImage(str(dst))


BUILD_ID = bytes(range(20))


@pytest.mark.parametrize("name, content, expected", [
    (".gnu_debugaltlink", b"/x/.dwz/common.debug\0" + BUILD_ID, ("/x/.dwz/common.debug", BUILD_ID.hex())),
    (".gnu_debugaltlink", b"\0" + BUILD_ID, None),  # no name
    (".gnu_debugaltlink", b"no terminator", None),
    (".gnu_debugaltlink", b"/a" * 5000 + b"\0" + BUILD_ID, None),  # larger than any path
    # DWARF 5 §7.3.6: version 5, is_supplementary 0, name, ULEB128 length, checksum.
    (".debug_sup", b"\5\0\0common5.debug\0\x14" + BUILD_ID, ("common5.debug", BUILD_ID.hex())),
    (".debug_sup", b"\5\0\1\0\x14" + BUILD_ID, None),  # a supplementary file's own
    (".debug_sup", b"\5\0\0name\0\x80", None),  # its ULEB128 runs off the end
    (".debug_sup", b"\5\0\0name\0\x40" + BUILD_ID, None),  # a checksum longer than the section
    (".debug_sup", b"\4\0\0name\0\x14" + BUILD_ID, None),  # another version
])
def test_links_are_read_as_written_and_malformed_ones_are_none(pair, tmp_path, name, content, expected):
    image = _with_section(pair.split["uselib"], tmp_path / "uselib.debug", name, content)
    link = read_link(image)
    assert (link and (link.name, link.build_id)) == expected


def test_a_hostile_link_is_one_warning_and_no_file_outside_is_taken(pair, tmp_path):
    """A debug file whose link climbs out of every directory to a file that is no ELF, and
    names a build-id nothing has: the analysis goes on, with one warning."""
    root = tmp_path / "debug"
    for path in pair.split.values():
        build_id = ElfImage(str(path)).build_id
        dest = root / ".build-id" / build_id[:2] / (build_id[2:] + ".debug")
        dest.parent.mkdir(parents=True, exist_ok=True)
        _with_section(path, dest, ".gnu_debugaltlink", b"../../../../../../../../../etc/passwd\0" + BUILD_ID)
    crash = analyze_json(pair.core, "--debug-dir", str(root))
    assert [f[0] for f in _ours(crash)] == UNWIND
    about = [w for w in crash["warnings"] if "supplementary" in w]
    assert len(about) == 1 and "etc/passwd" in about[0] and BUILD_ID.hex() in about[0], about
