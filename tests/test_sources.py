"""``symbols/sources.py``: a DWARF source path read only as a regular file, found under
--source-dir / --source-prefix-map, and stored names that cannot leave ``sources/``."""

import os
import threading

import pytest

from coredump.symbols.sources import SourceFinder, parse_prefix_map, read_regular_file, stored_name, stored_sources


def test_regular_file_is_read_and_bounded(tmp_path):
    path = tmp_path / "a.c"
    path.write_bytes(b"x" * 100)
    assert read_regular_file(str(path)).data == b"x" * 100
    cut = read_regular_file(str(path), limit=10)
    assert cut.data == b"x" * 10 and cut.truncated


def test_symlink_to_a_secret_is_refused(tmp_path):
    link = tmp_path / "segv.c"
    link.symlink_to("/etc/passwd")
    assert os.path.isfile(link)  # what a naive reader would open
    assert read_regular_file(str(link)) is None


def test_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "segv.c"
    os.mkfifo(fifo)
    result = []
    reader = threading.Thread(target=lambda: result.append(read_regular_file(str(fifo))), daemon=True)
    reader.start()
    reader.join(30)
    if reader.is_alive():  # unblock the open before failing: a writer ends it
        with open(fifo, "wb"):
            pass
        pytest.fail("reading a FIFO blocked")
    assert result == [None]


@pytest.mark.parametrize("path", ["/proc/self/environ", "/proc/self/cmdline",
                                  "/sys/kernel/mm/transparent_hugepage/enabled", "/dev/zero", "/dev/null"])
def test_kernel_interfaces_are_refused(path):
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist here")
    assert read_regular_file(path) is None


def test_kernel_interface_reached_through_a_directory_link_is_refused(tmp_path):
    (tmp_path / "proc").symlink_to("/proc/self")
    assert read_regular_file(str(tmp_path / "proc" / "environ")) is None


def test_directory_and_missing_file_are_none(tmp_path):
    assert read_regular_file(str(tmp_path)) is None
    assert read_regular_file(str(tmp_path / "absent.c")) is None
    assert read_regular_file("a\0b") is None


def test_roots_keep_reads_inside_the_checkout(tmp_path):
    inside, outside = tmp_path / "repo", tmp_path / "home"
    inside.mkdir()
    outside.mkdir()
    (outside / "id_rsa").write_text("secret")
    (inside / "ok.c").write_text("int x;")
    (inside / "link").symlink_to(outside)  # a directory link out of the checkout
    assert read_regular_file(str(inside / "ok.c"), roots=[str(inside)]).data == b"int x;"
    assert read_regular_file(str(outside / "id_rsa"), roots=[str(inside)]) is None
    assert read_regular_file(str(inside / "link" / "id_rsa"), roots=[str(inside)]) is None


def test_prefix_map_spelling():
    assert parse_prefix_map("/build=/home/me/src") == ("/build", "/home/me/src")
    assert parse_prefix_map("/a=b=c") == ("/a", "b=c")  # gcc splits at the first '='
    for bad in ("/build", "=/x"):
        with pytest.raises(ValueError):
            parse_prefix_map(bad)


def test_finder_order_prefix_map_then_source_dir_then_stored(tmp_path):
    (tmp_path / "new" / "src").mkdir(parents=True)
    (tmp_path / "new" / "src" / "a.c").write_text("mapped")
    (tmp_path / "dir" / "src").mkdir(parents=True)
    (tmp_path / "dir" / "src" / "a.c").write_text("by suffix")
    (tmp_path / "stored.c").write_text("stored")
    gone = "/no/such/build/src/a.c"
    stored = {gone: str(tmp_path / "stored.c")}
    kw = {"stored": stored, "stored_root": str(tmp_path)}
    maps = [("/no/such/build", str(tmp_path / "old")), ("/no/such/build", str(tmp_path / "new"))]
    assert SourceFinder(prefix_maps=maps, **kw).find(gone).data == b"mapped"  # the last map wins
    assert SourceFinder(source_dirs=[str(tmp_path / "dir")], **kw).find(gone).data == b"by suffix"
    assert SourceFinder(**kw).find(gone).data == b"stored"
    assert SourceFinder().find(gone) is None


def test_stored_copy_is_read_only_inside_the_artifact_directory(tmp_path):
    """A folder of sources/ swapped for a symlink out of the directory (a downloaded artifact
    is input from elsewhere) leads nowhere."""
    secret = tmp_path / "home"
    secret.mkdir()
    (secret / "a.c").write_text("secret")
    root = tmp_path / "artifacts"
    (root / "sources").mkdir(parents=True)
    (root / "sources" / ("ab" * 32)).symlink_to(secret)
    stored = stored_sources({"sources": [{"path": "/b/a.c", "file": f"sources/{'ab' * 32}/a.c"}]}, str(root))
    assert SourceFinder(stored=stored, stored_root=str(root)).find("/b/a.c") is None


def test_stored_names_cannot_escape(tmp_path):
    digest = "ab" * 32
    for hostile in ("/x/../../etc/passwd", "/x/..", "/x/a b\n.c", "/x/.bashrc", "/"):
        rel = stored_name(digest, hostile)
        parts = rel.split("/")
        assert parts[:2] == ["sources", digest] and len(parts) == 3 and parts[2] not in ("", ".", "..")


def test_stored_sources_ignores_names_outside_the_layout(tmp_path):
    good = f"sources/{'cd' * 32}/a.c"
    crash = {"sources": [{"path": "/b/a.c", "file": good},
                         {"path": "/b/x.c", "file": "sources/../../etc/passwd"},
                         {"path": "/b/y.c", "file": "/etc/passwd"},
                         {"path": "/b/z.c", "file": f"sources/{'cd' * 32}/.."},
                         "junk", {"path": 3, "file": good}]}
    assert stored_sources(crash, str(tmp_path)) == {"/b/a.c": os.path.join(tmp_path, good)}
    assert stored_sources({"sources": "x"}, str(tmp_path)) == {}
