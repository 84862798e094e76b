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


def _load(e_machine: str) -> Optional[Arch]:
    # A core is of one machine: only that machine's module is imported.
    if e_machine == "EM_X86_64":
        from coredump.arch.x86_64 import X86_64

        return X86_64
    if e_machine == "EM_AARCH64":
        from coredump.arch.aarch64 import AARCH64

        return AARCH64
    return None


ARCHES: Dict[str, Arch] = {}


def get_arch(e_machine: str) -> Optional[Arch]:
    """The record for pyelftools' ``e_machine`` string (``'EM_X86_64'``), or None."""
    arch = ARCHES.get(e_machine)
    if arch is None:
        arch = _load(e_machine)
        if arch is not None:
            ARCHES[e_machine] = arch
    return arch
