"""
Slim cores
==========

Write a small ELF core that still gives the same backtrace: every note, every thread's
stack, the pages its registers and stack words point into, each module's ELF header and
data pages, and the dynamic linker's link map. The memory left out gets no PT_LOAD (a
debugger then says it cannot read it, rather than showing zeros), and a note of our own
(name ``COREDUMP``, see coredump.elf.notes) records the ranges left out.
"""

from __future__ import annotations

import os
import struct
import tempfile

from coredump.elf.linkmap import find_r_debug
from coredump.elf.notes import SlimNote, encode_slim_note
from coredump.elf.phdrs import EHDR, PHDR, PN_XNUM, SHDR, Phdr, read_phdrs
from coredump.errors import CoreFormatError, MemoryFault, StorageError
from coredump.record import dataclass, replace

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Iterable, List, Sequence, Tuple, Union
    Range = Tuple[int, int]

__all__ = ("SlimResult", "slim_core", "keep_ranges")

PAGE = 4096
PT_LOAD, PT_NOTE, PT_DYNAMIC, PT_PHDR = 1, 4, 2, 6
PF_X, PF_W = 1, 2
# System V psABI x86-64 §3.2.2: 128 bytes below %rsp are the leaf function's red zone.
RED_ZONE = 128
# include/uapi/linux/auxvec.h
AT_PHDR, AT_PHNUM, AT_SYSINFO_EHDR = 3, 5, 33
# glibc's struct pthread (nptl/descr.h) starts at the thread pointer and is about 2.3 KiB on
# x86_64: libthread_db reads all of it, so the page the register points into is not enough.
PTHREAD_SIZE = 0x1000
LINK_MAP_SIZE = 0x480  # glibc's struct link_map (public head l_addr, l_name, l_ld, l_next, l_prev + private part)


@dataclass(frozen=True)
class SlimResult:
    src: str
    dst: str
    original_size: int
    size: int
    segments: int
    kept_segments: int
    kept_bytes: int
    omitted_bytes: int = 0
    missing_bytes: int = 0
    warnings: Tuple[str, ...] = ()

    @property
    def ratio(self) -> float:
        return self.original_size / max(1, self.size)


def _pages(lo: int, hi: int) -> Range:
    return lo & ~(PAGE - 1), (hi + PAGE - 1) & ~(PAGE - 1)


def merge(ranges: Iterable[Range]) -> List[Range]:
    out: List[Range] = []
    for lo, hi in sorted(r for r in ranges if r[1] > r[0]):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _stack_ranges(core, memory, stack_cap: int) -> List[Range]:
    """Each thread's stack: from sp minus the red zone up to the end of the mapping that
    holds sp (the stack grows down, psABI §3.4.1), at most `stack_cap` bytes."""
    out = []
    for t in core.threads:
        sp = t.registers.get(core.arch.sp) if core.arch else None
        seg = memory.find_segment(sp) if sp is not None else None
        if seg is None:
            continue
        lo = max(seg.p_vaddr, sp - RED_ZONE)
        out.append(_pages(lo, min(seg.end, lo + stack_cap)))
    return out


def _pointer_pages(core, memory, stacks: Sequence[Range], max_pages: int) -> List[Range]:
    """The page holding each register value and each stack word that points into a dumped
    segment, nearest the stack pointer first, at most `max_pages` pages."""
    values: List[int] = []
    for t in core.threads:
        values.extend(t.registers.values())
    for lo, hi in stacks:
        try:
            blob = memory.read(lo, hi - lo)
        except MemoryFault:
            continue
        values.extend(memoryview(blob).cast("Q"))
    seen = set()
    out = []
    for v in values:
        page = v & ~(PAGE - 1)
        if page in seen:
            continue
        seen.add(page)
        seg = memory.find_segment(v)
        if seg is not None and seg.available:
            out.append((page, page + PAGE))
            if len(out) >= max_pages:
                break
    return out


def _module_ranges(core, memory, data_cap: int) -> List[Range]:
    """Each module's first page (ELF header, program headers, build-id note; kernel
    coredump_filter bit 4), its dumped data pages (.data, .bss, GOT, RELRO: private
    copies the file does not hold), and the vDSO."""
    out = []
    for m in core.files:
        if m.offset == 0:
            out.append((m.vm_start, m.vm_start + PAGE))
    for seg in memory.segments:
        if seg.available and not seg.p_flags & PF_X and memory.find_file_mapping(seg.p_vaddr) is not None:
            out.append((seg.p_vaddr, seg.p_vaddr + min(seg.available, data_cap)))
    vdso = core.get_auxv(AT_SYSINFO_EHDR)
    seg = memory.find_segment(vdso) if vdso else None
    if seg is not None:
        out.append((seg.p_vaddr, seg.end))
    return out


