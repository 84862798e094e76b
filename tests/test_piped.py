import lzma
import os

import zstandard

from coredump.capture.core_pattern import parse_core_pattern
from coredump.capture.piped import decompress_systemd_core, read_back

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
    got = read_back(parse_core_pattern("|/usr/share/apport/apport %p"), 0, str(tmp_path),
                    apport_dir=str(tmp_path / "crash"))
    assert got.cores == []
    text = "\n".join(got.messages)
    assert "_usr_bin_x.0.crash" in text and "core_pattern=core" in text


def test_unknown_program_says_how_to_fix(tmp_path):
    got = read_back(parse_core_pattern("|/opt/handler %p"), 0, str(tmp_path))
    text = "\n".join(got.messages)
    assert got.cores == [] and "/opt/handler" in text
    assert "--core-dir" in text and "privileged container" in text
