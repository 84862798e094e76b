"""``coredump.digest.sha256``: the digests hashlib gives, fed at once or in pieces."""

from __future__ import annotations

import hashlib

from coredump.digest import sha256


def test_same_digests_as_hashlib():
    for data in (b"", b"abc", bytes(range(256)) * 1000):
        assert sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
    d = sha256(b"build-id\0")
    d.update(memoryview(b"x" * 100)[10:20])
    assert d.hexdigest() == hashlib.sha256(b"build-id\0" + b"x" * 10).hexdigest()