def _link_map_ranges(core, memory, limit: int = 512) -> List[Range]:
    """What a debugger reads to list shared libraries (System V gABI dynamic section,
    glibc <link.h>): the executable's PT_DYNAMIC, DT_DEBUG's r_debug, each link_map,
    its l_name and l_ld."""
    out: List[Range] = []
    try:
        phdr, phnum = core.get_auxv(AT_PHDR), core.get_auxv(AT_PHNUM)
        if not phdr or not phnum:
            return out
        phdrs = [PHDR.unpack(memory.read(phdr + i * PHDR.size, PHDR.size)) for i in range(phnum)]
        bias = next((phdr - p[3] for p in phdrs if p[0] == PT_PHDR), None)
        dyn = next((p for p in phdrs if p[0] == PT_DYNAMIC), None)
        if bias is None or dyn is None:
            return out
        dyn_at = dyn[3] + bias
        out.append((dyn_at, dyn_at + dyn[6]))
        r_debug = find_r_debug(memory, dyn_at, dyn[6] // 16)
        if not r_debug:
            return out
        out.append((r_debug, r_debug + 40))
        lm = memory.read_word(r_debug + 8)  # r_map
        for _ in range(limit):
            if not lm:
                break
            out.append((lm, lm + LINK_MAP_SIZE))
            l_name, l_ld, l_next = struct.unpack("<QQQ", memory.read(lm + 8, 24))
            for p in (l_name, l_ld):
                if p:
                    out.append((p, p + 512))
            lm = l_next
    except MemoryFault:
        pass
    return out


def keep_ranges(core, stack_cap: int = 8 << 20, max_pointer_pages: int = 4096,
                data_cap: int = 1 << 20) -> List[Range]:
    """The page-aligned address ranges a slim core keeps, merged."""
    memory = core.memory()
    stacks = _stack_ranges(core, memory, stack_cap)
    ranges = stacks + _pointer_pages(core, memory, stacks, max_pointer_pages)
    ranges += _module_ranges(core, memory, data_cap) + _link_map_ranges(core, memory)
    # x86_64: fs_base is the thread pointer (System V psABI §3.4.5, TLS)
    ranges += [(t.registers["fs_base"], t.registers["fs_base"] + PTHREAD_SIZE)
               for t in core.threads if t.registers.get("fs_base")]
    return merge(_pages(lo, hi) for lo, hi in ranges)


def _pieces(ph: Phdr, avail: int, keep: Sequence[Range]) -> List[Tuple[int, int, str]]:
    """[p_vaddr, p_vaddr + p_memsz) cut in order into pieces: ``kept`` (copied), ``omitted``
    (dumped in the original, left out here), ``missing`` (claimed by p_filesz but past the end
    of a truncated original) and ``undumped`` (past p_filesz: the kernel did not dump it)."""
    dumped_end = ph.p_vaddr + avail
    pieces, at = [], ph.p_vaddr
    for lo, hi in keep:
        lo, hi = max(lo, ph.p_vaddr), min(hi, dumped_end)
        if lo >= hi:
            continue
        if lo > at:
            pieces.append((at, lo, "omitted"))
        pieces.append((lo, hi, "kept"))
        at = hi
    for end, kind in ((dumped_end, "omitted"), (ph.p_vaddr + ph.p_filesz, "missing"),
                      (ph.p_vaddr + ph.p_memsz, "undumped")):
        if end > at:
            pieces.append((at, end, kind))
            at = end
    return pieces


def _split(ph: Phdr, avail: int, keep: Sequence[Range], omitted: List[Range]):
    """The program headers that replace `ph`, each with its source offset (None: no bytes).
    Left-out and missing bytes get no program header, so a debugger says it cannot read
    them instead of showing zeros; what the kernel never dumped keeps its p_filesz 0 header
    (the file mapped there holds it). `omitted` gains the left-out ranges."""
    out = []
    for lo, hi, kind in _pieces(ph, avail, keep):
        if kind == "omitted":
            omitted.append((lo, hi))
        if kind in ("kept", "undumped"):
            kept = kind == "kept"
            out.append((Phdr(PT_LOAD, ph.p_flags, 0, lo, 0, (hi - lo) if kept else 0, hi - lo, ph.p_align),
                        ph.p_offset + (lo - ph.p_vaddr) if kept else None))
    return out


def _copy(fin, fout, offset: int, size: int, chunk: int = 1 << 20) -> None:
    fin.seek(offset)
    while size > 0:
        data = fin.read(min(chunk, size))
        if not data:
            raise CoreFormatError(f"core ends early at {offset:#x}")
        fout.write(data)
        size -= len(data)


def _layout(ehdr: bytes, phdrs: Sequence[Phdr], keep: Sequence[Range], size: int):
    """Program headers of the slim core with their offsets, what to copy where (a source
    offset, or the bytes of our COREDUMP note), and what the note records."""
    out: List[Tuple[Phdr, Union[int, bytes, None]]] = []
    omitted: List[Range] = []
    missing = 0
    for ph in phdrs:
        if ph.p_type == PT_LOAD:
            # Bytes past the end of a truncated core do not exist: never claim them.
            avail = max(0, min(ph.p_filesz, size - ph.p_offset))
            missing += ph.p_filesz - avail
            out.extend(_split(ph, avail, keep, omitted))
        else:
            out.append((ph, ph.p_offset if ph.p_filesz else None))
    info = SlimNote(size, sum(hi - lo for lo, hi in omitted), missing, tuple(omitted))
    note = encode_slim_note(info)
    at = max((i + 1 for i, (ph, _) in enumerate(out) if ph.p_type == PT_NOTE), default=0)
    out.insert(at, (Phdr(PT_NOTE, 0, 0, 0, 0, len(note), 0, 4), note))
    xnum = len(out) >= PN_XNUM
    offset = EHDR.size + PHDR.size * len(out)
    placed = []
    for ph, src in out:
        if ph.p_type == PT_NOTE:  # notes first, 4-aligned, as fs/binfmt_elf.c writes them
            offset = (offset + 3) & ~3
        elif ph.p_filesz:
            offset = (offset + PAGE - 1) & ~(PAGE - 1)
        placed.append((replace(ph, p_offset=offset if ph.p_filesz else 0), src))
        offset += ph.p_filesz if src is not None else 0
    return placed, xnum, offset, info


def _write(fin, fout, ehdr: bytes, placed, xnum: bool, end: int) -> None:
    fields = list(EHDR.unpack(ehdr))
    fields[5] = EHDR.size  # e_phoff
    fields[6] = end if xnum else 0  # e_shoff: only the PN_XNUM section header
    fields[10] = PN_XNUM if xnum else len(placed)  # e_phnum
    fields[11], fields[12], fields[13] = SHDR.size, 1 if xnum else 0, 0  # e_shentsize, e_shnum, e_shstrndx
    fout.write(EHDR.pack(*fields))
    fout.write(b"".join(ph.pack() for ph, _ in placed))
    for ph, src in placed:
        if src is None or not ph.p_filesz:
            continue
        fout.write(b"\0" * (ph.p_offset - fout.tell()))
        if isinstance(src, bytes):
            fout.write(src)
        else:
            _copy(fin, fout, src, ph.p_filesz)
    if xnum:
        fout.write(SHDR.pack(0, 0, 0, 0, 0, 0, 0, len(placed), 0, 0))


def _check_paths(src: str, dst: str) -> None:
    """Refuse, before anything is written, an input slim cannot read or an output that is
    the input itself (the same inode, whatever the path or symlink that names it)."""
    from coredump.store.bundle import is_zstd

    if is_zstd(src):
        raise CoreFormatError(f"{src} is zstd-compressed: slim needs an uncompressed core "
                              "(decompress with `zstd -d`)")
    try:
        same = os.path.samefile(src, dst)
    except OSError:  # dst does not exist yet (or src does not: open_core says so)
        same = False
    if same:
        raise StorageError(f"{dst} is the input core {src}: slim would replace the full core; "
                           "write it to another file")


def slim_core(src: str, dst: str, *, stack_cap: int = 8 << 20, max_pointer_pages: int = 4096,
              data_cap: int = 1 << 20) -> SlimResult:
    """Write the slim copy of the core `src` to `dst`, streaming (never read whole), through
    a temporary file in dst's directory renamed over `dst` at the end."""
    from coredump.elf.core import open_core

    _check_paths(src, dst)
    with open_core(src) as core:
        keep = keep_ranges(core, stack_cap, max_pointer_pages, data_cap)
        size = core.size
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(dst)),
                                   prefix=f".{os.path.basename(dst)}.tmp-")
        with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
            ehdr, phdrs = read_phdrs(fin, src)
            placed, xnum, end, info = _layout(ehdr, phdrs, keep, size)
            _write(fin, fout, ehdr, placed, xnum, end)
        os.replace(tmp, dst)
    except OSError as exc:
        raise StorageError(f"cannot write {dst}: {exc.strerror or exc}") from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    warnings = []
    if info.missing_bytes:
        warnings.append(f"{src} is truncated: its segments run {info.missing_bytes} bytes past the end of the file; "
                        "the slim core keeps what the file holds (a stack cut off is lost)")
    loads = [ph for ph, _ in placed if ph.p_type == PT_LOAD]
    return SlimResult(src, dst, size, os.path.getsize(dst), sum(p.p_type == PT_LOAD for p in phdrs),
                      sum(1 for p in loads if p.p_filesz), sum(p.p_filesz for p in loads),
                      info.omitted_bytes, info.missing_bytes, tuple(warnings))
