"""
Modules from memory
===================

Find ELF images in a core that has no NT_FILE note (qemu-user cores, old kernels): scan the
dumped segments for ELF headers, and name them from the dynamic linker's ``r_debug`` link
map, the way elfutils' ``dwfl_core_file_report`` does.
"""

from __future__ import annotations

import struct

from coredump.elf.memory import AddressSpace
from coredump.errors import MemoryFault
from coredump.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, List, Optional, Tuple

__all__ = ("ImageInMemory", "parse_image", "scan_images", "find_r_debug", "read_link_map", "locate_image")

# ELF gABI: e_type, p_type and d_tag values.
ET_EXEC, ET_DYN = 2, 3
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_DEBUG = 0, 21
PAGE = 4096


@dataclass(frozen=True)
class ImageInMemory:
    base: int
    end: int
    e_type: int
    bias: int
    dynamic: Optional[int]
    has_interp: bool


def parse_image(memory: AddressSpace, base: int) -> Optional[ImageInMemory]:
    """Elf64_Ehdr: e_type at 0x10, e_phoff at 0x20, e_phentsize/e_phnum at 0x36/0x38;
    Elf64_Phdr: p_type at 0, p_vaddr at 0x10, p_memsz at 0x28."""
    ehdr = memory.read(base, 64)
    if ehdr[:4] != b"\x7fELF" or ehdr[4] != 2:
        return None
    e_type = struct.unpack_from("<H", ehdr, 0x10)[0]
    (e_phoff,) = struct.unpack_from("<Q", ehdr, 0x20)
    e_phentsize, e_phnum = struct.unpack_from("<HH", ehdr, 0x36)
    if e_type not in (ET_EXEC, ET_DYN) or e_phentsize != 56 or not 0 < e_phnum < 256:
        return None
    phdrs = memory.read(base + e_phoff, 56 * e_phnum)
    loads: List[Tuple[int, int]] = []
    dynamic = None
    interp = False
    for i in range(e_phnum):
        p_type, _flags, _off, p_vaddr, _paddr, _filesz, p_memsz = struct.unpack_from("<IIQQQQQ", phdrs, 56 * i)
        if p_type == PT_LOAD:
            loads.append((p_vaddr, p_memsz))
        elif p_type == PT_DYNAMIC:
            dynamic = p_vaddr
        elif p_type == PT_INTERP:
            interp = True
    if not loads:
        return None
    first = min(v for v, _ in loads) & ~(PAGE - 1)
    bias = base - first
    end = (max(v + m for v, m in loads) + bias + PAGE - 1) & ~(PAGE - 1)
    return ImageInMemory(base, end, e_type, bias, None if dynamic is None else dynamic + bias, interp)


def scan_images(memory: AddressSpace) -> List[ImageInMemory]:
    """Every ELF image whose header page the core holds, lowest address first."""
    found: List[ImageInMemory] = []
    covered_until = 0
    for seg in memory.segments:
        if seg.p_vaddr < covered_until:
            continue
        try:
            image = parse_image(memory, seg.p_vaddr)
        except MemoryFault:
            continue
        if image is not None:
            found.append(image)
            covered_until = image.end
    return found


def find_r_debug(memory: AddressSpace, dynamic: int, max_entries: int = 1024) -> Optional[int]:
    """The address of the dynamic linker's ``struct r_debug``: DT_DEBUG's d_val in the
    executable's _DYNAMIC array (Elf64_Dyn {Elf64_Sxword d_tag; Elf64_Xword d_val}), which
    ld.so fills in at start-up (gABI "Dynamic Section"). Raises MemoryFault."""
    for i in range(max_entries):
        d_tag, d_val = struct.unpack("<qQ", memory.read(dynamic + 16 * i, 16))
        if d_tag == DT_NULL:
            break
        if d_tag == DT_DEBUG:
            return d_val or None
    return None


def read_link_map(memory: AddressSpace, dynamic: int, limit: int = 4096) -> Dict[int, str]:
    """l_addr -> l_name from the executable's DT_DEBUG r_debug (glibc <link.h>: struct r_debug
    {int r_version; struct link_map *r_map at +8}; struct link_map {l_addr at 0, l_name at 8,
    l_ld at 16, l_next at 24})."""
    out: Dict[int, str] = {}
    try:
        r_debug = find_r_debug(memory, dynamic)
        if not r_debug:
            return out
        lm = memory.read_word(r_debug + 8)
        seen = set()
        while lm and lm not in seen and len(out) < limit:
            seen.add(lm)
            l_addr, l_name, _l_ld, l_next = struct.unpack("<QQQQ", memory.read(lm, 32))
            try:
                name = memory.read_cstring(l_name, 4096).decode("utf-8", "surrogateescape") if l_name else ""
            except MemoryFault:
                # ld.so's own l_name points into the executable's .interp, in a text page
                # that may not be dumped: keep the entry nameless for the caller to name.
                name = ""
            if l_addr:
                out[l_addr] = name
            lm = l_next
    except MemoryFault:
        pass
    return out


def locate_image(memory: AddressSpace, loads, e_type: int, limit: int = 4096) -> Optional[int]:
    """The load bias of an image whose header page the core lacks (qemu-user dumps no text):
    the bias at which each of the image's PT_LOADs (p_vaddr, p_memsz, p_flags) starts a
    mapping of the core with the same permissions. ET_EXEC images load at bias 0."""
    if not loads:
        return None
    if e_type == ET_EXEC:
        return 0
    first_vaddr, _, first_flags = min(loads)
    candidates = [s.p_vaddr - (first_vaddr & ~(PAGE - 1)) for s in memory.segments
                  if s.p_flags & 7 == first_flags & 7][:limit]
    # Later segments must be mapped; their permissions may differ (PT_GNU_RELRO remaps part
    # of the data segment read-only after relocation).
    for bias in candidates:
        if all(memory.find_segment(v + bias) is not None for v, _m, _f in loads):
            return bias
    return None
