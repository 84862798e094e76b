"""
aarch64
=======

Registers of the AArch64 procedure call standard as the Linux kernel dumps them.
"""

from coredump.arch.record import Arch

__all__ = ("AARCH64",)

AARCH64 = Arch(
    name="aarch64",
    e_machine="EM_AARCH64",
    pointer_size=8,
    # struct user_pt_regs (arch/arm64/include/uapi/asm/ptrace.h): x0..x30, sp, pc, pstate.
    gregs=tuple(f"x{i}" for i in range(31)) + ("sp", "pc", "pstate"),
    # DWARF for the Arm 64-bit Architecture (AADWARF64) §4.1: x0-x30 are 0-30, sp is 31.
    dwarf_regs={**{i: f"x{i}" for i in range(31)}, 31: "sp"},
    pc="pc",
    sp="sp",
    fp="x29",
    lr="x30",
    # GCC's CIEs name x30 (the link register) as the return address column.
    return_address_column=30,
    # AAPCS64 §6.1.1: x19-x28 are callee-saved, x29 is the frame pointer, x30 the link register.
    callee_saved=frozenset({f"x{i}" for i in range(19, 31)} | {"sp"}),
)
