"""
ELF header
==========

The Elf64_Ehdr of an ELF64 little-endian file, read with ``struct``: the analysis of a core
whose parse cache is warm needs nothing more from pyelftools, whose import costs as much as
the rest of our start-up. ``e_type`` and ``e_machine`` are spelled as pyelftools spells them
(``"ET_CORE"``, ``"EM_X86_64"``), which the rest of the code and its messages use.
"""

from __future__ import annotations

import struct

from coredump.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Optional, Union

__all__ = ("Ehdr", "read_ehdr", "ehdr_of", "machine_name", "SH_TYPE_NAMES")

# gABI "ELF Header": e_ident (16 bytes), then e_type, e_machine, e_version, e_entry, e_phoff,
# e_shoff, e_flags, e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx.
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
# Elf64_Shdr of section 0 (gABI "Extended section numbering"): sh_size at 32, sh_link 40, sh_info 44.
_SHDR0 = struct.Struct("<32xQII")
PN_XNUM = 0xFFFF  # e_phnum overflow: the count is section 0's sh_info
SHN_XINDEX = 0xFFFF  # e_shstrndx overflow: the index is section 0's sh_link

_E_TYPE = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE", 0xFF00: "ET_LOPROC",
           0xFFFF: "ET_HIPROC"}
# pyelftools' names (elftools.elf.enums.ENUM_E_MACHINE) of the machines we meet; others are
# looked up there.
_E_MACHINE = {62: "EM_X86_64", 183: "EM_AARCH64", 3: "EM_386", 40: "EM_ARM", 243: "EM_RISCV",
              21: "EM_PPC64", 20: "EM_PPC", 22: "EM_S390", 8: "EM_MIPS", 2: "EM_SPARC", 43: "EM_SPARCV9",
              258: "EM_LOONGARCH", 50: "EM_IA_64", 0: "EM_NONE"}

# sh_type values (gABI "Section Header" Table 4-9, GNU and Sun extensions, the x86-64 psABI's
# SHT_X86_64_UNWIND) as pyelftools names them (elftools.elf.enums.ENUM_SH_TYPE_AMD64, the last
# name of a value that has several), as ``sec["sh_type"]`` gives them.
SH_TYPE_NAMES = {
    0: "SHT_NULL", 1: "SHT_PROGBITS", 2: "SHT_SYMTAB", 3: "SHT_STRTAB", 4: "SHT_RELA", 5: "SHT_HASH",
    6: "SHT_DYNAMIC", 7: "SHT_NOTE", 8: "SHT_NOBITS", 9: "SHT_REL", 10: "SHT_SHLIB", 11: "SHT_DYNSYM",
    14: "SHT_INIT_ARRAY", 15: "SHT_FINI_ARRAY", 16: "SHT_PREINIT_ARRAY", 17: "SHT_GROUP", 18: "SHT_SYMTAB_SHNDX",
    19: "SHT_RELR", 20: "SHT_NUM", 0x60000000: "SHT_LOOS", 0x6FFFFFF5: "SHT_GNU_ATTRIBUTES",
    0x6FFFFFF6: "SHT_GNU_HASH", 0x6FFFFFF7: "SHT_GNU_LIBLIST", 0x6FFFFFFD: "SHT_GNU_verdef",
    0x6FFFFFFE: "SHT_GNU_verneed", 0x6FFFFFFF: "SHT_GNU_versym", 0x80000000: "SHT_LOUSER",
    0xFFFFFFFF: "SHT_HIUSER", 0x6FFFFFF3: "SHT_SUNW_LDYNSYM", 0x6FFFFFFC: "SHT_SUNW_syminfo",
    0x70000001: "SHT_AMD64_UNWIND",
}


@dataclass(frozen=True)
class Ehdr:
    """The header's fields, the counts and string-table index with their overflows resolved
    (what pyelftools' num_segments(), num_sections() and get_shstrndx() give)."""

    e_type: Union[str, int]
    e_machine: Union[str, int]
    e_phoff: int
    e_shoff: int
    e_phentsize: int
    e_phnum: int
    e_shentsize: int
    e_shnum: int
    e_shstrndx: int


def machine_name(e_machine: int) -> Union[str, int]:
    """pyelftools' name for an e_machine value (the value itself when it has none)."""
    name = _E_MACHINE.get(e_machine)
    if name is None:
        from elftools.elf.enums import ENUM_E_MACHINE  # a machine we do not analyse: rare

        name = next((k for k, v in ENUM_E_MACHINE.items() if v == e_machine and not k.startswith("_")), e_machine)
    return name


def read_ehdr(data) -> Optional[Ehdr]:
    """The header of the ELF64 little-endian file whose bytes are `data`; None for any
    other file (another class or byte order: pyelftools reads those)."""
    if len(data) < _EHDR.size or bytes(data[:4]) != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    (_, e_type, e_machine, _, _, e_phoff, e_shoff, _, _, e_phentsize, e_phnum, e_shentsize, e_shnum,
     e_shstrndx) = _EHDR.unpack_from(data, 0)
    if e_shoff and (e_phnum == PN_XNUM or e_shnum == 0 or e_shstrndx == SHN_XINDEX):
        sh_size, sh_link, sh_info = _SHDR0.unpack_from(data, e_shoff) if e_shoff + 48 <= len(data) else (0, 0, 0)
        e_phnum = sh_info if e_phnum == PN_XNUM else e_phnum
        e_shnum = sh_size if e_shnum == 0 else e_shnum
        e_shstrndx = sh_link if e_shstrndx == SHN_XINDEX else e_shstrndx
    if not e_shoff:  # no section header table (pyelftools' num_sections() is then 0)
        e_shnum = 0
    return Ehdr(_E_TYPE.get(e_type, e_type), machine_name(e_machine), e_phoff, e_shoff, e_phentsize, e_phnum,
                e_shentsize, e_shnum, e_shstrndx)


def ehdr_of(elffile) -> Ehdr:
    """The same fields from a pyelftools ELFFile (of any class and byte order)."""
    return Ehdr(elffile["e_type"], elffile["e_machine"], elffile["e_phoff"], elffile["e_shoff"],
                elffile["e_phentsize"], elffile.num_segments(), elffile["e_shentsize"], elffile.num_sections(),
                elffile.get_shstrndx())
