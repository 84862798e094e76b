"""
Target
======

The crashed process as the analysis sees it (drgn's ``Program``): the core, its address
space with mapped files behind it, and its modules with their files found on disk.
"""

from __future__ import annotations

import bisect
import os
from functools import cached_property

from coredump.dwarf.limits import DwarfBudget
from coredump.dwarf.supplementary import Supplementary, find_supplementary
from coredump.elf.core import Core
from coredump.elf.image import PT_DYNAMIC, ElfImage, open_image
from coredump.elf.linkmap import locate_image, read_link_map
from coredump.elf.memory import PF_W, AddressSpace
from coredump.elf.modules import VDSO_NAME, CoreModule, find_modules
from coredump.errors import MemoryFault
from coredump.model import Module
from coredump.record import replace
from coredump.symbols.finder import FileFinder
from coredump.symbols.symtab import SymbolTable

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, List, Optional

__all__ = ("LoadedModule", "Target")


class LoadedModule:
    """A module with its file on disk (``image``), its debug file and its load bias
    (runtime address = image address + bias)."""

    def __init__(self, core_module: CoreModule, image: Optional[ElfImage],
                 debug_image: Optional[ElfImage] = None):
        self.core_module = core_module
        # The dwz file the DWARF image names (coredump.dwarf.supplementary), once looked for.
        self.supplementary: Optional[Supplementary] = None
        self.path = core_module.path
        self.start = core_module.start
        self.end = core_module.end
        self.build_id = core_module.build_id
        self.image = image
        self.debug_image = debug_image
        self.dwarf_budget: Optional[DwarfBudget] = None  # the Target's: one per analysis
        self.bias = 0
        if image is not None:
            base = core_module.base if core_module.base is not None else core_module.start
            self.bias = base - image.first_load_vaddr
        if image is None:
            self.status = "missing"
        elif self.build_id and image.build_id and image.build_id != self.build_id:
            self.status = "mismatch"
        else:
            self.status = "ok"

    @property
    def trusted(self) -> bool:
        """Names and CFI come from the file only when it is the file the process ran."""
        return self.image is not None and self.status == "ok"

    def contains(self, address: int) -> bool:
        return self.start <= address < self.end

    def function_start(self, pc: int) -> Optional[int]:
        """Where the function holding runtime address `pc` starts, by its ELF symbol, or None."""
        hit = self.symtab.lookup(pc - self.bias) if self.symtab is not None else None
        return pc - hit[1] if hit is not None else None

    @cached_property
    def symtab(self) -> Optional[SymbolTable]:
        if not self.trusted:
            return None
        table = SymbolTable(self.image)
        if table.source != ".symtab" and self.debug_image is not None:
            # A stripped file keeps .dynsym only; its separate debug file keeps the whole
            # .symtab, local functions included (objcopy --only-keep-debug): gdb reads the
            # minimal symbols of both, so a pc outside the DWARF still gets the local's name.
            debug = SymbolTable(self.debug_image)
            if debug.source == ".symtab" or not len(table):
                table = debug
        return table if len(table) else None

    @property
    def dwarf_image(self) -> Optional[ElfImage]:
        """The file whose DWARF names this module's frames: the separate debug file, else the file."""
        return next((img for img in (self.debug_image, self.image) if img is not None and img.has_debug_info), None)

    @cached_property
    def dwarf(self):
        """The DWARF index of the image or its separate debug file, or None (also when the
        supplementary file it needs is missing: gdb then reads none of its DWARF either)."""
        img = self.dwarf_image
        if not self.trusted or img is None:
            return None
        from coredump.dwarf.index import DwarfIndex

        sup = self.supplementary
        if sup is not None and sup.image is None:
            return None
        try:
            return DwarfIndex(img, self.dwarf_budget, sup.image if sup is not None else None)
        except Exception:
            return None

    def to_model(self) -> Module:
        return Module(
            path=self.path, start=self.start, end=self.end, build_id=self.build_id,
            file=self.image.path if self.image is not None and self.path != VDSO_NAME else None,
            file_build_id=self.image.build_id if self.image is not None else None,
            debug_file=self.debug_image.path if self.debug_image is not None else None,
            supplementary_file=self.supplementary.image.path
            if self.supplementary is not None and self.supplementary.image is not None else None,
            load_bias=self.bias, status=self.status,
        )


