"""
Hashing
=======

The sha256 of a file, streamed: what ``summary.json`` records of each stored file and what
``coredump fetch`` checks a download against.
"""

from __future__ import annotations

import hashlib

__all__ = ("hash_file",)

CHUNK = 4 << 20


def hash_file(path) -> str:
    """The hex sha256 of the file at `path`, read in CHUNK-byte blocks; OSError as open() raises."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()
