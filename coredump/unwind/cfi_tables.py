"""
CFI tables
==========

Finding the one FDE (and its CIE) that covers a pc in a module: through ``.eh_frame_hdr``'s
binary-search table, else through an index of ``.eh_frame`` or ``.debug_frame`` built once.
"""

from __future__ import annotations

import bisect
import struct

from coredump.dwarf.expr import ExpressionError, read_sleb128, read_uleb128
from coredump.elf.compressed import section_contents
from coredump.record import dataclass
from coredump.unwind.fde_cache import cached_ranges, store_ranges

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable, Dict, List, Optional, Tuple

__all__ = (
    "CfiSection", "Cie", "Fde", "EhFrameHdr", "FdeIndex", "ModuleTables", "read_encoded", "CfiFormatError",
)

MASK = (1 << 64) - 1

# LSB Core 5.0 §10.5 "DWARF Extensions": DW_EH_PE pointer encodings.
DW_EH_PE_absptr, DW_EH_PE_uleb128, DW_EH_PE_sleb128 = 0x00, 0x01, 0x09
DW_EH_PE_pcrel, DW_EH_PE_textrel, DW_EH_PE_datarel = 0x10, 0x20, 0x30
DW_EH_PE_funcrel, DW_EH_PE_aligned, DW_EH_PE_indirect, DW_EH_PE_omit = 0x40, 0x50, 0x80, 0xFF
_FORMATS = {0x00: "<Q", 0x02: "<H", 0x03: "<I", 0x04: "<Q", 0x0A: "<h", 0x0B: "<i", 0x0C: "<q"}


class CfiFormatError(Exception):
    """A CIE, FDE or search table that cannot be decoded."""


@dataclass
class CfiSection:
    """The bytes of ``.eh_frame``, ``.eh_frame_hdr`` or ``.debug_frame`` and the address
    its first byte is loaded at (pcrel pointers are relative to it)."""

    data: object
    vaddr: int
    is_eh: bool = True
    deref: Optional[Callable[[int], int]] = None  # for DW_EH_PE_indirect

    def __post_init__(self):
        self._cies: Dict[int, Cie] = {}

    def get_cie(self, offset: int) -> Cie:
        cie = self._cies.get(offset)
        if cie is None:
            cie = self._cies[offset] = _parse_cie(self, offset)
        return cie

    def header(self, offset: int):
        """(position of the CIE id / pointer, its value, position after it, end) or None
        at a zero terminator (DWARF 5 §6.4.1; LSB "The .eh_frame section")."""
        length, = struct.unpack_from("<I", self.data, offset)
        pos, wide = offset + 4, False
        if length == 0xFFFFFFFF:  # the 64-bit DWARF format
            length, = struct.unpack_from("<Q", self.data, pos)
            pos, wide = pos + 8, True
        if length == 0:
            return None
        end = pos + length
        if end > len(self.data):
            raise CfiFormatError(f"entry at {offset:#x} runs past the section")
        ident, = struct.unpack_from("<Q" if wide else "<I", self.data, pos)
        return pos, ident, pos + (8 if wide else 4), end

    def is_cie_id(self, ident: int) -> bool:
        # .eh_frame marks a CIE with id 0, .debug_frame with all ones.
        return ident == 0 if self.is_eh else ident in (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)

    def get_fde(self, offset: int) -> Fde:
        head = self.header(offset)
        if head is None:
            raise CfiFormatError(f"no FDE at {offset:#x}")
        id_pos, ident, pos, end = head
        if self.is_cie_id(ident):
            raise CfiFormatError(f"a CIE, not an FDE, at {offset:#x}")
        # .eh_frame: the pointer is relative to its own position; .debug_frame: a section offset.
        cie = self.get_cie(id_pos - ident if self.is_eh else ident)
        pc_begin, pos = read_encoded(self, pos, cie.fde_encoding)
        pc_range, pos = read_encoded(self, pos, cie.fde_encoding & 0x0F)
        if cie.has_z:
            size, pos = read_uleb128(self.data, pos)
            pos += size  # augmentation data: the LSDA pointer, not needed to unwind
        return Fde(offset, cie, pc_begin, pc_range, pos, end)


@dataclass(frozen=True)
class Cie:
    section: CfiSection
    offset: int
    version: int
    augmentation: str
    code_alignment_factor: int
    data_alignment_factor: int
    return_address_register: int
    fde_encoding: int
    has_z: bool
    signal: bool
    start: int
    end: int

    def read_pointer(self, data, pos: int):
        """The operand of DW_CFA_set_loc, in the FDE pointer encoding."""
        return read_encoded(self.section, pos, self.fde_encoding)


