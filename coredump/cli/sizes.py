"""
Sizes
=====

``--max-core-size 2G`` and friends: shared by the click commands and the click-free ``run``
entry, so it imports nothing heavy.
"""

from __future__ import annotations

from coredump.patterns import lazy_compile

__all__ = ("parse_size",)

_SIZE = lazy_compile(r"(?i)\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*")


def parse_size(text: str) -> int:
    """Bytes from ``512``, ``100M``, ``2G``, ``1.5GiB`` (powers of 1024).

    >>> parse_size("2G"), parse_size("100MiB"), parse_size("512")
    (2147483648, 104857600, 512)
    """
    m = _SIZE.fullmatch(text)
    if m is None:
        raise ValueError(f"not a size: {text!r} (use e.g. 512M or 2G)")
    return int(float(m[1]) * 1024 ** " KMGT".index(m[2].upper() or " "))
