"""
Core files
==========

Open an ELF core (ET_CORE) with pyelftools, memory-mapped, and decode its notes into
threads, signal info, auxv, the mapped-file table and the process's command line.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct

from coredump.arch import Arch, get_arch
from coredump.elf import notes as N
from coredump.elf.header import Ehdr, read_ehdr
from coredump.elf.memory import AddressSpace, Segment
from coredump.elf.phdrs import PHDR, Phdr
from coredump.errors import CoreFormatError, MemoryFault, MissingFileError
from coredump.record import dataclass, field, replace

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Optional, Tuple

    from coredump.elf.memory import FileReader

__all__ = ("CoreThread", "Core", "open_core")

# include/uapi/linux/auxvec.h
AT_PHDR = 3
AT_ENTRY = 9
AT_EXECFN = 31
AT_SYSINFO_EHDR = 33
# include/uapi/linux/elf.h: the arm64 pointer-authentication masks (name "LINUX").
NT_ARM_PAC_MASK = 0x406

PHDR_SIZE = 56  # sizeof(Elf64_Phdr)
PT_LOAD, PT_NOTE = 1, 4  # gABI p_type values
# NT_PRSTATUS notes decoded at most (each thread costs a register dict and a walk); the kernel's
# default threads-max is far higher, but a core with more threads than this is not debugged by stack.
MAX_THREADS = 32768
# NT_FILE entries decoded at most: fs/binfmt_elf.c fill_files_note() writes one per VMA and
# refuses a note of 4 MiB or more (MAX_FILE_NOTE_SIZE, since 6.9 the core_file_note_size_limit
# sysctl), 64 bytes an entry at its first guess: under 65536 entries from a default kernel.
MAX_FILE_ENTRIES = 65536
# Notes framed at most, all PT_NOTE segments together: the kernel writes a dozen per thread
# at most (arm64: NT_PRSTATUS, NT_PRFPREG and ten regsets), plus the process's few.
MAX_NOTES = 16 * MAX_THREADS


@dataclass(frozen=True)
class CoreThread:
    """One NT_PRSTATUS: a thread's id, pending signal and general registers by name."""

    tid: int
    cursig: int
    registers: dict
    prstatus: N.Prstatus
    # The NT_PRFPREG after it (x86_64: xmm0..xmm15), for frame 0's floating-point values.
    vector: dict = field(default_factory=dict)


