import lzma
import os

import zstandard

from coredump.capture.core_pattern import parse_core_pattern
from coredump.capture.piped import decompress_systemd_core, fix_hint, read_back, summary_line

SYSTEMD = parse_core_pattern("|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h")
NAME = "core.segv.1000.8e1f2d1c0e7c4c2b9a0d5c1e3f4a5b6c.4242.1700000000000000"


def test_decompress_each_store_format(tmp_path, make_core):
    raw = make_core("O0", "segv").read_bytes()
    (tmp_path / "a.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    (tmp_path / "a.xz").write_bytes(lzma.compress(raw))
    (tmp_path / "a").write_bytes(raw)
    for name in ("a.zst", "a.xz", "a"):
        decompress_systemd_core(str(tmp_path / name), str(tmp_path / "out"))
        assert (tmp_path / "out").read_bytes() == raw


def test_systemd_store_read_back(tmp_path, make_core, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no coredumpctl: the store is read
    store, out = tmp_path / "store", tmp_path / "out"
    store.mkdir()
    out.mkdir()
    raw = make_core("O0", "segv").read_bytes()
    (store / f"{NAME}.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    (store / "core.old.0.x.1.1.zst").write_bytes(b"")
    os.utime(store / "core.old.0.x.1.1.zst", (1000, 1000))
    got = read_back(SYSTEMD, since=1_000_000_000, directory=str(out), systemd_store=str(store))
    assert got.cores == [str(out / NAME)]
    assert (out / NAME).read_bytes() == raw


def test_apport_without_unpack_tool(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    (tmp_path / "crash").mkdir()
    (tmp_path / "crash" / "_usr_bin_x.0.crash").write_text("ProblemType: Crash\n")
    apport = parse_core_pattern("|/usr/share/apport/apport %p")
    got = read_back(apport, 0, str(tmp_path), apport_dir=str(tmp_path / "crash"))
    assert got.cores == [] and "_usr_bin_x.0.crash" in "\n".join(got.messages)
    line = summary_line(apport, got)
    assert line.startswith("core_pattern pipes cores to /usr/share/apport/apport; none could be read back: "
                           "cores are piped to apport")
    assert "core_pattern=core" in line


def test_unknown_program_says_how_to_fix(tmp_path):
    handler = parse_core_pattern("|/opt/handler %p")
    got = read_back(handler, 0, str(tmp_path))
    assert got.cores == [] and "/opt/handler" in "\n".join(got.messages)
    line = summary_line(handler, got)
    assert line.startswith("core_pattern pipes cores to /opt/handler; none could be read back: to have")
    assert "--core-dir" in line and "privileged container" in line


def test_systemd_store_counts_what_it_read_back(tmp_path, make_core, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    (tmp_path / "store").mkdir()
    got = read_back(SYSTEMD, since=0, directory=str(tmp_path), systemd_store=str(tmp_path / "store"))
    assert summary_line(SYSTEMD, got) == ("core_pattern pipes cores to /usr/lib/systemd/systemd-coredump; "
                                          "0 cores read back")
    got = read_back(SYSTEMD, since=0, directory=str(tmp_path), systemd_store=str(tmp_path / "absent"))
    assert "none could be read back: cores are piped to systemd-coredump" in summary_line(SYSTEMD, got)


def test_fix_hint_says_where_cores_are_piped():
    assert fix_hint("systemd-coredump", SYSTEMD).startswith("cores are piped to systemd-coredump, ")
    assert fix_hint("other", parse_core_pattern("|/opt/h")).startswith("to have core files written")
