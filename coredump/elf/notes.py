"""
Core notes
==========

Decoders for the PT_NOTE records of a Linux core that pyelftools leaves as raw bytes,
each into a frozen dataclass whose fields keep the kernel's names.
"""

from __future__ import annotations

import struct

from coredump.errors import CoreFormatError
from coredump.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, Iterator, Optional, Tuple

__all__ = (
    "RawNote", "Prstatus", "Siginfo", "Prpsinfo", "FileMapping",
    "iter_raw_notes", "decode_nt_prstatus", "decode_nt_siginfo", "decode_nt_prpsinfo",
    "decode_nt_auxv", "decode_nt_file", "nt_file_count", "decode_x86_64_fxsave", "NT_PRFPREG",
    "NT_PRSTATUS", "NT_PRPSINFO", "NT_AUXV", "NT_SIGINFO",
    "NT_FILE", "NT_GNU_BUILD_ID",
    "SlimNote", "COREDUMP_NOTE_NAME", "NT_COREDUMP_SLIM", "encode_note", "encode_slim_note",
    "decode_slim_note",
)

# include/uapi/linux/elf.h
NT_PRSTATUS = 1
NT_PRFPREG = 2
NT_PRPSINFO = 3
NT_AUXV = 6
NT_SIGINFO = 0x53494749
NT_FILE = 0x46494C45
NT_X86_XSTATE = 0x202
NT_GNU_BUILD_ID = 3

# Our own note, written by ``coredump slim``. gABI "Note Section": the originator's name
# tells whose note it is, and its n_type means something under that name only. bfd hands
# notes of an unknown name to its generic core-note parser, which keys on n_type alone, so the
# type is one no Linux or GNU core note uses: "SLIM" in ASCII, as NT_FILE is "FILE".
COREDUMP_NOTE_NAME = "COREDUMP"
NT_COREDUMP_SLIM = 0x534C494D
_SLIM_HEAD = struct.Struct("<QQQQQ")  # version, original_size, omitted_bytes, missing_bytes, count

# The kernel never writes a note anywhere near this big; a larger n_descsz is corruption.
MAX_NOTE_SIZE = 64 << 20


@dataclass(frozen=True)
class RawNote:
    n_name: str
    n_type: int
    desc: bytes
    offset: int


def iter_raw_notes(data: bytes, base_offset: int = 0) -> Iterator[RawNote]:
    """Frame the notes of one PT_NOTE segment (ELF gABI "Note Section": Elf64_Nhdr, name and
    descriptor each padded to 4 bytes). pyelftools' ``iter_notes`` decodes NT_FILE eagerly and
    raises on a damaged one, losing the notes after it; here a damaged note ends the segment."""
    pos = 0
    end = len(data)
    while pos + 12 <= end:
        n_namesz, n_descsz, n_type = struct.unpack_from("<III", data, pos)
        name_start = pos + 12
        desc_start = name_start + ((n_namesz + 3) & ~3)
        desc_end = desc_start + n_descsz
        if n_descsz > MAX_NOTE_SIZE or desc_end > end:
            raise CoreFormatError(f"note at offset {base_offset + pos:#x} runs past its segment")
        name = data[name_start:name_start + n_namesz].split(b"\0", 1)[0].decode("latin-1")
        yield RawNote(name, n_type, bytes(data[desc_start:desc_end]), base_offset + pos)
        pos = desc_start + ((n_descsz + 3) & ~3)


@dataclass(frozen=True)
class Prstatus:
    """struct elf_prstatus (include/linux/elfcore.h) of one thread."""

    si_signo: int
    si_code: int
    si_errno: int
    pr_cursig: int
    pr_sigpend: int
    pr_sighold: int
    pr_pid: int
    pr_ppid: int
    pr_pgrp: int
    pr_sid: int
    pr_reg: Tuple[int, ...]


def decode_nt_prstatus(desc: bytes, nregs: int, reg_offset: int = 112) -> Prstatus:
    """Decode NT_PRSTATUS for a 64-bit little-endian kernel.

    struct elf_prstatus_common: struct elf_siginfo pr_info {int si_signo, si_code, si_errno}
    at 0, short pr_cursig at 12, unsigned long pr_sigpend at 16 and pr_sighold at 24, pid_t
    pr_pid, pr_ppid, pr_pgrp, pr_sid at 32..44, four struct timeval (16 bytes each) at 48;
    then elf_gregset_t pr_reg at 112.
    """
    need = reg_offset + 8 * nregs
    if len(desc) < need:
        raise CoreFormatError(f"NT_PRSTATUS is {len(desc)} bytes, expected at least {need}")
    si_signo, si_code, si_errno, pr_cursig = struct.unpack_from("<iiih", desc, 0)
    pr_sigpend, pr_sighold = struct.unpack_from("<QQ", desc, 16)
    pr_pid, pr_ppid, pr_pgrp, pr_sid = struct.unpack_from("<iiii", desc, 32)
    pr_reg = struct.unpack_from(f"<{nregs}Q", desc, reg_offset)
    return Prstatus(si_signo, si_code, si_errno, pr_cursig, pr_sigpend, pr_sighold,
                    pr_pid, pr_ppid, pr_pgrp, pr_sid, pr_reg)