def _span(image: ElfImage, bias: int):
    """[start, end) of an image loaded at `bias`, page-aligned (ELF gABI: PT_LOAD p_align)."""
    segs = image.load_segments
    start = min(v for v, *_ in segs) & ~0xFFF
    end = (max(v + m for v, m, *_ in segs) + 0xFFF) & ~0xFFF
    return start + bias, end + bias


# Where Debian's cross toolchains (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross) keep the
# target's libraries: the root qemu-user is run with (`qemu-aarch64 -L /usr/aarch64-linux-gnu`).
# This machine's architecture is uname(2)'s machine, as platform.machine() gives it on POSIX
# (the platform module and its regular expressions cost ~4 ms of start-up).
CROSS_SYSROOTS = {"aarch64": "/usr/aarch64-linux-gnu", "x86_64": "/usr/x86_64-linux-gnu"}


def _with_cross_sysroot(finder: FileFinder, core: Core) -> FileFinder:
    """A core of another architecture than this machine's, analyzed without --sysroot,
    also looks for its files in the cross root, after their own paths (host files of the
    wrong architecture are refused for libraries found through the link map)."""
    arch = core.arch.name if core.arch else None
    root = CROSS_SYSROOTS.get(arch or "")
    if finder.options.sysroot or not root or arch == os.uname().machine or not os.path.isdir(root):
        return finder
    return FileFinder(replace(finder.options, fallback_sysroots=(root,)))


