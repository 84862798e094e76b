"""
FDE index cache
===============

The sorted ``(pc_begin, pc_end, offset)`` ranges of an ``.eh_frame`` that has no
``.eh_frame_hdr`` search table, kept in the parse cache (``coredump.symbols.cache``). gcc
links static executables without ``--eh-frame-hdr`` (its LINK_EH_SPEC passes it for dynamic
links only), so every analysis of a static glibc program would read its ~1,000 FDE headers
again: ~3 ms of a warm analysis.
"""

from __future__ import annotations

from coredump.symbols import cache

__all__ = ("cached_ranges", "store_ranges")

# Version of the cached list; bump when FdeIndex's rules for what it lists change.
_FORMAT = 1


def _kind(section) -> str:
    return f"fde-index.{_FORMAT}.{section.vaddr:x}.{len(section.data)}"


def cached_ranges(image, section) -> list | None:
    """The ranges stored for `section` of `image`; None on a miss or a malformed entry."""
    found = cache.get(cache.image_key(image), _kind(section))
    if isinstance(found, list) and all(type(e) is tuple and len(e) == 3 for e in found):
        return found
    return None


def store_ranges(image, section, entries: list) -> None:
    cache.put(cache.image_key(image), _kind(section), entries, wait=False)