@dataclass(frozen=True)
class Siginfo:
    """siginfo_t (include/uapi/asm-generic/siginfo.h) of the fatal signal."""

    si_signo: int
    si_errno: int
    si_code: int
    si_addr: Optional[int] = None
    si_pid: Optional[int] = None
    si_uid: Optional[int] = None


# Signals whose siginfo carries _sigfault.si_addr (asm-generic/siginfo.h, "SIGILL, SIGFPE,
# SIGSEGV, SIGBUS, SIGTRAP, SIGEMT").
_FAULT_SIGNALS = {4, 5, 7, 8, 11}
# si_code values <= 0 come from userspace (SI_USER 0, SI_QUEUE -1, SI_TKILL -6 ...): _kill.
SI_USER = 0


def decode_nt_siginfo(desc: bytes) -> Siginfo:
    """Decode NT_SIGINFO: int si_signo at 0, si_errno at 4, si_code at 8; the union _sifields
    starts at 16 on 64-bit (aligned to 8). For faults it holds void *si_addr; for kill/tkill
    it holds pid_t si_pid at 16 and uid_t si_uid at 20."""
    if len(desc) < 24:
        raise CoreFormatError(f"NT_SIGINFO is {len(desc)} bytes, expected 128")
    si_signo, si_errno, si_code = struct.unpack_from("<iii", desc, 0)
    if si_code <= SI_USER:
        si_pid, si_uid = struct.unpack_from("<iI", desc, 16)
        return Siginfo(si_signo, si_errno, si_code, si_pid=si_pid, si_uid=si_uid)
    if si_signo in _FAULT_SIGNALS:
        (si_addr,) = struct.unpack_from("<Q", desc, 16)
        return Siginfo(si_signo, si_errno, si_code, si_addr=si_addr)
    return Siginfo(si_signo, si_errno, si_code)


@dataclass(frozen=True)
class Prpsinfo:
    """struct elf_prpsinfo (include/linux/elfcore.h)."""

    pr_state: int
    pr_sname: str
    pr_uid: int
    pr_gid: int
    pr_pid: int
    pr_ppid: int
    pr_pgrp: int
    pr_sid: int
    pr_fname: str
    pr_psargs: str


def decode_nt_prpsinfo(desc: bytes) -> Prpsinfo:
    """include/linux/elfcore.h struct elf_prpsinfo, as fs/binfmt_elf.c fill_psinfo() fills it:
    char pr_state at 0, pr_sname at 1, pr_zomb 2, pr_nice 3, unsigned long pr_flag at 8,
    __kernel_uid_t pr_uid at 16 and pr_gid at 20 (32-bit on x86_64 and arm64), pid_t pr_pid,
    pr_ppid, pr_pgrp, pr_sid at 24..36, char pr_fname[16] at 40, char pr_psargs[80] at 56."""
    if len(desc) < 136:
        raise CoreFormatError(f"NT_PRPSINFO is {len(desc)} bytes, expected 136")
    pr_state, pr_sname = struct.unpack_from("<bc", desc, 0)
    pr_uid, pr_gid, pr_pid, pr_ppid, pr_pgrp, pr_sid = struct.unpack_from("<IIiiii", desc, 16)
    fname = desc[40:56].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    psargs = desc[56:136].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    return Prpsinfo(pr_state, pr_sname.decode("latin-1"), pr_uid, pr_gid, pr_pid, pr_ppid,
                    pr_pgrp, pr_sid, fname, psargs)


# arch/x86/include/asm/user_64.h struct user_i387_struct (the fxsave area, Intel SDM Vol. 1
# §10.5.1 Table 10-2): 32 bytes of control words, st_space[32] (8 x87 registers of 16 bytes),
# then xmm_space[64]: xmm0..xmm15, 16 bytes each.
_FXSAVE_XMM_OFFSET, _FXSAVE_SIZE = 160, 512


