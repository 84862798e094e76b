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

from coredump.errors import MemoryFault

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, Optional, Sequence

__all__ = ("link_map_names", "read_soname")

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
    """DT_SONAME of the ELF file at `path` (gABI "Dynamic Section": a d_val offset into the
    string table that .dynamic's sh_link names), or None; a file pyelftools cannot read
    (it is a bundled file: hostile) has none."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as f:
            dynamic = ELFFile(f).get_section_by_name(".dynamic")
            if not isinstance(dynamic, DynamicSection):
                return None
            tag = next(dynamic.iter_tags("DT_SONAME"), None)
            name = tag.soname if tag is not None else None
    except (OSError, ELFError, ValueError, struct.error, UnicodeDecodeError):
        return None
    if not isinstance(name, str) or not name:
        return None
    return name[:MAX_SONAME]
