"""
Core editor
===========

Rewrite the file names a real kernel core records in its NT_FILE note, or bytes of the
process memory its PT_LOAD segments saved, for tests that hand the tool a hostile core:
everything else (registers, the rest of memory, build-ids) stays as the kernel wrote it.

Like ``tests/corewriter.py`` this module spells out the layouts itself (ELF gABI, the
kernel's ``fs/binfmt_elf.c``) and never imports ``coredump.elf``.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Iterator, Tuple

from tests.corewriter import NT_FILE, PT_LOAD, PT_NOTE

__all__ = ("rename_mapped_file", "find_in_memory", "write_memory")


def _notes(data: bytes, offset: int, size: int) -> Iterator[Tuple[int, int, int]]:
    """(n_type, desc offset, n_descsz) of each note in a PT_NOTE segment: Elf64_Nhdr, then
    name and descriptor each padded to 4 bytes (gABI "Note Section")."""
    pos, end = offset, offset + size
    while pos + 12 <= end:
        namesz, descsz, n_type = struct.unpack_from("<III", data, pos)
        desc = pos + 12 + (namesz + 3) // 4 * 4
        yield n_type, desc, descsz
        pos = desc + (descsz + 3) // 4 * 4


def _phdrs(data) -> Iterator[Tuple[int, int, int, int]]:
    """(p_type, p_offset, p_vaddr, p_filesz) of each Elf64_Phdr (gABI "Program Header": e_phoff
    at 32, e_phentsize and e_phnum at 54; p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz)."""
    e_phoff, = struct.unpack_from("<Q", data, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    for i in range(e_phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIQQQQ", data, e_phoff + i * e_phentsize)
        yield p_type, p_offset, p_vaddr, p_filesz


def rename_mapped_file(core: Path, old: str, new: bytes) -> int:
    """Rename every NT_FILE entry named `old` to `new` in place; returns how many.

    `new` may not be longer than `old`: the names area keeps its size, padded with NULs at
    its end (fill_files_note() writes `count` NUL-terminated names; a reader takes the
    first `count`), so no offset in the core moves."""
    data = bytearray(core.read_bytes())
    renamed = 0
    for p_type, p_offset, _vaddr, p_filesz in _phdrs(data):
        if p_type != PT_NOTE:
            continue
        for n_type, desc, descsz in _notes(data, p_offset, p_filesz):
            if n_type != NT_FILE:
                continue
            count, = struct.unpack_from("<Q", data, desc)
            start, end = desc + 16 + 24 * count, desc + descsz
            names = bytes(data[start:end]).split(b"\0")[:count]
            renamed += names.count(old.encode())
            names = [new if n == old.encode() else n for n in names]
            packed = b"\0".join(names) + b"\0"
            if len(packed) > end - start:
                raise ValueError(f"{new!r} is longer than {old!r}: the NT_FILE note would grow")
            data[start:end] = packed.ljust(end - start, b"\0")
    core.write_bytes(bytes(data))
    return renamed


def _loads(data) -> Iterator[Tuple[int, int, int]]:
    """(p_vaddr, p_offset, p_filesz) of each PT_LOAD that saved memory."""
    for p_type, p_offset, p_vaddr, p_filesz in _phdrs(data):
        if p_type == PT_LOAD and p_filesz:
            yield p_vaddr, p_offset, p_filesz


def find_in_memory(core: Path, needle: bytes) -> list:
    """The addresses in the process where the saved memory holds `needle` (within one segment)."""
    data = core.read_bytes()
    found = []
    for vaddr, offset, filesz in _loads(data):
        at = data.find(needle, offset, offset + filesz)
        while at >= 0:
            found.append(vaddr + at - offset)
            at = data.find(needle, at + 1, offset + filesz)
    return found


def write_memory(core: Path, address: int, new: bytes) -> None:
    """Overwrite the saved memory at process address `address` with `new` (one segment's)."""
    data = bytearray(core.read_bytes())
    for vaddr, offset, filesz in _loads(data):
        if vaddr <= address and address + len(new) <= vaddr + filesz:
            data[offset + address - vaddr:offset + address - vaddr + len(new)] = new
            core.write_bytes(bytes(data))
            return
    raise ValueError(f"{address:#x}+{len(new)} is not in the core's saved memory")
