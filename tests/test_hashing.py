"""hash_file against hashlib over a file longer than one read block."""

import hashlib

import pytest

from coredump.store.hashing import CHUNK, hash_file


def test_hash_spans_blocks(tmp_path):
    data = bytes(range(256)) * (CHUNK // 256) + b"tail"
    (tmp_path / "f").write_bytes(data)
    assert hash_file(tmp_path / "f") == hash_file(str(tmp_path / "f")) == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert hash_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_missing_file_raises_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        hash_file(tmp_path / "missing")