@dataclass(frozen=True)
class Fde:
    offset: int
    cie: Cie
    pc_begin: int
    pc_range: int
    start: int
    end: int

    def covers(self, pc: int) -> bool:
        return self.pc_begin <= pc < self.pc_begin + self.pc_range


def read_encoded(section: CfiSection, pos: int, enc: int, datarel: int = 0):
    """(value, next position) of a DW_EH_PE-encoded pointer at `pos` of `section`."""
    if enc == DW_EH_PE_omit:
        return None, pos
    start = pos
    if enc & 0x70 == DW_EH_PE_aligned:
        pos = start = (pos + 7) & ~7
    fmt = enc & 0x0F
    try:
        if fmt == DW_EH_PE_uleb128:
            value, pos = read_uleb128(section.data, pos)
        elif fmt == DW_EH_PE_sleb128:
            value, pos = read_sleb128(section.data, pos)
        elif fmt in _FORMATS:
            value, = struct.unpack_from(_FORMATS[fmt], section.data, pos)
            pos += struct.calcsize(_FORMATS[fmt])
        else:
            raise CfiFormatError(f"pointer format {fmt:#x}")
    except (struct.error, ExpressionError):
        raise CfiFormatError(f"truncated pointer at {pos:#x}") from None
    app = enc & 0x70
    if app == DW_EH_PE_pcrel:
        value += section.vaddr + start
    elif app == DW_EH_PE_datarel:
        value += datarel
    elif app not in (DW_EH_PE_absptr, DW_EH_PE_aligned):
        raise CfiFormatError(f"pointer application {app:#x} (textrel/funcrel) in CFI")
    value &= MASK
    if enc & DW_EH_PE_indirect:
        if section.deref is None:
            raise CfiFormatError("indirect pointer without memory")
        value = section.deref(value)
    return value, pos


def _parse_cie(section: CfiSection, offset: int) -> Cie:
    """DWARF 5 §6.4.1 CIE fields, with the GNU augmentations of LSB Core §10.6.1.1."""
    head = section.header(offset)
    if head is None or not section.is_cie_id(head[1]):
        raise CfiFormatError(f"no CIE at {offset:#x}")
    _, _, pos, end = head
    data = section.data
    try:
        version = data[pos]
        nul = bytes(data[pos + 1:end]).index(b"\0")
        aug = bytes(data[pos + 1:pos + 1 + nul]).decode("ascii", "replace")
        pos += 2 + nul
        if "eh" in aug:
            pos += 8  # an old GCC's exception-table pointer
        if version >= 4:
            pos += 2  # address_size, segment_selector_size
        caf, pos = read_uleb128(data, pos)
        daf, pos = read_sleb128(data, pos)
        if version == 1:
            ra, pos = data[pos], pos + 1
        else:
            ra, pos = read_uleb128(data, pos)
        fde_enc, signal, pos = _augmentation(section, pos, aug)
    except (IndexError, ValueError, ExpressionError):
        raise CfiFormatError(f"truncated CIE at {offset:#x}") from None
    return Cie(section, offset, version, aug, caf, daf, ra, fde_enc, aug.startswith("z"), signal, pos, end)


def _augmentation(section: CfiSection, pos: int, aug: str):
    """(FDE pointer encoding, signal frame?, position after the augmentation data) of a
    CIE whose augmentation data starts at `pos` (LSB Core §10.6.1.1)."""
    fde_enc, signal = DW_EH_PE_absptr, False
    if not aug.startswith("z"):
        if aug and aug != "eh":
            raise CfiFormatError(f"CIE augmentation {aug!r} without 'z' cannot be skipped")
        return fde_enc, signal, pos
    data = section.data
    size, pos = read_uleb128(data, pos)
    p = pos
    for ch in aug[1:]:
        if ch == "R":
            fde_enc, p = data[p], p + 1
        elif ch == "L":
            p += 1  # the LSDA encoding; the pointer itself is in each FDE
        elif ch == "P":
            enc, p = data[p], p + 1
            _, p = read_encoded(section, p, enc & ~DW_EH_PE_indirect)  # personality: skipped
        elif ch == "S":
            signal = True
        elif ch not in "BG":  # AArch64 BTI / MTE flags carry no data
            break
    return fde_enc, signal, pos + size


