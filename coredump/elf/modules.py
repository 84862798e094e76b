"""
Modules
=======

The ELF files mapped into the crashed process, from NT_FILE (and the vDSO from
AT_SYSINFO_EHDR), with the GNU build-id read from the core's copy of each ELF header.
"""

from __future__ import annotations

import struct

from coredump.elf.core import AT_SYSINFO_EHDR, Core
from coredump.elf.image import read_build_id_from_notes
from coredump.elf.linkmap import parse_image, read_link_map, scan_images
from coredump.elf.memory import AddressSpace
from coredump.errors import MemoryFault
from coredump.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, List, Optional

__all__ = ("CoreModule", "find_modules", "read_build_id_from_memory", "VDSO_NAME")

VDSO_NAME = "[vdso]"
PT_LOAD = 1
PT_NOTE = 4
PF_X = 0x1  # ELF gABI p_flags: executable segment


@dataclass
class CoreModule:
    """A file mapped in the process: [start, end) spans all its mappings; ``base`` is where
    file offset 0 is mapped (None when that page was not mapped or not seen)."""

    path: str
    start: int
    end: int
    base: Optional[int]
    build_id: Optional[str] = None
    is_executable: bool = False


def read_build_id_from_memory(memory: AddressSpace, base: int) -> Optional[str]:
    """Read the build-id from an ELF image mapped at `base`: Elf64_Ehdr (e_phoff at 0x20,
    e_phentsize at 0x36, e_phnum at 0x38), then each Elf64_Phdr's PT_NOTE (p_vaddr at 0x10,
    p_filesz at 0x20). The kernel dumps a file mapping's first page when it holds an ELF
    header (coredump_filter bit 4, MMF_DUMP_ELF_HEADERS)."""
    try:
        ehdr = memory.read(base, 64)
        if ehdr[:4] != b"\x7fELF":
            return None
        e_type = struct.unpack_from("<H", ehdr, 16)[0]
        (e_phoff,) = struct.unpack_from("<Q", ehdr, 0x20)
        e_phentsize, e_phnum = struct.unpack_from("<HH", ehdr, 0x36)
        if e_phentsize != 56 or e_phnum > 512:
            return None
        table = memory.read(base + e_phoff, 56 * e_phnum)
        phdrs = [struct.unpack_from("<IIQQQQ", table, 56 * i) for i in range(e_phnum)]
        # The load bias is where the segment mapped at file offset 0 landed less its p_vaddr
        # (gABI "Program Loading"): 0 for ET_EXEC, the base for most ET_DYN, and neither for
        # an old x86_64 vDSO, an ET_DYN linked at 0xffffffffff700000.
        first = next((h for h in phdrs if h[0] == PT_LOAD and h[2] == 0), None)
        bias = base - first[3] if first is not None else (0 if e_type == 2 else base)
        for p_type, _, _, p_vaddr, _, p_filesz in phdrs:
            if p_type == PT_NOTE and 0 < p_filesz < 1 << 16:
                try:
                    found = read_build_id_from_notes(memory.read(bias + p_vaddr, p_filesz))
                except MemoryFault:
                    continue
                if found:
                    return found
    except MemoryFault:
        return None
    return None


