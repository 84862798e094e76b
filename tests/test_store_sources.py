"""``store/sources.py``: each source file stored once by content, inside the checkout only,
within the per-file and per-run caps."""

import hashlib

from coredump.model import CoreInfo, Crash, Frame, Process, Signal, Thread
from coredump.store.artifacts import ArtifactDir, CrashRecord
from coredump.store.sources import MAX_TOTAL_BYTES, store_sources


def crash_with_sources(*paths):
    frames = tuple(Frame(index=i, pc=0x1000 + i, file="a.c", line=1, source_path=str(p)) for i, p in enumerate(paths))
    return Crash(core=CoreInfo("core", 1), process=Process(1, "/bin/x"), signal=Signal(11, "SIGSEGV"),
                 crashing_thread=0, threads=(Thread(1, {}, frames),), modules=())


def test_total_cap_leaves_the_rest_out_with_a_note(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.c").write_text("int a;\n")
    (repo / "b.c").write_text("int b;\n")
    artifacts = ArtifactDir(str(tmp_path / "out"))
    artifacts.source_bytes = MAX_TOTAL_BYTES - len("int a;\n")  # what earlier crashes of the run stored
    record = CrashRecord(id="x-1", source="core")
    entries = store_sources(artifacts, record, crash_with_sources(repo / "a.c", repo / "b.c", repo / "a.c"),
                            [str(repo)])
    assert [e["path"] for e in entries] == [str(repo / "a.c")]
    assert entries[0]["sha256"] == hashlib.sha256(b"int a;\n").hexdigest()
    assert "b.c (the sources stored reached 16 MiB)" in record.note
    assert artifacts.source_bytes == MAX_TOTAL_BYTES


def test_same_content_is_stored_once_and_counted_once(tmp_path):
    repo = tmp_path / "repo"
    (repo / "one").mkdir(parents=True)
    (repo / "two").mkdir()
    for d in ("one", "two"):
        (repo / d / "a.c").write_text("int a;\n")
    artifacts = ArtifactDir(str(tmp_path / "out"))
    record = CrashRecord(id="x-1", source="core")
    entries = store_sources(artifacts, record, crash_with_sources(repo / "one" / "a.c", repo / "two" / "a.c"),
                            [str(repo)])
    assert len({e["file"] for e in entries}) == 1 and len(entries) == 2
    assert record.files == [entries[0]["file"]] and artifacts.source_bytes == len("int a;\n")