class EhFrameHdr:
    """LSB Core 5.0 §10.6.2 ".eh_frame_hdr": a sorted table of (initial location, FDE
    address), searched in place."""

    def __init__(self, hdr: CfiSection, eh_frame: Optional[CfiSection]):
        data = hdr.data
        if len(data) < 4 or data[0] != 1:
            raise CfiFormatError(".eh_frame_hdr version is not 1")
        ptr_enc, count_enc, self.table_enc = data[1], data[2], data[3]
        self.hdr = hdr
        eh_ptr, pos = read_encoded(hdr, 4, ptr_enc, hdr.vaddr)
        count, pos = read_encoded(hdr, pos, count_enc, hdr.vaddr)
        fmt = _FORMATS.get(self.table_enc & 0x0F)
        if count is None or fmt is None or self.table_enc == DW_EH_PE_omit:
            raise CfiFormatError(".eh_frame_hdr has no binary-search table")
        self.count, self.table, self.entry = count, pos, 2 * struct.calcsize(fmt)
        if pos + count * self.entry > len(data):
            raise CfiFormatError(".eh_frame_hdr table runs past the section")
        self.eh_frame_ptr = eh_ptr
        self.eh_frame = eh_frame

    def _entry(self, i: int) -> Tuple[int, int]:
        at = self.table + i * self.entry
        loc, after = read_encoded(self.hdr, at, self.table_enc, self.hdr.vaddr)
        fde, _ = read_encoded(self.hdr, after, self.table_enc, self.hdr.vaddr)
        return loc, fde

    def find(self, pc: int) -> Optional[Fde]:
        lo, hi = 0, self.count
        while lo < hi:  # the last entry whose initial location is <= pc
            mid = (lo + hi) // 2
            if self._entry(mid)[0] <= pc:
                lo = mid + 1
            else:
                hi = mid
        if lo == 0 or self.eh_frame is None:
            return None
        fde = self.eh_frame.get_fde(self._entry(lo - 1)[1] - self.eh_frame.vaddr)
        return fde if fde.covers(pc) else None


class FdeIndex:
    """Every FDE of an ``.eh_frame`` without a search table, or of a ``.debug_frame``,
    sorted by start address once (pyelftools' ``CallFrameInfo`` decodes all rows instead)."""

    def __init__(self, section: CfiSection, entries: Optional[List[Tuple[int, int, int]]] = None):
        self.section = section
        if entries is None:
            entries = _fde_ranges(section)
        self.starts = [e[0] for e in entries]
        self.entries = entries

    def find(self, pc: int) -> Optional[Fde]:
        i = bisect.bisect_right(self.starts, pc) - 1
        if i >= 0 and pc < self.entries[i][1]:
            return self.section.get_fde(self.entries[i][2])
        return None


def _fde_ranges(section: CfiSection) -> List[Tuple[int, int, int]]:
    """(pc_begin, pc_end, offset) of every FDE of `section` that covers code, sorted."""
    entries: List[Tuple[int, int, int]] = []
    offset = 0
    while offset + 4 <= len(section.data):
        head = section.header(offset)
        if head is None:
            if section.is_eh:
                break  # .eh_frame ends at a zero-length entry
            offset += 4
            continue
        if not section.is_cie_id(head[1]):
            try:
                pc_begin, pc_range = _fde_range(section, offset, head)
                if pc_range:
                    entries.append((pc_begin, pc_begin + pc_range, offset))
            except CfiFormatError:
                pass
        offset = head[3]
    entries.sort()
    return entries


# gcc's and clang's FDE pointer encoding on every Linux target: pcrel | sdata4.
_PCREL_SDATA4 = DW_EH_PE_pcrel | 0x0B


def _fde_range(section: CfiSection, offset: int, head) -> Tuple[int, int]:
    """(pc_begin, pc_range) of the FDE at `offset`, without building it: an ``.eh_frame``
    without a search table (static binaries) has thousands, read on every analysis."""
    id_pos, ident, pos, end = head
    if section.is_eh:
        cie = section.get_cie(id_pos - ident)
        # A one-byte augmentation length (a ULEB128 below 0x80) cannot be truncated.
        if cie.fde_encoding == _PCREL_SDATA4 and pos + 9 <= end and (not cie.has_z or section.data[pos + 8] < 0x80):
            # LSB "The .eh_frame section": PC Begin, then PC Range in the encoding's format
            pc_begin, pc_range = struct.unpack_from("<ii", section.data, pos)
            return (pc_begin + section.vaddr + pos) & MASK, pc_range & MASK
    fde = section.get_fde(offset)
    return fde.pc_begin, fde.pc_range


