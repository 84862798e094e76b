import json

import pytest

from coredump.errors import StorageError
from coredump.model import Module
from coredump.store.artifacts import SUMMARY_SCHEMA, ArtifactDir, CrashRecord, utc_timestamp


def test_ids_are_short_unique_and_safe(tmp_path):
    a = ArtifactDir(str(tmp_path))
    assert a.new_id("/usr/bin/make", 42) == "make-42"
    assert a.new_id("/usr/bin/make", 42) == "make-42-2"
    (tmp_path / "x-7").mkdir()
    assert a.new_id("x", 7) == "x-7-2"
    assert a.new_id("/tmp/../we ird$name", 1) == "we_ird_name-1"
    assert a.new_id(None, None) == "core"


def test_nothing_created_until_needed(tmp_path):
    ArtifactDir(str(tmp_path / "out")).new_id("a", 1)
    assert not (tmp_path / "out").exists()


def test_ensure_fails_cleanly(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StorageError, match="cannot create"):
        ArtifactDir(str(tmp_path / "file" / "out")).ensure()


def test_files_stored_once_per_build_id(tmp_path):
    lib = tmp_path / "libx.so"
    lib.write_bytes(b"\x7fELF library")
    dbg = tmp_path / "libx.debug"
    dbg.write_bytes(b"debug")
    a = ArtifactDir(str(tmp_path / "out"))
    a.ensure()
    mods = [Module(str(lib), 0, 1, build_id="ab12", file=str(lib), debug_file=str(dbg)),
            Module("[vdso]", 2, 3, build_id="cd34", file="[vdso]"),
            Module("/gone/liby.so", 4, 5, build_id=None, file=str(lib)),
            Module("/other/libz.so", 6, 7, build_id="ee", file=str(lib), status="mismatch")]
    r1, r2 = CrashRecord("a-1", "src"), CrashRecord("b-2", "src")
    a.bundle_modules(r1, mods)
    lib.write_bytes(b"changed")  # already stored: not copied again
    a.bundle_modules(r2, mods[:1])
    assert r1.files == r2.files == ["files/ab12/libx.so", "files/ab12/libx.so.debug"]
    assert (tmp_path / "out" / "files" / "ab12" / "libx.so").read_bytes() == b"\x7fELF library"
    assert "liby.so" in r1.note and "libz.so" in r1.note


def test_summary_merges_and_has_job_fields(tmp_path):
    a = ArtifactDir(str(tmp_path))
    a.write_summary([CrashRecord("a-1", "/x/core", signal="SIGSEGV", stored=True)], ["make", "test"], 2,
                    started=0, finished=60)
    a.write_summary([CrashRecord("b-2", "/y/core", note="n")])
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["schema"] == SUMMARY_SCHEMA and s["command"] == ["make", "test"] and s["exit_status"] == 2
    assert s["started"] == "1970-01-01T00:00:00Z" and s["host"]
    rows = [(c["id"], c["stored"], c["note"]) for c in s["crashes"]]
    assert rows == [("a-1", True, None), ("b-2", False, "n")]
    assert set(s["crashes"][0]) >= {"id", "signature", "signal", "executable", "crash_json", "core"}


def test_utc_timestamp():
    assert utc_timestamp(86400 + 61) == "1970-01-02T00:01:01Z"


@pytest.mark.parametrize("mode, expected", [(None, 0o600), (0o644, 0o644)])
def test_json_files_have_the_artifact_mode(tmp_path, mode, expected):
    """crash.json holds argv and the environment's traces: private unless --mode says."""
    import os
    import stat

    a = ArtifactDir(str(tmp_path / "out")) if mode is None else ArtifactDir(str(tmp_path / "out"), mode)
    a.ensure()
    a.crash_dir("a-1")
    a.write_json("a-1/crash.json", {"schema": "coredump.crash/1"})
    a.write_summary([CrashRecord("a-1", "/x/core")])
    for name in ("a-1/crash.json", "summary.json"):
        assert stat.S_IMODE(os.stat(tmp_path / "out" / name).st_mode) == expected, name
    for name in ("", "a-1"):
        assert stat.S_IMODE(os.stat(tmp_path / "out" / name).st_mode) == expected | 0o100 | (expected & 0o44) >> 2
    assert not [p for p in os.listdir(tmp_path / "out" / "a-1") if p.startswith(".")]


def test_parse_mode():
    from coredump.store.artifacts import parse_mode

    assert parse_mode("600") == 0o600 and parse_mode("0644") == 0o644
    for bad in ("0400", "rw", "01777", "9"):
        with pytest.raises(ValueError):
            parse_mode(bad)
