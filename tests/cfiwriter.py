"""
CFI writer
==========

Hand-assembled ``.eh_frame`` / ``.eh_frame_hdr`` / ``.debug_frame`` bytes for unwinder tests.
It packs its own layouts (DWARF 5 §6.4.1, LSB Core §10.6) and imports nothing from
``coredump.unwind``, so a layout bug there cannot cancel itself out here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

__all__ = ("uleb", "sleb", "EhFrameWriter", "debug_frame", "FakeImage")

# DW_EH_PE_pcrel | DW_EH_PE_sdata4, GCC's FDE encoding; datarel | sdata4 for the table.
PCREL_SDATA4 = 0x1B
DATAREL_SDATA4 = 0x3B


def uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def sleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        done = (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40)
        out.append(byte | (0 if done else 0x80))
        if done:
            return bytes(out)


def _entry(body: bytes) -> bytes:
    pad = (-len(body) - 4) % 8
    return struct.pack("<I", len(body) + pad) + body + b"\0" * pad


@dataclass
class EhFrameWriter:
    """An ``.eh_frame`` at `vaddr`; ``add_cie`` / ``add_fde`` return entry offsets."""

    vaddr: int
    data: bytearray = field(default_factory=bytearray)
    fdes: List[Tuple[int, int]] = field(default_factory=list)  # (pc_begin, offset)

    def add_cie(self, instructions: bytes, augmentation: str = "zR", code_align: int = 1,
                data_align: int = -8, ra: int = 16, fde_encoding: int = PCREL_SDATA4) -> int:
        aug_data = b""
        for ch in augmentation[1:]:
            if ch == "R":
                aug_data += bytes([fde_encoding])
            elif ch == "P":
                aug_data += bytes([0x00]) + struct.pack("<Q", 0x1234)  # absptr personality
            elif ch == "L":
                aug_data += bytes([PCREL_SDATA4])
        body = struct.pack("<I", 0) + bytes([1]) + augmentation.encode() + b"\0"
        body += uleb(code_align) + sleb(data_align) + bytes([ra])
        if augmentation.startswith("z"):
            body += uleb(len(aug_data)) + aug_data
        body += instructions
        offset = len(self.data)
        self.data += _entry(body)
        return offset

    def add_fde(self, cie: int, pc_begin: int, pc_range: int, instructions: bytes,
                lsda: bool = False) -> int:
        offset = len(self.data)
        cie_pointer = offset + 4 - cie
        # pc_begin is pcrel: relative to the address of the field itself.
        field_at = self.vaddr + offset + 8
        body = struct.pack("<Ii", cie_pointer, pc_begin - field_at) + struct.pack("<i", pc_range)
        aug = struct.pack("<i", 0) if lsda else b""
        body += uleb(len(aug)) + aug + instructions
        self.data += _entry(body)
        self.fdes.append((pc_begin, offset))
        return offset

    def eh_frame(self) -> bytes:
        return bytes(self.data) + b"\0\0\0\0"

    def eh_frame_hdr(self, hdr_vaddr: int) -> bytes:
        """LSB Core §10.6.2: version 1, eh_frame_ptr pcrel sdata4, fde_count udata4,
        table datarel sdata4 sorted by initial location."""
        out = bytearray([1, PCREL_SDATA4, 0x03, DATAREL_SDATA4])
        out += struct.pack("<i", self.vaddr - (hdr_vaddr + 4))
        out += struct.pack("<I", len(self.fdes))
        for pc, off in sorted(self.fdes):
            out += struct.pack("<ii", pc - hdr_vaddr, self.vaddr + off - hdr_vaddr)
        return bytes(out)


def debug_frame(cie_instructions: bytes, fdes: List[Tuple[int, int, bytes]], ra: int = 16,
                data_align: int = -8) -> bytes:
    """A ``.debug_frame`` (CIE id 0xffffffff, absolute 8-byte addresses, version 1)."""
    body = struct.pack("<I", 0xFFFFFFFF) + bytes([1]) + b"\0" + uleb(1) + sleb(data_align) + bytes([ra])
    out = bytearray(_entry(body + cie_instructions))
    for pc, size, instructions in fdes:
        out += _entry(struct.pack("<IQQ", 0, pc, size) + instructions)
    return bytes(out)


class FakeImage:
    """What ``ModuleTables`` reads of an ``ElfImage``: named sections at addresses (and no
    build-id: nothing of it goes to the parse cache)."""

    build_id = None

    def __init__(self, sections: Dict[str, Tuple[int, bytes]], path: str = "fake.so"):
        self.path = path
        self.data = bytearray()
        self._info: Dict[str, Tuple[int, int, int, str]] = {}
        for name, (addr, blob) in sections.items():
            self._info[name] = (addr, len(self.data), len(blob), "SHT_PROGBITS")
            self.data += blob
        self.data = bytes(self.data)
        self.load_segments: List[Tuple[int, int, int, int, int]] = []

    def get_section_info(self, name: str) -> Optional[Tuple[int, int, int, str]]:
        return self._info.get(name)

    def section_flags(self, name: str) -> int:
        return 0

    def section_bytes(self, name: str) -> Optional[memoryview]:
        info = self._info.get(name)
        if info is None:
            return None
        return memoryview(self.data)[info[1]:info[1] + info[2]]
