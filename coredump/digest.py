"""
Digests
=======

``sha256``: CPython's own SHA-256, hashlib's fallback constructor. ``import hashlib`` loads
OpenSSL first (~4 ms), and every analysis takes two digests (the parse cache's keys, the
crash fingerprint). The digests are the same (FIPS 180-4).
"""

from __future__ import annotations

__all__ = ("sha256",)

try:
    from _sha256 import sha256  # CPython <= 3.11
except ImportError:  # pragma: no cover - the interpreter's build decides
    try:
        from _sha2 import sha256  # CPython >= 3.12
    except ImportError:  # a build without the builtin hashes (FIPS)
        from hashlib import sha256
