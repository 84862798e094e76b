"""The record of one architecture (drgn's ``struct drgn_architecture_info``)."""

from __future__ import annotations

from coredump.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, FrozenSet, Optional, Tuple

__all__ = ("Arch",)


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