def decode_x86_64_fxsave(desc: bytes) -> Dict[str, int]:
    """xmm0..xmm15 of an x86_64 NT_PRFPREG note, as 128-bit little-endian integers."""
    if len(desc) < _FXSAVE_SIZE:
        raise CoreFormatError(f"NT_PRFPREG of {len(desc)} bytes, fxsave needs {_FXSAVE_SIZE}")
    return {f"xmm{n}": int.from_bytes(desc[_FXSAVE_XMM_OFFSET + 16 * n:_FXSAVE_XMM_OFFSET + 16 * n + 16], "little")
            for n in range(16)}


def decode_nt_auxv(desc: bytes) -> Tuple[Tuple[int, int], ...]:
    """The auxiliary vector: Elf64_auxv_t pairs {a_type, a_val}, ending at AT_NULL (0)."""
    pairs = []
    for i in range(len(desc) // 16):
        a_type, a_val = struct.unpack_from("<QQ", desc, 16 * i)
        if a_type == 0:
            break
        pairs.append((a_type, a_val))
    return tuple(pairs)


@dataclass(frozen=True)
class FileMapping:
    """One NT_FILE entry: [vm_start, vm_end) maps `filename` from byte `offset`."""

    vm_start: int
    vm_end: int
    offset: int
    filename: str


def nt_file_count(desc: bytes) -> int:
    """The entry count an NT_FILE descriptor claims (its first long)."""
    if len(desc) < 16:
        raise CoreFormatError("NT_FILE is too short")
    return struct.unpack_from("<Q", desc, 0)[0]


def decode_nt_file(desc: bytes, max_entries: Optional[int] = None) -> Tuple[FileMapping, ...]:
    """fs/binfmt_elf.c fill_files_note(): long count, long page_size, then count triples
    {start, end, file_ofs (in pages)}, then count NUL-terminated file names. With
    `max_entries`, the first that many entries only (the names after them are not read)."""
    count = nt_file_count(desc)
    (page_size,) = struct.unpack_from("<Q", desc, 8)
    if count * 24 + 16 > len(desc):
        raise CoreFormatError(f"NT_FILE claims {count} entries in {len(desc)} bytes")
    wanted = count if max_entries is None else min(count, max_entries)
    out = []
    pos = 16 + 24 * count
    for i in range(wanted):
        start, end, file_ofs = struct.unpack_from("<QQQ", desc, 16 + 24 * i)
        nul = desc.find(b"\0", pos)
        raw = desc[pos:nul if nul >= 0 else len(desc)]
        pos = nul + 1 if nul >= 0 else len(desc)
        out.append(FileMapping(start, end, file_ofs * page_size, raw.decode("utf-8", "surrogateescape")))
    return tuple(out)


def encode_note(name: str, n_type: int, desc: bytes) -> bytes:
    """One note (ELF gABI "Note Section"): Elf64_Nhdr {n_namesz, n_descsz, n_type}, the
    NUL-terminated name, the descriptor; name and descriptor each padded to 4 bytes."""
    raw = name.encode("ascii") + b"\0"
    pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(raw), len(desc), n_type) + pad(raw) + pad(desc)


@dataclass(frozen=True)
class SlimNote:
    """What ``coredump slim`` left out: `omitted` are the [start, end) ranges that the
    original core held and the slim one does not; `missing_bytes` those the original claimed
    but did not hold (it was truncated); `original_size` its size in bytes."""

    original_size: int
    omitted_bytes: int
    missing_bytes: int
    omitted: Tuple[Tuple[int, int], ...] = ()
    version: int = 1


def encode_slim_note(note: SlimNote) -> bytes:
    desc = _SLIM_HEAD.pack(note.version, note.original_size, note.omitted_bytes, note.missing_bytes,
                           len(note.omitted))
    desc += b"".join(struct.pack("<QQ", lo, hi) for lo, hi in note.omitted)
    return encode_note(COREDUMP_NOTE_NAME, NT_COREDUMP_SLIM, desc)


def decode_slim_note(desc: bytes) -> SlimNote:
    if len(desc) < _SLIM_HEAD.size:
        raise CoreFormatError(f"COREDUMP slim note is {len(desc)} bytes, expected at least {_SLIM_HEAD.size}")
    version, original_size, omitted_bytes, missing_bytes, count = _SLIM_HEAD.unpack_from(desc)
    count = min(count, (len(desc) - _SLIM_HEAD.size) // 16)
    ranges = tuple(struct.unpack_from("<QQ", desc, _SLIM_HEAD.size + 16 * i) for i in range(count))
    return SlimNote(original_size, omitted_bytes, missing_bytes, ranges, version)
