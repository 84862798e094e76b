"""
Core editor
===========

Rewrite the file names a real kernel core records in its NT_FILE note, for tests that hand
the tool a hostile core: everything else (registers, memory, build-ids) stays as the kernel
wrote it.

Like ``tests/corewriter.py`` this module spells out the layouts itself (ELF gABI, the
kernel's ``fs/binfmt_elf.c``) and never imports ``coredump.elf``.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Iterator, Tuple

from tests.corewriter import NT_FILE, PT_NOTE

__all__ = ("rename_mapped_file",)


def _notes(data: bytes, offset: int, size: int) -> Iterator[Tuple[int, int, int]]:
    """(n_type, desc offset, n_descsz) of each note in a PT_NOTE segment: Elf64_Nhdr, then
    name and descriptor each padded to 4 bytes (gABI "Note Section")."""
    pos, end = offset, offset + size
    while pos + 12 <= end:
        namesz, descsz, n_type = struct.unpack_from("<III", data, pos)
        desc = pos + 12 + (namesz + 3) // 4 * 4
        yield n_type, desc, descsz
        pos = desc + (descsz + 3) // 4 * 4


def rename_mapped_file(core: Path, old: str, new: bytes) -> int:
    """Rename every NT_FILE entry named `old` to `new` in place; returns how many.

    `new` may not be longer than `old`: the names area keeps its size, padded with NULs at
    its end (fill_files_note() writes `count` NUL-terminated names; a reader takes the
    first `count`), so no offset in the core moves."""
    data = bytearray(core.read_bytes())
    e_phoff, = struct.unpack_from("<Q", data, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    renamed = 0
    for i in range(e_phnum):
        p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from("<IIQQQQ", data, e_phoff + i * e_phentsize)
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
