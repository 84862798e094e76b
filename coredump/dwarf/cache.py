"""
DWARF parse cache
=================

What ``DwarfIndex`` keeps in the parse cache (``coredump.symbols.cache``): entry kinds that
name the code which produced them, and the frames found at each address of an image.
"""

from __future__ import annotations

import functools

from coredump.dwarf.supplementary import file_identity
from coredump.symbols import cache

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, Optional, Tuple
    Frames = Tuple[tuple, ...]  # SourceFrame fields, innermost first

__all__ = ("code_tag", "entry_kind", "supplementary_identity", "FramesMemo", "frames_memo", "call_sites_memo",
           "flush_frames")

# The modules whose rules shape the cached data: the line-program decoder (lineprogram, sequences),
# gdb's line choices (lines), the DIE walk (dwarf), the frames built from it (dwarfframes)
# and the names shown (demangle and the grammars it dispatches to). A change to any of them
# names new entries.
_RULE_MODULES = (
    "coredump.dwarf.lineprogram", "coredump.dwarf.sequences", "coredump.dwarf.lines", "coredump.dwarf.index",
    "coredump.dwarf.inline", "coredump.dwarf.supplementary", "coredump.dwarf.callsites", "coredump.demangle",
    "coredump.demangle.itanium",
    "coredump.demangle.itanium_types", "coredump.demangle.itanium_reader", "coredump.demangle.rust",
    "coredump.demangle.rust_v0", "coredump.demangle.rust_v0_lexer", "coredump.demangle.rust_legacy",
    "coredump.patterns", "coredump.record",  # how the demanglers' patterns and the cached records are built
)


@functools.cache
def code_tag(modules: Tuple[str, ...] = _RULE_MODULES) -> str:
    """CRC-32 of the identities of the rule modules' source files (`modules`: another kind's
    own rules): a cache entry made by other rules is never read back, whoever forgets to
    bump a format number. A file's identity is that of ``symbols.cache.image_key``: any
    change to it sets st_ctime_ns, which no user can set; the ~150 KB of sources are not
    read on every analysis (~3 ms)."""
    import os
    import zlib

    crc = 0
    for name in modules:
        # Found, not imported: a warm analysis runs none of the line-program or DIE code.
        try:
            st = os.stat(_source_path(name))
        except OSError:  # no source beside the bytecode: the package version
            from coredump import __version__

            return f"v{__version__}"
        crc = zlib.crc32(f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}\0".encode(), crc)
    return f"{crc:08x}"


def _source_path(name: str) -> str:
    """Where module `name` of this package is, without importing it: ``x/y.py``, else the
    package ``x/y/__init__.py``."""
    import os

    import coredump

    path = os.path.join(os.path.dirname(coredump.__file__), *name.split(".")[1:])
    return path + ".py" if os.path.exists(path + ".py") else os.path.join(path, "__init__.py")


def supplementary_identity(supplementary) -> str:
    """``<identity>-<size>`` of a dwz supplementary file (an ElfImage), ``-`` for none: the
    strings and shared DIEs a debug file's entries were read with."""
    if supplementary is None:
        return "-"
    return f"{file_identity(supplementary) or 'none'}-{len(supplementary.data)}"


def entry_kind(kind: str, image, *parts: int, supplementary=None) -> str:
    """``kind.<code tag>.<file size>[.sup-<identity>][.part…]``: a stripped file and its debug
    file share a build-id, so the file's size is part of the name (as for symbol tables);
    a file read with a supplementary file (dwz) names that file too."""
    head = (kind, code_tag(), str(len(image.data)))
    if supplementary is not None:
        head += ("sup-" + supplementary_identity(supplementary),)
    return ".".join(head + tuple(str(p) for p in parts))


_FRAMES_KIND = "frames.2"  # bump when SourceFrame's fields change
_CALL_SITES_KIND = "callsites.2"  # FunctionCallSites.to_data (2: with parameters)


class FramesMemo:
    """address -> frames of one image (or, for the memo of kind ``_CALL_SITES_KIND``, the
    call sites of the function there), read from the cache on first use and written back
    once, when the process exits (an entry per address would cost a write each): a second
    analysis of the same crash parses no DWARF at all."""

    MAX_ADDRESSES = 4096

    def __init__(self, image, supplementary=None, kind: str = _FRAMES_KIND):
        self._key = cache.image_key(image)
        self._image = image
        self._supplementary = supplementary
        self._memo_kind = kind
        self._data: Optional[Dict[int, Frames]] = None
        self._dirty = False

    def _load(self) -> Dict[int, Frames]:
        if self._data is None:
            found = cache.get(self._key, self._kind())
            self._data = dict(found) if isinstance(found, dict) else {}
        return self._data

    def _kind(self) -> str:
        return entry_kind(self._memo_kind, self._image, supplementary=self._supplementary)

    def get(self, address: int) -> Optional[Frames]:
        return self._load().get(address) if self._key and cache.enabled() else None

    def add(self, address: int, frames: Frames) -> None:
        if not self._key or not cache.enabled():
            return
        data = self._load()
        if address in data or len(data) >= self.MAX_ADDRESSES:
            return
        data[address] = frames
        if not self._dirty:
            self._dirty = True
            _pending_writes().append(self)

    def flush(self) -> None:
        """Write the entry back, merged with what is on disk now: another analysis of the same
        file may have written its own addresses since this one loaded the entry, and the last
        writer must not drop them."""
        if self._dirty and self._data is not None:
            self._dirty = False
            kind = self._kind()
            merged = cache.get(self._key, kind)
            merged = dict(merged) if isinstance(merged, dict) else {}
            for address, frames in self._data.items():
                if len(merged) >= self.MAX_ADDRESSES:
                    break
                merged.setdefault(address, frames)
            cache.put(self._key, kind, merged)


_MEMOS: Dict[Tuple[Optional[str], str], FramesMemo] = {}


def frames_memo(image, supplementary=None, kind: str = _FRAMES_KIND) -> FramesMemo:
    """The process's one memo for `image`'s file (read with `supplementary`): two memos of
    one entry would each write it at exit, the last with only its own addresses."""
    key = (cache.image_key(image), entry_kind(kind, image, supplementary=supplementary))
    memo = _MEMOS.get(key)
    if memo is None:
        memo = _MEMOS[key] = FramesMemo(image, supplementary, kind)
    return memo


def call_sites_memo(image, supplementary=None) -> FramesMemo:
    """address -> ``FunctionCallSites.to_data`` of the function holding it (False: none)."""
    return frames_memo(image, supplementary, _CALL_SITES_KIND)


@functools.cache
def _pending_writes() -> list:
    """The memos with new addresses, written by one exit handler."""
    import atexit

    pending: list = []

    def flush_all() -> None:
        while pending:
            pending.pop().flush()

    atexit.register(flush_all)
    return pending


def flush_frames() -> None:
    """Write the new addresses of every memo now (the exit handler does it otherwise)."""
    pending = _pending_writes()
    while pending:
        pending.pop().flush()
