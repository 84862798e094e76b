"""
Architectures
=============

One frozen record per architecture, looked up by ELF ``e_machine`` (drgn's ``arch_info``).
"""

from __future__ import annotations

from coredump.arch.record import Arch

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, Optional

__all__ = ("Arch", "get_arch", "ARCHES")


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
