"""Keys that could write outside the destination are refused."""

import os

import pytest

from coredump.errors import StorageError
from coredump.store.safe_extract import check_relative_key, commit_tempfile, open_safe_tempfile, safe_target


@pytest.mark.parametrize("key, reason", [
    ("../../etc/x", "parent directory"),
    ("a/../../x", "parent directory"),
    ("/abs", "absolute path"),
    ("a//b", "empty or '.'"),
    ("a/./b", "empty or '.'"),
    ("a/", "empty or '.'"),
    ("", "empty name"),
    ("a\\..\\b", "backslash"),
    ("a\0b", "NUL"),
])
def test_unsafe_keys(key, reason):
    assert reason in check_relative_key(key)


@pytest.mark.parametrize("key", ["summary.json", "c1/core.zst", "files/ab12/libc.so.6", "..a/b..", ".hidden"])
def test_safe_keys(key):
    assert check_relative_key(key) is None


def test_symlinked_directory_inside_dest_is_refused(tmp_path):
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "files").symlink_to(outside)
    with pytest.raises(StorageError, match="is a symlink"):
        open_safe_tempfile(dest, "files/ab/prog")
    assert list(outside.iterdir()) == []


def test_symlinked_file_is_refused_and_never_followed(tmp_path):
    dest, victim = tmp_path / "dest", tmp_path / "victim"
    dest.mkdir()
    victim.write_bytes(b"keep")
    (dest / "summary.json").symlink_to(victim)
    with pytest.raises(StorageError, match="is a symlink"):
        safe_target(dest, "summary.json")
    assert victim.read_bytes() == b"keep"


def test_a_file_where_a_directory_is_needed_is_refused(tmp_path):
    (tmp_path / "c1").write_bytes(b"")
    with pytest.raises(StorageError, match="is not a directory"):
        safe_target(tmp_path, "c1/core.zst")


def test_tempfile_then_commit(tmp_path):
    out, tmp, target = open_safe_tempfile(tmp_path, "c1/sub/core.zst")
    with out:
        out.write(b"data")
    assert tmp.parent == target.parent and tmp.name.endswith(".part")
    assert commit_tempfile(tmp, tmp_path, "c1/sub/core.zst").read_bytes() == b"data"
    assert os.listdir(tmp_path / "c1" / "sub") == ["core.zst"]
