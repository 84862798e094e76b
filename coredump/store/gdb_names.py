"""
gdb module names
================

The names gdb looks a shared library up by, besides the NT_FILE path the kernel wrote (the
file's real path, ``libstdc++.so.6.0.30``): the dynamic linker's ``l_name`` (the path it
opened, ``/lib/x86_64-linux-gnu/libstdc++.so.6``), which gdb joins to the sysroot, and the
library's DT_SONAME, the basename it tries in solib-search-path (gdb solib.c solib_find_1).
Both come from hostile input (the core's memory, a bundled file): the caller flattens them.
"""

from __future__ import annotations

import struct
from typing import Dict, Optional, Sequence

from coredump.errors import MemoryFault

__all__ = ("link_map_names", "read_soname")

# ELF gABI "Dynamic Section": d_tag values.
DT_NULL, DT_SONAME = 0, 14
MAX_SONAME = 4096


def link_map_names(core, modules: Sequence) -> Dict[str, str]:
    """NT_FILE path -> l_name for each shared library of `core` whose link-map entry names it
    otherwise; matched by load bias (glibc <link.h>: l_addr is "difference between the
    address in the ELF file and the address in memory")."""
    from coredump.elf.linkmap import parse_image, read_link_map

    memory = core.memory()
    exe = next((m for m in modules if m.is_executable and m.base is not None), None)
    try:
        image = parse_image(memory, exe.base) if exe is not None else None
    except MemoryFault:
        return {}
    if image is None or image.dynamic is None:
        return {}
    by_bias = read_link_map(memory, image.dynamic)
    out: Dict[str, str] = {}
    for m in modules:
        if m.is_executable or m.base is None:
            continue
        try:
            lib = parse_image(memory, m.base)
        except MemoryFault:
            continue
        name = by_bias.get(lib.bias) if lib is not None else None
        if name and name != m.path:
            out[m.path] = name
    return out


def read_soname(path: str) -> Optional[str]:
    """DT_SONAME of the ELF file at `path`: a d_val offset into the string table that the
    .dynamic section's sh_link names (Elf64_Dyn {Elf64_Sxword d_tag; Elf64_Xword d_val})."""
    from coredump.symbols.image import open_image

    image = open_image(path)
    dynamic = image.section_bytes(".dynamic") if image is not None else None
    strtab = image.section_bytes(image.section_link(".dynamic") or ".dynstr") if dynamic is not None else None
    if strtab is None:
        return None
    for at in range(0, len(dynamic) - 15, 16):
        d_tag, d_val = struct.unpack_from("<qQ", dynamic, at)
        if d_tag == DT_NULL:
            break
        if d_tag == DT_SONAME and d_val < len(strtab):
            raw = bytes(strtab[d_val:d_val + MAX_SONAME]).split(b"\0", 1)[0]
            return raw.decode("utf-8", "surrogateescape") or None
    return None
