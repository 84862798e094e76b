"""
Architectures
=============

One frozen record per architecture, looked up by ELF ``e_machine`` (drgn's ``arch_info``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, FrozenSet, Optional, Tuple

__all__ = ("Arch", "get_arch", "ARCHES")


@dataclass(frozen=True)
class Arch:
    name: str
    e_machine: str
    pointer_size: int
    # Register names in the order of the kernel's elf_gregset_t (NT_PRSTATUS pr_reg).
    gregs: Tuple[str, ...]
    # DWARF register number -> register name (the psABI's DWARF register mapping).
    dwarf_regs: Dict[int, str]
    pc: str
    sp: str
    fp: str
    # DWARF column that holds the return address in CFI (the CIE's return_address_register).
    return_address_column: int
    callee_saved: FrozenSet[str]
    lr: Optional[str] = None
    # Offset of pr_reg inside struct elf_prstatus (same on every 64-bit Linux arch).
    prstatus_reg_offset: int = 112


def _load() -> Dict[str, Arch]:
    from coredump.arch.aarch64 import AARCH64
    from coredump.arch.x86_64 import X86_64

    return {a.e_machine: a for a in (X86_64, AARCH64)}


ARCHES: Dict[str, Arch] = {}


def get_arch(e_machine: str) -> Optional[Arch]:
    """The record for pyelftools' ``e_machine`` string (``'EM_X86_64'``), or None."""
    if not ARCHES:
        ARCHES.update(_load())
    return ARCHES.get(e_machine)
