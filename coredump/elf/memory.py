"""
Address space
=============

The crashed process's memory as the core holds it: PT_LOAD segments searched with bisect,
falling back to the mapped files for pages the kernel did not dump.
"""

from __future__ import annotations

import bisect
import struct

from coredump.elf.notes import FileMapping
from coredump.errors import MemoryFault
from coredump.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable, List, Optional, Sequence
    FileReader = Callable[[str], Optional[bytes]]

__all__ = ("Segment", "AddressSpace", "PF_X", "PF_W", "PF_R")

# ELF gABI program header p_flags.
PF_X, PF_W, PF_R = 1, 2, 4


@dataclass(frozen=True)
class Segment:
    """One PT_LOAD: [p_vaddr, p_vaddr + p_memsz) with p_filesz bytes at p_offset in the core.
    ``available`` is how many of those bytes the (possibly truncated) core file really holds."""

    p_vaddr: int
    p_memsz: int
    p_offset: int
    p_filesz: int
    p_flags: int
    available: int

    @property
    def end(self) -> int:
        return self.p_vaddr + self.p_memsz



class AddressSpace:
    """Reads of the process's virtual memory; every failure is ``MemoryFault(address)``.

    >>> AddressSpace(b"", []).read(0x1000, 1)
    Traceback (most recent call last):
    ...
    coredump.errors.MemoryFault: cannot read memory at 0x1000
    """

    def __init__(self, data, segments: Sequence[Segment], file_mappings: Sequence[FileMapping] = (),
                 open_file: Optional[FileReader] = None):
        self._data = data
        self.segments: List[Segment] = sorted((s for s in segments if s.p_memsz), key=lambda s: s.p_vaddr)
        self._starts = [s.p_vaddr for s in self.segments]
        self._files = sorted(file_mappings, key=lambda m: m.vm_start)
        self._file_starts = [m.vm_start for m in self._files]
        self._open_file = open_file

    def find_segment(self, address: int) -> Optional[Segment]:
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and address < self.segments[i].end:
            return self.segments[i]
        return None

    def find_file_mapping(self, address: int) -> Optional[FileMapping]:
        i = bisect.bisect_right(self._file_starts, address) - 1
        if i >= 0 and address < self._files[i].vm_end:
            return self._files[i]
        return None

    def is_executable(self, address: int) -> bool:
        seg = self.find_segment(address)
        return seg is not None and bool(seg.p_flags & PF_X)

    def is_anonymous_code(self, address: int) -> bool:
        """Executable memory that no file backs: code a JIT compiler wrote. The kernel dumps
        one PT_LOAD per mapping and lists the file-backed ones in NT_FILE (binfmt_elf.c
        fill_files_note), so an executable segment outside them is anonymous. The vDSO is
        one too: callers look for a module first. Without NT_FILE nothing is known."""
        return bool(self._files) and self.is_executable(address) and self.find_file_mapping(address) is None

    def _read_chunk(self, address: int, size: int) -> bytes:
        """Bytes from the one segment holding `address`, at most `size` of them."""
        seg = self.find_segment(address)
        if seg is None:
            raise MemoryFault(address)
        rel = address - seg.p_vaddr
        n = min(size, seg.end - address)
        if rel < seg.available:
            n = min(n, seg.available - rel)
            start = seg.p_offset + rel
            return bytes(self._data[start:start + n])
        if rel < seg.p_filesz:
            # Inside p_filesz but past the end of a truncated core file: never invent bytes.
            raise MemoryFault(address, "core is truncated; no bytes")
        # Past p_filesz: the kernel's coredump_filter left out this page (file-backed text,
        # read-only data), so the mapped file holds it at its NT_FILE offset.
        return self._read_from_file(address, n)

    def _read_from_file(self, address: int, size: int) -> bytes:
        mapping = self.find_file_mapping(address)
        if mapping is None or self._open_file is None:
            raise MemoryFault(address, "page not dumped in core")
        data = self._open_file(mapping.filename)
        if data is None:
            raise MemoryFault(address, f"page not dumped and {mapping.filename} unavailable")
        pos = mapping.offset + (address - mapping.vm_start)
        n = min(size, mapping.vm_end - address)
        chunk = bytes(data[pos:pos + n])
        if not chunk:
            raise MemoryFault(address, f"past the end of {mapping.filename}")
        return chunk

    def read(self, address: int, size: int) -> bytes:
        if address < 0 or size < 0 or address + size > 1 << 64:
            raise MemoryFault(address & ((1 << 64) - 1))
        chunks = []
        got = 0
        while got < size:
            chunk = self._read_chunk(address + got, size - got)
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def read_word(self, address: int) -> int:
        return struct.unpack("<Q", self.read(address, 8))[0]

    def read_u32(self, address: int) -> int:
        return struct.unpack("<I", self.read(address, 4))[0]

    def read_cstring(self, address: int, max_size: int = 4096) -> bytes:
        """A NUL-terminated string of at most `max_size` bytes (the NUL excluded)."""
        out = bytearray()
        while len(out) < max_size:
            want = min(256, max_size - len(out))
            try:
                chunk = self.read(address + len(out), want)
            except MemoryFault:
                if not out and want == 1:
                    raise
                # The string may end just before an unreadable page: read byte by byte.
                try:
                    chunk = self.read(address + len(out), 1)
                except MemoryFault:
                    if out:
                        return bytes(out)
                    raise
            nul = chunk.find(b"\0")
            if nul >= 0:
                out += chunk[:nul]
                return bytes(out)
            out += chunk
        return bytes(out)