def find_modules(core: Core) -> List[CoreModule]:
    """One CoreModule per loaded ELF image, in address order, the executable marked.

    A file can be mapped more than once (a Rust program with RUST_BACKTRACE=1 maps its own
    executable and libc again, read-only, to print a backtrace): each mapping at file offset 0
    starts a new instance, later mappings of the file join the instance below them, and of
    several instances the one mapped executable is the loaded image."""
    if not core.files:
        return find_modules_in_memory(core)
    memory = core.memory()
    instances: Dict[str, List[list]] = {}
    ends: Dict[int, int] = {}  # id(group) -> end of the image its ELF header describes
    for m in sorted(core.files, key=lambda m: m.vm_start):
        groups = instances.setdefault(m.filename, [])
        # A mapping at offset 0 starts another instance only past the end of the image the
        # current instance's program headers describe: a small file's data PT_LOAD also
        # maps file offset 0 (its p_offset rounds down to the page).
        if not groups or (m.offset == 0 and m.vm_start >= ends.get(id(groups[-1]), 1 << 64)):
            groups.append([m])
            ends[id(groups[-1])] = _image_end(memory, m.vm_start) if m.offset == 0 else 1 << 64
        else:
            groups[-1].append(m)
    exe_mapping = core.find_executable_mapping()
    modules = []
    for name, groups in instances.items():
        group = next((g for g in groups if _is_executable(memory, g)), groups[0])
        mod = _instance(memory, name, group)
        if mod is not None:
            mod.is_executable = exe_mapping is not None and exe_mapping.filename == name
            modules.append(mod)
    vdso = core.get_auxv(AT_SYSINFO_EHDR)
    if vdso:
        seg = memory.find_segment(vdso)
        if seg is not None:
            modules.append(CoreModule(VDSO_NAME, vdso, seg.end, vdso, read_build_id_from_memory(memory, vdso)))
    modules.sort(key=lambda m: m.start)
    return modules


def _image_end(memory: AddressSpace, base: int) -> int:
    """Where the ELF image mapped at `base` ends, from its program headers in the core; no
    end (every later mapping joins it) when the header page was not dumped."""
    try:
        image = parse_image(memory, base)
    except MemoryFault:
        image = None
    return image.end if image is not None else 1 << 64


def _is_executable(memory: AddressSpace, mappings) -> bool:
    """The kernel writes a VMA's VM_EXEC as its PT_LOAD's PF_X (fs/binfmt_elf.c)."""
    for m in mappings:
        seg = memory.find_segment(m.vm_start)
        if seg is not None and seg.p_flags & PF_X:
            return True
    return False


def _instance(memory: AddressSpace, name: str, mappings) -> Optional[CoreModule]:
    if mappings[0].offset != 0:
        return None  # not an ELF image mapped from its start (data files, fonts, caches)
    base = mappings[0].vm_start
    mod = CoreModule(name, base, max(m.vm_end for m in mappings), base)
    mod.build_id = read_build_id_from_memory(memory, base)
    if mod.build_id is None and not _looks_like_elf(memory, base, mappings):
        return None
    return mod


def find_modules_in_memory(core: Core) -> List[CoreModule]:
    """Modules of a core without NT_FILE (qemu-user writes none): ELF headers found in the
    dumped memory, named from the link map; the executable is the image with PT_INTERP (or
    the ET_EXEC one) and takes the command's name until --exe names the file."""
    memory = core.memory()
    images = scan_images(memory)
    exe = next((i for i in images if i.has_interp), None) or next((i for i in images if i.e_type == 2), None)
    names = read_link_map(memory, exe.dynamic) if exe is not None and exe.dynamic else {}
    vdso = core.get_auxv(AT_SYSINFO_EHDR)
    argv0 = core.prpsinfo.pr_psargs.split(" ", 1)[0] if core.prpsinfo else ""
    modules = []
    for image in images:
        if image is exe:
            name = argv0 or "[executable]"
        elif image.base == vdso:
            name = VDSO_NAME
        else:
            name = names.get(image.bias) or f"[module@{image.base:#x}]"
        modules.append(CoreModule(name, image.base, image.end, image.base,
                                  read_build_id_from_memory(memory, image.base), image is exe))
    if core.files or modules:
        core.warnings.append("core has no NT_FILE note: modules were found from ELF headers in memory")
    return modules


def _looks_like_elf(memory: AddressSpace, base: int, mappings=()) -> bool:
    try:
        return memory.read(base, 4) == b"\x7fELF"
    except MemoryFault:
        # The header page was not dumped (coredump_filter without bit 4): keep the file if
        # part of it is mapped executable, as ld.so maps a PT_LOAD with PF_X. Data files
        # (locale archives, gconv caches, fonts) are mapped read-only; the kernel writes a
        # VMA's VM_EXEC as the PT_LOAD's PF_X (fs/binfmt_elf.c).
        return _is_executable(memory, mappings) or not mappings