class ModuleTables:
    """The CFI sources of one module, opened lazily in order of preference:
    ``.eh_frame`` (through ``.eh_frame_hdr``), then ``.debug_frame`` of the file and of
    its separate debug file."""

    def __init__(self, image, debug_image=None):
        self.image = image
        self.debug_image = debug_image
        self._sources: Optional[list] = None

    def find_fde(self, pc: int) -> Optional[Tuple[Cie, Fde]]:
        if self._sources is None:
            self._sources = self._open()
        for source in self._sources:
            try:
                fde = source.find(pc)
            except (CfiFormatError, struct.error, IndexError):
                continue
            if fde is not None:
                return fde.cie, fde
        return None

    def _open(self) -> list:
        sources: list = []
        eh_frame = _section(self.image, ".eh_frame", True)
        hdr = _section(self.image, ".eh_frame_hdr", True)
        try:
            if hdr is not None:
                table = EhFrameHdr(hdr, eh_frame)
                if eh_frame is None:  # no section headers: follow eh_frame_ptr
                    table.eh_frame = _section_at(self.image, table.eh_frame_ptr)
                sources.append(table)
            elif eh_frame is not None:
                sources.append(_eh_frame_index(self.image, eh_frame))
        except (CfiFormatError, struct.error):
            if eh_frame is not None:
                sources.append(_lazy_index(eh_frame))
        for img in (self.image, self.debug_image):
            debug_frame = _section(img, ".debug_frame", False) if img is not None else None
            if debug_frame is not None:
                sources.append(_lazy_index(debug_frame))
        return sources


def _eh_frame_index(image, eh_frame: CfiSection) -> FdeIndex:
    entries = cached_ranges(image, eh_frame)
    if entries is not None:
        return FdeIndex(eh_frame, entries)
    index = FdeIndex(eh_frame)
    store_ranges(image, eh_frame, index.entries)
    return index


class _lazy_index:
    """An ``FdeIndex`` built on its first lookup (a file's ``.debug_frame`` is only read
    when ``.eh_frame`` does not cover a pc)."""

    def __init__(self, section: CfiSection):
        self.section = section
        self.index: Optional[FdeIndex] = None

    def find(self, pc: int) -> Optional[Fde]:
        if self.index is None:
            try:
                self.index = FdeIndex(self.section)
            except (CfiFormatError, struct.error):
                self.section = CfiSection(b"", 0)
                self.index = FdeIndex(self.section)
        return self.index.find(pc)


def _section(image, name: str, is_eh: bool) -> Optional[CfiSection]:
    if is_eh:
        info, data = image.get_section_info(name), image.section_bytes(name)
        vaddr = info[0] if info is not None else 0
    else:
        # .debug_frame is not loaded (its addresses are absolute, sh_addr 0) and may be
        # compressed (SHF_COMPRESSED or .zdebug_frame: the Go linker's DWARF).
        data, vaddr = section_contents(image, name), 0
    if data is None or not len(data):
        return None
    return CfiSection(data, vaddr, is_eh, lambda addr: _read_vaddr(image, addr))


def _section_at(image, vaddr: int) -> Optional[CfiSection]:
    """The bytes from link-time address `vaddr` to the end of its PT_LOAD's file part."""
    for p_vaddr, _, p_offset, p_filesz, _ in image.load_segments:
        if p_vaddr <= vaddr < p_vaddr + p_filesz:
            view = memoryview(image.data)[p_offset + vaddr - p_vaddr:p_offset + p_filesz]
            return CfiSection(view, vaddr, True, lambda addr: _read_vaddr(image, addr))
    return None


def _read_vaddr(image, vaddr: int) -> int:
    """An 8-byte word of the image at link-time address `vaddr` (DW_EH_PE_indirect)."""
    for p_vaddr, _, p_offset, p_filesz, _ in image.load_segments:
        if p_vaddr <= vaddr and vaddr + 8 <= p_vaddr + p_filesz:
            return struct.unpack_from("<Q", image.data, p_offset + vaddr - p_vaddr)[0]
    raise CfiFormatError(f"indirect pointer {vaddr:#x} outside the file")
