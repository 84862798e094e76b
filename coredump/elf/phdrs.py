"""
Program headers
===============

Read an ELF core's header and program header table with ``struct`` alone (no pyelftools),
for the callers that must stay cheap to import or stream the file.
"""

from __future__ import annotations

import struct

from coredump.errors import CoreFormatError
from coredump.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Tuple

__all__ = ("Phdr", "read_phdrs", "EHDR", "PHDR", "SHDR", "PN_XNUM")

PN_XNUM = 0xFFFF  # gABI: e_phnum overflow, the real count is in section 0's sh_info
EHDR = struct.Struct("<16sHHIQQQIHHHHHH")  # Elf64_Ehdr
PHDR = struct.Struct("<IIQQQQQQ")  # Elf64_Phdr
SHDR = struct.Struct("<IIQQQQIIQQ")  # Elf64_Shdr
ET_CORE = 4


@dataclass(frozen=True)
class Phdr:
    p_type: int
    p_flags: int
    p_offset: int
    p_vaddr: int
    p_paddr: int
    p_filesz: int
    p_memsz: int
    p_align: int

    def pack(self) -> bytes:
        return PHDR.pack(self.p_type, self.p_flags, self.p_offset, self.p_vaddr, self.p_paddr,
                         self.p_filesz, self.p_memsz, self.p_align)


def read_phdrs(f, path: str) -> Tuple[bytes, List[Phdr]]:
    """The ELF header and every program header of the core open as `f`."""
    f.seek(0)
    ehdr = f.read(EHDR.size)
    if len(ehdr) < EHDR.size or ehdr[:4] != b"\x7fELF" or ehdr[4] != 2 or ehdr[5] != 1:
        raise CoreFormatError(f"{path} is not a 64-bit little-endian ELF file")
    fields = EHDR.unpack(ehdr)
    e_type, e_phoff, e_shoff, e_phentsize, e_phnum = fields[1], fields[5], fields[6], fields[9], fields[10]
    if e_type != ET_CORE:
        raise CoreFormatError(f"{path} is not a core (e_type {e_type})")
    if e_phnum == PN_XNUM and e_shoff:
        f.seek(e_shoff)
        e_phnum = SHDR.unpack(f.read(SHDR.size))[7]
    if e_phentsize != PHDR.size:
        raise CoreFormatError(f"{path}: e_phentsize {e_phentsize} is not {PHDR.size}")
    f.seek(e_phoff)
    raw = f.read(PHDR.size * e_phnum)
    if len(raw) < PHDR.size * e_phnum:
        raise CoreFormatError(f"{path}: program headers truncated")
    return ehdr, [Phdr(*PHDR.unpack_from(raw, i * PHDR.size)) for i in range(e_phnum)]
