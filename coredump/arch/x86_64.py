"""
x86_64
======

Registers of the System V AMD64 psABI as the Linux kernel dumps them.
"""

from coredump.arch.record import Arch

__all__ = ("X86_64",)

X86_64 = Arch(
    name="x86_64",
    e_machine="EM_X86_64",
    pointer_size=8,
    # struct user_regs_struct (arch/x86/include/asm/user_64.h), the layout of elf_gregset_t.
    gregs=(
        "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8",
        "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags",
        "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs",
    ),
    # psABI §3.6.2, Figure 3.36 "DWARF Register Number Mapping"; 16 is the return address column.
    dwarf_regs={
        0: "rax", 1: "rdx", 2: "rcx", 3: "rbx", 4: "rsi", 5: "rdi", 6: "rbp", 7: "rsp",
        8: "r8", 9: "r9", 10: "r10", 11: "r11", 12: "r12", 13: "r13", 14: "r14", 15: "r15",
        16: "rip",
    },
    pc="rip",
    sp="rsp",
    fp="rbp",
    return_address_column=16,
    # psABI §3.2.1, Figure 3.4: callee-saved registers.
    callee_saved=frozenset({"rbx", "rbp", "r12", "r13", "r14", "r15"}),
)