class Core:
    """An opened core. Use ``open_core(path)``; close with ``close()`` or ``with``."""

    def __init__(self, path: str, fileobj, data, ehdr: Ehdr):
        self.path = path
        self._file = fileobj
        self.data = data
        self.size = len(data)
        self.ehdr = ehdr
        self.warnings: List[str] = []
        self.arch: Optional[Arch] = get_arch(ehdr.e_machine)
        self.e_machine: str = str(ehdr.e_machine)
        self.threads: List[CoreThread] = []
        self.siginfo: Optional[N.Siginfo] = None
        self.prpsinfo: Optional[N.Prpsinfo] = None
        self.auxv: Tuple[Tuple[int, int], ...] = ()
        self.files: Tuple[N.FileMapping, ...] = ()
        # The COREDUMP note ``coredump slim`` writes: what a slim core left out.
        self.slim: Optional[N.SlimNote] = None
        # NT_ARM_PAC_MASK's insn_mask: the bits of a code pointer that hold its
        # pointer-authentication code (aarch64 with PAC only).
        self.pac_insn_mask: Optional[int] = None
        self.segments: List[Segment] = []
        self.missing_bytes = 0
        self.threads_ignored = 0
        self.notes_seen = 0
        self._read_program_headers()
        self._memory: Optional[AddressSpace] = None

    # -- program headers and notes -------------------------------------------------------

    def _get_program_headers(self) -> list:
        """Every Elf64_Phdr that the file holds. With e_phnum == PN_XNUM the count is section
        0's sh_info (gABI "Program Header"), up to 2**32 - 1: a count that cannot fit in the file
        is cut to what does, with a warning."""
        try:
            count = self.ehdr.e_phnum
            e_phoff, e_phentsize = self.ehdr.e_phoff, self.ehdr.e_phentsize
            if count and e_phentsize < PHDR_SIZE:
                raise CoreFormatError(f"{self.path}: e_phentsize is {e_phentsize}, expected {PHDR_SIZE}")
            fits = max(0, (self.size - e_phoff) // e_phentsize) if count else 0
            if count and not fits:
                raise CoreFormatError(f"{self.path} is truncated inside its program headers")
            if count > fits:
                self.warnings.append(f"core is truncated: {count} program headers claimed, {fits} present")
                count = fits
            return [Phdr(*PHDR.unpack_from(self.data, e_phoff + i * e_phentsize)) for i in range(count)]
        except CoreFormatError:
            raise
        except Exception as exc:
            raise CoreFormatError(f"{self.path}: program headers unreadable ({exc})") from None

    def _read_program_headers(self) -> None:
        phdrs = self._get_program_headers()
        for ph in phdrs:
            if ph.p_type == PT_LOAD:
                available = max(0, min(ph.p_filesz, self.size - ph.p_offset))
                self.missing_bytes += ph.p_filesz - available
                self.segments.append(Segment(ph.p_vaddr, ph.p_memsz, ph.p_offset, ph.p_filesz,
                                             ph.p_flags, available))
            elif ph.p_type == PT_NOTE:
                self._read_notes(ph.p_offset, ph.p_filesz)
        if self.missing_bytes:
            self.warnings.append(
                f"core is truncated: {self.missing_bytes} bytes of memory "
                f"({self.missing_bytes * 100 // max(1, self.missing_bytes + self.dumped_bytes)}%) are missing"
            )
        if not self.threads:
            self.warnings.append("core has no NT_PRSTATUS note: no thread registers")
        if self.threads_ignored:
            self.warnings.append(f"{self.threads_ignored} threads past the first {MAX_THREADS} ignored")

    @property
    def dumped_bytes(self) -> int:
        return sum(s.available for s in self.segments)

    @property
    def truncated(self) -> bool:
        return self.missing_bytes > 0 or any("note" in w and "truncated" in w for w in self.warnings)

    def _read_notes(self, offset: int, size: int) -> None:
        data = self.data[offset:offset + size]
        if len(data) < size:
            self.warnings.append(f"core is truncated inside its notes (at {offset + len(data):#x})")
        try:
            for note in N.iter_raw_notes(data, offset):
                if self.notes_seen >= MAX_NOTES:
                    self.warnings.append(f"notes past the first {MAX_NOTES} ignored (the notes at {note.offset:#x} on)")
                    return
                self.notes_seen += 1
                self._decode_note(note)
        except CoreFormatError as exc:
            self.warnings.append(f"notes end early: {exc}")

    def _decode_note(self, note: N.RawNote) -> None:
        if note.n_name not in ("CORE", "LINUX", N.COREDUMP_NOTE_NAME):
            return
        try:
            if note.n_name == N.COREDUMP_NOTE_NAME:
                if note.n_type == N.NT_COREDUMP_SLIM and self.slim is None:
                    self.slim = N.decode_slim_note(note.desc)
            elif note.n_type == N.NT_PRSTATUS and note.n_name == "CORE":
                self._add_thread(note.desc)
            elif note.n_type == N.NT_PRFPREG and note.n_name == "CORE" and self.threads \
                    and self.arch is not None and self.arch.name == "x86_64" and not self.threads[-1].vector:
                # binfmt_elf.c fill_thread_core_info: a thread's regsets follow its NT_PRSTATUS.
                self.threads[-1] = replace(self.threads[-1], vector=N.decode_x86_64_fxsave(note.desc))
            elif note.n_type == N.NT_SIGINFO and self.siginfo is None:
                self.siginfo = N.decode_nt_siginfo(note.desc)
            elif note.n_type == N.NT_PRPSINFO and self.prpsinfo is None:
                self.prpsinfo = N.decode_nt_prpsinfo(note.desc)
            elif note.n_type == N.NT_AUXV and not self.auxv:
                self.auxv = N.decode_nt_auxv(note.desc)
            elif note.n_type == N.NT_FILE and not self.files:
                self._add_files(note.desc)
            elif note.n_type == NT_ARM_PAC_MASK and note.n_name == "LINUX" and len(note.desc) >= 16:
                # struct user_pac_mask { __u64 data_mask; __u64 insn_mask; }
                # (arch/arm64/include/uapi/asm/ptrace.h)
                self.pac_insn_mask = struct.unpack_from("<Q", note.desc, 8)[0]
        except CoreFormatError as exc:
            self.warnings.append(f"note at {note.offset:#x} skipped: {exc}")

    def _add_files(self, desc: bytes) -> None:
        self.files = N.decode_nt_file(desc, MAX_FILE_ENTRIES)
        count = N.nt_file_count(desc)
        if count > MAX_FILE_ENTRIES:
            self.warnings.append(f"NT_FILE lists {count} mapped files; only the first {MAX_FILE_ENTRIES} are read")

    def _add_thread(self, desc: bytes) -> None:
        if len(self.threads) >= MAX_THREADS:
            self.threads_ignored += 1
            return
        if self.arch is None:
            status = N.decode_nt_prstatus(desc, 0)
            self.threads.append(CoreThread(status.pr_pid, status.pr_cursig, {}, status))
            return
        status = N.decode_nt_prstatus(desc, len(self.arch.gregs), self.arch.prstatus_reg_offset)
        regs = dict(zip(self.arch.gregs, status.pr_reg))
        self.threads.append(CoreThread(status.pr_pid, status.pr_cursig, regs, status))

    # -- derived facts --------------------------------------------------------------------

    def get_auxv(self, a_type: int) -> Optional[int]:
        for key, value in self.auxv:
            if key == a_type:
                return value
        return None

    def memory(self, open_file: Optional[FileReader] = None) -> AddressSpace:
        """The address space; `open_file(name)` returns the bytes of a mapped file, or None."""
        if self._memory is None or open_file is not None:
            self._memory = AddressSpace(self.data, self.segments, self.files, open_file)
        return self._memory

    def find_executable_mapping(self) -> Optional[N.FileMapping]:
        """The NT_FILE entry of the main program: the one holding AT_PHDR (the kernel puts
        the program headers of the executable there, fs/binfmt_elf.c create_elf_tables)."""
        for key in (AT_PHDR, AT_ENTRY):
            addr = self.get_auxv(key)
            if addr is None:
                continue
            for m in self.files:
                if m.vm_start <= addr < m.vm_end:
                    return m
        return self.files[0] if self.files else None

    def get_argv(self) -> Tuple[str, ...]:
        """argv as the process had it: read from the initial stack when the core holds it
        (System V psABI §3.4.1 "Initial Stack": argc, argv[], NULL, envp[], NULL, auxv),
        else the kernel's 80-byte pr_psargs split on spaces."""
        try:
            argv = self._argv_from_stack()
        except MemoryFault:
            argv = None
        if argv:
            return argv
        if self.prpsinfo is not None:
            return tuple(self.prpsinfo.pr_psargs.split())
        return ()

    def _argv_from_stack(self) -> Optional[Tuple[str, ...]]:
        execfn = self.get_auxv(AT_EXECFN)
        if execfn is None or not self.auxv:
            return None
        mem = self.memory()
        seg = mem.find_segment(execfn)
        if seg is None or seg.available < seg.p_memsz:
            return None
        blob = bytes(self.data[seg.p_offset:seg.p_offset + seg.available])
        # The saved auxv (NT_AUXV) is a copy of the auxv on the initial stack.
        pattern = b"".join(k.to_bytes(8, "little") + v.to_bytes(8, "little") for k, v in self.auxv[:4])
        at = blob.find(pattern)
        if at < 0 or at % 8:
            return None
        words = memoryview(blob)[:at].cast("Q")
        i = len(words) - 1
        if i < 0 or words[i] != 0:
            return None
        i -= 1
        while i >= 0 and words[i] != 0:  # envp[]
            i -= 1
        end_argv = i  # argv[argc], NULL
        # argc is the word before argv[]: the slot whose value counts the slots between it and
        # argv's NULL (at least 1: a NULL slot is a pointer the program cleared)
        j = end_argv - 1
        while j >= 0 and not 1 <= words[j] == end_argv - j - 1 and end_argv - j < 100000:
            j -= 1
        if j < 0 or end_argv < 0 or not 1 <= words[j] == end_argv - j - 1:
            return None
        # The strings are read where execve copied them, one after another from argv[0]'s, as
        # /proc/PID/cmdline reads them (mm->arg_start..arg_end, fs/proc/base.c): a program may
        # rewrite argv[] itself (googletest's InitGoogleTest takes its flags out of it).
        at, argv = words[j + 1], []
        for _ in range(words[j]):
            raw = mem.read_cstring(at, 1 << 16)
            argv.append(raw.decode("utf-8", "surrogateescape"))  # jsondoc's rule: undecodable bytes kept (PEP 383)
            at += len(raw) + 1
        return tuple(argv)

    def close(self) -> None:
        try:
            if isinstance(self.data, mmap.mmap):
                self.data.close()
        except BufferError:
            pass
        self._file.close()

    def __enter__(self) -> Core:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_core(path: str, name: Optional[str] = None) -> Core:
    """Open and validate a core file; raises ``MissingFileError`` or ``CoreFormatError``.
    `name` is what messages and ``Core.path`` call it when `path` is a temporary copy (a
    core decompressed from the user's core.zst)."""
    shown = path if name is None else name
    try:
        st = os.stat(path)
    except OSError as exc:
        raise MissingFileError(f"{shown}: {exc.strerror.lower()}") from None
    if stat.S_ISDIR(st.st_mode):
        raise CoreFormatError(f"{shown} is a directory, not a core file")
    if st.st_size == 0:
        raise CoreFormatError(f"{shown} is empty")
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise MissingFileError(f"{shown}: {exc.strerror.lower()}") from None
    try:
        head = f.read(64)
        if head[:4] != b"\x7fELF":
            raise CoreFormatError(f"{shown} is not an ELF file")
        if len(head) < 64:  # sizeof(Elf64_Ehdr)
            raise CoreFormatError(f"{shown} is truncated inside its ELF header ({len(head)} bytes)")
        if head[4] != 2 or head[5] != 1:
            raise CoreFormatError(f"{shown} is not a 64-bit little-endian ELF (only those are supported)")
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        ehdr = read_ehdr(data)
        if ehdr.e_type != "ET_CORE":
            raise CoreFormatError(f"{shown} is an ELF {ehdr.e_type}, not a core (ET_CORE)")
        core = Core(shown, f, data, ehdr)
    except BaseException:
        f.close()
        raise
    if core.arch is None:
        core.warnings.append(f"unsupported architecture {core.e_machine}: no registers decoded")
    return core