class Target:
    def __init__(self, core: Core, finder: FileFinder):
        self.core = core
        self.arch = core.arch
        self.finder = _with_cross_sysroot(finder, core)
        self.warnings: List[str] = []
        # DWARF time of this analysis, for all modules, and the warnings of DWARF limits.
        self.dwarf_budget = DwarfBudget()
        self.modules: List[LoadedModule] = []
        found = find_modules(core)
        if not core.files:
            found = self._locate_without_nt_file(found)
        for cm in found:
            self.modules.append(self._load(cm))
            self.modules[-1].dwarf_budget = self.dwarf_budget
        self.modules.sort(key=lambda m: m.start)
        self._starts = [m.start for m in self.modules]
        self._by_path: Dict[str, LoadedModule] = {m.path: m for m in self.modules}
        self.memory: AddressSpace = core.memory(self._file_bytes)

    def _load(self, cm: CoreModule) -> LoadedModule:
        if cm.path == VDSO_NAME:
            try:
                data = self.core.memory().read(cm.start, cm.end - cm.start)
                return LoadedModule(cm, ElfImage(VDSO_NAME, data))
            except (MemoryFault, Exception):
                return LoadedModule(cm, None)
        if not self.core.files and not cm.is_executable and cm.build_id is None:
            image = self._find_library(cm.path)  # placed by the link map: see there
        else:
            image = self.finder.find_file(cm.path, cm.build_id, cm.is_executable)
        debug = None
        if image is not None and not image.has_debug_info:
            debug = self.finder.find_debug_file(image, cm.build_id)
        mod = LoadedModule(cm, image, debug)
        if mod.trusted and mod.dwarf_image is not None:
            mod.supplementary = find_supplementary(mod.dwarf_image, self.finder)
            if mod.supplementary is not None and mod.supplementary.problem:
                self.warnings.append(mod.supplementary.problem)
        if mod.status == "mismatch":
            self.warnings.append(
                f"{cm.path}: build-id mismatch (core {cm.build_id}, file {image.path} has "
                f"{image.build_id}); its frames are not named"
            )
        elif mod.status == "missing" and cm.is_executable and not self.finder.options.exe:
            self.warnings.append(f"executable {cm.path} not found: frames in it show module+offset only; "
                                 "pass --exe")
        elif mod.status == "missing":
            self.warnings.append(f"{cm.path}: file not found; frames in it show module+offset only")
        return mod

    def _locate_without_nt_file(self, found: List[CoreModule]) -> List[CoreModule]:
        """Without NT_FILE and without ELF headers in memory (qemu-user cores), place the
        --exe file by its segment layout, then its libraries from the link map."""
        exe_path = self.finder.options.exe or self._execfn()
        if not exe_path or any(m.is_executable for m in found):
            return found
        image = open_image(exe_path)
        if image is None:
            return found
        memory = self.core.memory()
        bias = locate_image(memory, [(v, m, f) for v, m, _o, _fs, f in image.load_segments],
                            2 if image.e_type == "ET_EXEC" else 3)
        if bias is None:
            self.warnings.append(f"{exe_path}: no mapping of the core matches its segments")
            return found
        result = [CoreModule(exe_path, *_span(image, bias), image.first_load_vaddr + bias, None, True)]
        dynamic = next((ph[3] for ph in image.program_headers if ph[0] == PT_DYNAMIC), None)
        interp = image.section_bytes(".interp")
        interp_name = bytes(interp).rstrip(b"\0").decode("utf-8", "surrogateescape") if interp else ""
        for l_addr, name in (read_link_map(memory, dynamic + bias) if dynamic is not None else {}).items():
            if l_addr == bias:
                continue  # the first link_map entry is the executable itself
            lib = self._find_library(name or interp_name) if (name or interp_name) else None
            if lib is not None:
                result.append(CoreModule(name or interp_name, *_span(lib, l_addr), lib.first_load_vaddr + l_addr))
        known = {m.start for m in result}
        return sorted(result + [m for m in found if m.start not in known], key=lambda m: m.start)

    def _execfn(self) -> Optional[str]:
        """The program's path as it was executed: the AT_EXECFN string on the initial stack
        (fs/binfmt_elf.c create_elf_tables; qemu-user's loader writes it the same way)."""
        from coredump.elf.core import AT_EXECFN

        at = self.core.get_auxv(AT_EXECFN)
        try:
            name = self.core.memory().read_cstring(at, 4096).decode("utf-8", "surrogateescape") if at else None
        except MemoryFault:
            return None
        return name if name and os.path.isfile(name) else None

    def _find_library(self, name: str) -> Optional[ElfImage]:
        """A library named by the link map; without a build-id to check, a file of another
        machine is refused. qemu-user opens a path under its -L prefix and else the path
        itself (linux-user/syscall.c's path()), so the host path is tried after the sysroot."""
        lib = self.finder.find_file(name, None)
        if (lib is None or lib.e_machine != self.core.e_machine) and name.startswith("/"):
            lib = open_image(name)
        if lib is not None and lib.e_machine != self.core.e_machine:
            return None
        return lib

    def _file_bytes(self, filename: str):
        mod = self._by_path.get(filename)
        if mod is None or not mod.trusted or mod.path == VDSO_NAME:
            return None
        return mod.image.data

    @property
    def executable(self) -> Optional[LoadedModule]:
        for m in self.modules:
            if m.core_module.is_executable:
                return m
        return None

    def read_code(self, address: int, size: int) -> bytes:
        """Bytes of a module's file-backed contents (code, read-only data): from the core,
        else from the module's own file (``read_file_backed``); ``MemoryFault`` if neither."""
        try:
            return self.memory.read(address, size)
        except MemoryFault:
            data = self.read_file_backed(address, size, writable=True)
            if data is None or len(data) < size:
                raise
            return data

    def read_file_backed(self, address: int, size: int, writable: bool = False) -> Optional[bytes]:
        """Up to `size` bytes at `address` from the file of the trusted module mapping it,
        through the PT_LOAD segment (p_filesz bytes at p_offset) holding `address`, cut at
        that segment's end; None where no file holds them. For what the core lacks: qemu-user
        cores dump no text and have no NT_FILE for ``memory`` to find the file by. A writable
        segment's file bytes may differ from the process's, so they are read only if asked."""
        mod = self.find_module(address)
        if mod is None or not mod.trusted or mod.path == VDSO_NAME:
            return None
        rel = address - mod.bias
        for p_vaddr, _memsz, p_offset, p_filesz, p_flags in mod.image.load_segments:
            if (p_vaddr <= rel < p_vaddr + p_filesz and p_offset + p_filesz <= len(mod.image.data)
                    and (writable or not p_flags & PF_W)):
                start = p_offset + rel - p_vaddr
                return bytes(mod.image.data[start:min(start + size, p_offset + p_filesz)])
        return None

    def find_module(self, address: int) -> Optional[LoadedModule]:
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and self.modules[i].contains(address):
            return self.modules[i]
        return None

    def is_jit_code(self, address: int) -> bool:
        """Executable memory that no file backs, other than the vDSO: JIT-compiled code,
        also where it lies in a hole of a module's span (between its PT_LOADs)."""
        module = self.find_module(address)
        return (module is None or module.path != VDSO_NAME) and self.memory.is_anonymous_code(address)
