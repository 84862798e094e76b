"""
Core writer
===========

Build small ELF cores (ET_CORE) from a description, for tests only, good or deliberately damaged.

Like drgn's ``tests/elfwriter.py`` and rust-minidump's ``minidump-synth``, this module spells out
every struct layout itself, from the kernel headers and the ELF gABI, and never imports
``coredump.elf``: a layout bug in the parser cannot cancel itself out here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = (
    "Note", "Load", "ThreadDesc", "SiginfoDesc", "FileEntry", "CoreDesc",
    "build_core", "write_core", "default_notes", "note_bytes", "prstatus_desc", "siginfo_desc", "prpsinfo_desc",
    "auxv_desc", "file_desc", "elf_image_header", "X86_64_GREGS", "layout",
    "EM_X86_64", "EM_AARCH64", "PF_R", "PF_W", "PF_X", "PAGE", "fp_stack", "simple_process",
    "CODE_BASE", "STACK_BASE", "EXE_NAME", "BUILD_ID",
)

# elf.h
ET_CORE = 4
EM_X86_64 = 62
EM_AARCH64 = 183
PT_LOAD, PT_NOTE = 1, 4
PF_X, PF_W, PF_R = 1, 2, 4
PN_XNUM = 0xFFFF
SHT_NULL = 0
NT_PRSTATUS, NT_PRPSINFO, NT_AUXV = 1, 3, 6
NT_SIGINFO = 0x53494749
NT_FILE = 0x46494C45
NT_GNU_BUILD_ID = 3
# include/uapi/linux/auxvec.h
AT_NULL, AT_PHDR, AT_PAGESZ, AT_ENTRY, AT_EXECFN, AT_SYSINFO_EHDR = 0, 3, 6, 9, 31, 33
PAGE = 4096

EHDR_SIZE, PHDR_SIZE, SHDR_SIZE = 64, 56, 64

# struct user_regs_struct, arch/x86/include/asm/user_64.h (elf_gregset_t on x86_64).
X86_64_GREGS = (
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8",
    "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags",
    "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs",
)
# struct user_pt_regs, arch/arm64/include/uapi/asm/ptrace.h.
AARCH64_GREGS = tuple(f"x{i}" for i in range(31)) + ("sp", "pc", "pstate")


@dataclass
class Note:
    """One note. ``namesz``/``descsz`` override the header's sizes (to lie about them);
    ``align`` is the padding unit after name and descriptor (the gABI says 4)."""

    name: bytes
    n_type: int
    desc: bytes
    namesz: Optional[int] = None
    descsz: Optional[int] = None
    align: int = 4


@dataclass
class Load:
    """One PT_LOAD: ``data`` is written to the file; ``memsz`` defaults to len(data).
    ``filesz``/``offset`` override the header values (to lie about them)."""

    vaddr: int
    data: bytes = b""
    memsz: Optional[int] = None
    flags: int = PF_R | PF_W
    filesz: Optional[int] = None
    offset: Optional[int] = None

    def __repr__(self) -> str:  # hypothesis prints failing examples: keep stacks short
        data = repr(self.data) if len(self.data) <= 64 else f"<{len(self.data)} bytes, {self.data.count(0)} zero>"
        return (f"Load({self.vaddr:#x}, {data}, memsz={self.memsz}, flags={self.flags}, "
                f"filesz={self.filesz}, offset={self.offset})")


@dataclass
class ThreadDesc:
    tid: int
    regs: Dict[str, int] = field(default_factory=dict)
    cursig: int = 0
    size: Optional[int] = None  # cut the descriptor to this many bytes


@dataclass
class SiginfoDesc:
    si_signo: int
    si_code: int = 1
    si_errno: int = 0
    si_addr: int = 0  # for faults; for kill() the same 8 bytes hold si_pid, si_uid


@dataclass
class FileEntry:
    start: int
    end: int
    pgoff: int
    name: str


@dataclass
class CoreDesc:
    """A whole core. ``notes`` replaces the notes made from the other fields when set."""

    machine: int = EM_X86_64
    threads: List[ThreadDesc] = field(default_factory=list)
    siginfo: Optional[SiginfoDesc] = None
    prpsinfo: Optional[Tuple[int, str, str]] = None  # (pid, fname, psargs)
    auxv: List[Tuple[int, int]] = field(default_factory=list)
    files: List[FileEntry] = field(default_factory=list)
    file_count: Optional[int] = None  # NT_FILE count to claim (default: len(files))
    loads: List[Load] = field(default_factory=list)
    extra_notes: List[Note] = field(default_factory=list)
    notes: Optional[List[Note]] = None
    note_filesz: Optional[int] = None  # PT_NOTE p_filesz to claim
    pn_xnum: bool = False  # store e_phnum in section 0's sh_info (gABI "Program Header")
    truncate: Optional[int] = None  # cut the finished file to this many bytes
    page_align: bool = True


def _pad(data: bytes, align: int) -> bytes:
    return data + b"\0" * (-len(data) % align) if align > 1 else data


def note_bytes(note: Note) -> bytes:
    """Elf64_Nhdr {n_namesz, n_descsz, n_type} then name and desc, each padded to ``align``."""
    namesz = len(note.name) if note.namesz is None else note.namesz
    descsz = len(note.desc) if note.descsz is None else note.descsz
    head = struct.pack("<III", namesz, descsz, note.n_type)
    return head + _pad(note.name, note.align) + _pad(note.desc, note.align)


def prstatus_desc(t: ThreadDesc, gregs: Sequence[str] = X86_64_GREGS) -> bytes:
    """struct elf_prstatus (include/linux/elfcore.h), 64-bit: pr_info {si_signo, si_code,
    si_errno} at 0, short pr_cursig at 12, pr_sigpend 16, pr_sighold 24, pr_pid 32, pr_ppid 36,
    pr_pgrp 40, pr_sid 44, four timevals 48..111, pr_reg at 112, int pr_fpvalid after it."""
    out = bytearray(112 + 8 * len(gregs) + 8)
    struct.pack_into("<iiih", out, 0, t.cursig, 0, 0, t.cursig)
    struct.pack_into("<iiii", out, 32, t.tid, 1, t.tid, t.tid)
    for i, name in enumerate(gregs):
        struct.pack_into("<Q", out, 112 + 8 * i, t.regs.get(name, 0) & (2**64 - 1))
    data = bytes(out)
    return data if t.size is None else data[:t.size]


def siginfo_desc(s: SiginfoDesc) -> bytes:
    """siginfo_t (include/uapi/asm-generic/siginfo.h): si_signo 0, si_errno 4, si_code 8,
    the _sifields union at 16; 128 bytes in all."""
    out = bytearray(128)
    struct.pack_into("<iiiiQ", out, 0, s.si_signo, s.si_errno, s.si_code, 0, s.si_addr & (2**64 - 1))
    return bytes(out)


def prpsinfo_desc(pid: int, fname: str, psargs: str) -> bytes:
    """struct elf_prpsinfo: pr_state 0, pr_sname 1, pr_uid 16, pr_gid 20, pr_pid 24,
    pr_ppid 28, pr_fname[16] at 40, pr_psargs[80] at 56; 136 bytes."""
    out = bytearray(136)
    out[1:2] = b"R"
    struct.pack_into("<IIii", out, 16, 1000, 1000, pid, 1)
    out[40:56] = fname.encode()[:15].ljust(16, b"\0")
    out[56:136] = psargs.encode()[:79].ljust(80, b"\0")
    return bytes(out)


def auxv_desc(pairs: Sequence[Tuple[int, int]]) -> bytes:
    return b"".join(struct.pack("<QQ", k, v) for k, v in list(pairs) + [(AT_NULL, 0)])


def file_desc(entries: Sequence[FileEntry], count: Optional[int] = None, page_size: int = PAGE) -> bytes:
    """fs/binfmt_elf.c fill_files_note(): long count, long page_size, count × {start, end,
    pgoff}, then the NUL-terminated names."""
    n = len(entries) if count is None else count
    out = struct.pack("<QQ", n & (2**64 - 1), page_size)
    out += b"".join(struct.pack("<QQQ", e.start, e.end, e.pgoff) for e in entries)
    return out + b"".join(e.name.encode() + b"\0" for e in entries)


def elf_image_header(build_id: bytes, e_type: int = 3, vaddr: int = 0) -> bytes:
    """The first page of a mapped ELF object: Elf64_Ehdr, one PT_NOTE phdr at 0x40 whose
    p_vaddr (relative to ``vaddr``) points at a GNU build-id note at 0x100."""
    page = bytearray(PAGE)
    page[:16] = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    struct.pack_into("<HHIQQQIHHHHHH", page, 16, e_type, EM_X86_64, 1, 0, EHDR_SIZE, 0, 0,
                     EHDR_SIZE, PHDR_SIZE, 1, 0, 0, 0)
    note = note_bytes(Note(b"GNU\0", NT_GNU_BUILD_ID, build_id))
    struct.pack_into("<IIQQQQQQ", page, EHDR_SIZE, PT_NOTE, PF_R, 0x100, vaddr + 0x100,
                     vaddr + 0x100, len(note), len(note), 4)
    page[0x100:0x100 + len(note)] = note
    return bytes(page)


def default_notes(d: CoreDesc) -> List[Note]:
    gregs = AARCH64_GREGS if d.machine == EM_AARCH64 else X86_64_GREGS
    notes = [Note(b"CORE\0", NT_PRSTATUS, prstatus_desc(t, gregs)) for t in d.threads[:1]]
    if d.prpsinfo is not None:
        notes.append(Note(b"CORE\0", NT_PRPSINFO, prpsinfo_desc(*d.prpsinfo)))
    if d.siginfo is not None:
        notes.append(Note(b"CORE\0", NT_SIGINFO, siginfo_desc(d.siginfo)))
    if d.auxv:
        notes.append(Note(b"CORE\0", NT_AUXV, auxv_desc(d.auxv)))
    if d.files or d.file_count is not None:
        notes.append(Note(b"CORE\0", NT_FILE, file_desc(d.files, d.file_count)))
    # fs/binfmt_elf.c write_note_info(): the dumping thread's notes first, then the others.
    notes += [Note(b"CORE\0", NT_PRSTATUS, prstatus_desc(t, gregs)) for t in d.threads[1:]]
    return notes + list(d.extra_notes)


def layout(d: CoreDesc) -> Tuple[int, List[int]]:
    """(offset of the notes, offset of each PT_LOAD's data) as ``build_core`` places them."""
    phnum = 1 + len(d.loads)
    notes_off = EHDR_SIZE + PHDR_SIZE * phnum + (SHDR_SIZE if d.pn_xnum else 0)
    notes_len = sum(len(note_bytes(n)) for n in (d.notes if d.notes is not None else default_notes(d)))
    pos = notes_off + notes_len
    offsets = []
    for ld in d.loads:
        if d.page_align:
            pos += -pos % PAGE
        offsets.append(pos)
        pos += len(ld.data)
    return notes_off, offsets


def build_core(d: CoreDesc) -> bytes:
    """The bytes of the core: Elf64_Ehdr, the program headers (PT_NOTE first, as the kernel
    writes them), [section 0 for PN_XNUM], the notes, then each PT_LOAD's data."""
    notes = d.notes if d.notes is not None else default_notes(d)
    note_blob = b"".join(note_bytes(n) for n in notes)
    notes_off, load_offs = layout(d)
    phnum = 1 + len(d.loads)
    shoff = EHDR_SIZE + PHDR_SIZE * phnum if d.pn_xnum else 0
    out = bytearray()
    out += b"\x7fELF\x02\x01\x01" + b"\0" * 9
    out += struct.pack("<HHIQQQIHHHHHH", ET_CORE, d.machine, 1, 0, EHDR_SIZE, shoff, 0, EHDR_SIZE,
                       PHDR_SIZE, PN_XNUM if d.pn_xnum else phnum, SHDR_SIZE if d.pn_xnum else 0,
                       1 if d.pn_xnum else 0, 0)
    note_filesz = len(note_blob) if d.note_filesz is None else d.note_filesz
    out += struct.pack("<IIQQQQQQ", PT_NOTE, 0, notes_off, 0, 0, note_filesz, 0, 4)
    for ld, off in zip(d.loads, load_offs):
        filesz = len(ld.data) if ld.filesz is None else ld.filesz
        memsz = len(ld.data) if ld.memsz is None else ld.memsz
        out += struct.pack("<IIQQQQQQ", PT_LOAD, ld.flags, off if ld.offset is None else ld.offset,
                           ld.vaddr, 0, filesz, memsz, PAGE)
    if d.pn_xnum:
        # gABI: with e_phnum == PN_XNUM the real count is section 0's sh_info.
        out += struct.pack("<IIQQQQIIQQ", 0, SHT_NULL, 0, 0, 0, 0, 0, phnum, 0, 0)
    assert len(out) == notes_off
    out += note_blob
    for ld, off in zip(d.loads, load_offs):
        out += b"\0" * (off - len(out))
        out += ld.data
    data = bytes(out)
    return data if d.truncate is None else data[:d.truncate]


def write_core(path, d: CoreDesc) -> bytes:
    """Write the core for ``d`` at ``path``; returns its bytes."""
    data = build_core(d)
    with open(path, "wb") as f:
        f.write(data)
    return data


# -- a plausible small process ---------------------------------------------------------------

CODE_BASE = 0x400000
STACK_BASE = 0x7FFD0000
STACK_SIZE = 0x4000
EXE_NAME = "/nonexistent/coredump-test/prog"
BUILD_ID = bytes(range(20))


def fp_stack(frames: Sequence[Tuple[int, int]], loop_to: Optional[int] = None) -> Tuple[bytes, int]:
    """A stack of frame-pointer frames (System V psABI §3.2.2: [rbp] is the caller's rbp,
    [rbp+8] the return address), laid out upward from STACK_BASE + 0x100.

    ``frames`` are (spacing, return address); ``loop_to`` makes the last frame's saved rbp point
    back at frame ``loop_to`` (0 = the first frame: a cycle; the last frame itself: a self-loop).
    Returns (stack bytes, rbp of the first frame)."""
    stack = bytearray(STACK_SIZE)
    rbps = []
    pos = 0x100
    for spacing, _ in frames:
        rbps.append(pos)
        pos += max(16, spacing)
    for i, (_, ret) in enumerate(frames):
        nxt = rbps[i + 1] if i + 1 < len(rbps) else None
        if nxt is None and loop_to is not None:
            nxt = rbps[loop_to]
        saved = STACK_BASE + nxt if nxt is not None else 0
        struct.pack_into("<QQ", stack, rbps[i], saved, ret)
    return bytes(stack), STACK_BASE + rbps[0]


def simple_process(regs: Optional[Dict[str, int]] = None, stack: Optional[bytes] = None,
                   signo: int = 11, si_addr: int = 0, nthreads: int = 1) -> CoreDesc:
    """A process that faulted in its executable: a code mapping with an ELF header (and a
    build-id) at CODE_BASE, a stack, one or more threads, siginfo, prpsinfo, auxv and NT_FILE."""
    code = elf_image_header(BUILD_ID, e_type=2, vaddr=CODE_BASE) + b"\x55\x48\x89\xe5" + b"\x90" * (PAGE - 4)
    if stack is None:
        stack, rbp = fp_stack([(32, CODE_BASE + PAGE + 0x20), (48, CODE_BASE + PAGE + 0x40)])
    else:
        rbp = STACK_BASE + 0x100
    base = {"rip": CODE_BASE + PAGE + 4, "rsp": rbp, "rbp": rbp, "cs": 0x33, "ss": 0x2B}
    base.update(regs or {})
    threads = [ThreadDesc(1000, base, signo)]
    threads += [ThreadDesc(1000 + i, dict(base, rip=CODE_BASE + PAGE), 0) for i in range(1, nthreads)]
    return CoreDesc(
        threads=threads,
        siginfo=SiginfoDesc(signo, 1, 0, si_addr),
        prpsinfo=(1000, "prog", f"{EXE_NAME} arg1"),
        auxv=[(AT_PHDR, CODE_BASE + EHDR_SIZE), (AT_PAGESZ, PAGE), (AT_ENTRY, CODE_BASE + PAGE)],
        files=[FileEntry(CODE_BASE, CODE_BASE + 2 * PAGE, 0, EXE_NAME)],
        loads=[Load(CODE_BASE, code, flags=PF_R | PF_X), Load(STACK_BASE, stack)],
    )
