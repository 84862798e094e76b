"""
Symbol tables
=============

Function names for addresses from an image's ``.symtab``, else ``.dynsym`` (ELF gABI
"Symbol Table"), searched with bisect.
"""

from __future__ import annotations

import bisect
import struct

from coredump.elf.image import ElfImage
from coredump.memo import OwnerMemo
from coredump.symbols import cache

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Optional, Tuple

__all__ = ("SymbolTable", "find_symbol", "find_symbol_entry", "find_global_symbol", "find_module_symbol")

# ELF st_info types that name code.
_CODE_TYPES = ("STT_FUNC", "STT_GNU_IFUNC", "STT_NOTYPE")
# st_info & 0xf values of the types above as pyelftools names them: STT_NOTYPE and STT_FUNC.
# pyelftools calls STT_GNU_IFUNC (10) "STT_LOOS", so the tables so far have left it out.
_CODE_TYPE_VALUES = (0, 2)
_STT_GNU_IFUNC = 10  # gABI: STT_LOOS; GNU's indirect function
_ELF64_SYM = struct.Struct("<IBBHQQ")  # st_name, st_info, st_other, st_shndx, st_value, st_size
_ELF64_SHDR_FLAGS = struct.Struct("<8xQQ8xQ")  # sh_flags, sh_addr, sh_size of an Elf64_Shdr
# Version of the cached (source, addresses, entries, code) tuple; bump when the rules below change.
_FORMAT = 4
# gABI sh_flags: a section of code the process maps.
SHF_ALLOC, SHF_EXECINSTR = 0x2, 0x4


class SymbolTable:
    """Sorted function symbols of one image, in the image's own (unrelocated) addresses."""

    def __init__(self, image: ElfImage):
        self._image = image
        kind = f"symtab.{_FORMAT}.{len(image.data)}"  # a stripped file and its debug file share a build-id
        key = cache.image_key(image)
        cached = cache.get(key, kind)
        if isinstance(cached, tuple) and len(cached) == 4 and len(cached[1]) == len(cached[2]):
            self.source, self._addrs, self._entries, self._code = cached
            return
        self._read(image)
        self._code: List[Tuple[int, int]] = _code_sections(image)
        cache.put(key, kind, (self.source, self._addrs, self._entries, self._code), wait=False)

    def _read(self, image: ElfImage) -> None:
        self.source: Optional[str] = None
        best = {}
        for name in (".symtab", ".dynsym"):
            try:
                if image._is_elf64le:
                    _read_elf64le(image, name, best)
                else:
                    sec = image.elf.get_section_by_name(name)
                    if sec is not None and sec["sh_type"] != "SHT_NOBITS" and hasattr(sec, "iter_symbols"):
                        for sym in sec.iter_symbols():
                            self._consider(best, sym)
            except Exception:
                pass
            if best:
                self.source = name
                break
        self._entries: List[Tuple[int, int, str]] = sorted(best.values())  # one entry per address
        self._addrs: List[int] = [e[0] for e in self._entries]

    @staticmethod
    def _consider(best: dict, sym) -> None:
        _keep(best, sym["st_info"]["type"] in _CODE_TYPES, sym["st_shndx"] == "SHN_UNDEF", sym.name,
              sym["st_value"], sym["st_size"])

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, address: int) -> Optional[Tuple[str, int]]:
        """(name, offset) of the function containing `address`, or None.

        A symbol with a size covers only [value, value+size); a size-0 symbol covers up to
        the next symbol (gdb's minimal-symbol rule) within the code section that holds it
        (its sh_addr + sh_size): past the last function of .text, or in a section of data
        (``_end``), no symbol names the address."""
        i = bisect.bisect_right(self._addrs, address) - 1
        for j in range(i, max(-1, i - 8), -1):
            start, size, name = self._entries[j]
            if size == 0 and j == i:
                return (name, address - start) if address < self._section_end(start) else None
            if start <= address < start + size:
                return name, address - start
        return None

    def function_range(self, address: int) -> Optional[Tuple[int, int]]:
        """[start, end) of the function symbol starting exactly at `address`, or None; a
        size-0 symbol ends where the next one starts (as ``lookup`` covers it)."""
        i = bisect.bisect_left(self._addrs, address)
        if i == len(self._addrs) or self._addrs[i] != address:
            return None
        start, size, _ = self._entries[i]
        if size:
            return start, start + size
        end = min(self._addrs[i + 1] if i + 1 < len(self._addrs) else 1 << 64, self._section_end(start))
        return (start, end) if start < end < 1 << 64 else None

    def _section_end(self, address: int) -> int:
        """The end of the code section holding `address`; unbounded where the file has no
        section headers (a core's ELF image read from memory), `address` itself where it
        lies in none of them."""
        if not self._code:
            return 1 << 64
        i = bisect.bisect_right(self._code, (address, 1 << 64)) - 1
        return self._code[i][1] if i >= 0 and address < self._code[i][1] else address

    def find_symbol(self, name: str) -> Optional[int]:
        """``find_symbol`` in this table's image."""
        return find_symbol(self._image, name)


def find_symbol(image: ElfImage, name: str) -> Optional[int]:
    """The address in `image` of the symbol `name` of any type (functions and data, such as
    glibc's GLIBC_PRIVATE ``__abort_msg``), or None when absent or undefined."""
    found = find_symbol_entry(image, name)
    return found[0] if found is not None else None


# Names looked up per image, remembered while the image lives (an image is one file's bytes,
# which do not change under it: open_image makes a new one for a changed file). Entry values
# and the tail-call search look the same few names up again and again (a call site's
# DW_AT_call_origin that is a declaration), each a linear scan of the tables.
MAX_REMEMBERED_NAMES = 4096  # per image: hostile DWARF may name many symbols; past it, scan again
_ENTRIES = OwnerMemo(MAX_REMEMBERED_NAMES)


def find_symbol_entry(image: ElfImage, name: str) -> Optional[Tuple[int, bool]]:
    """(st_value, whether it is an STT_GNU_IFUNC: its value is the resolver's address, not
    the function's) of the defined symbol `name`, or None. ELF64 LE files: a struct scan of
    ``.dynsym`` then ``.symtab``; others through pyelftools: ``.dynsym``'s hash table, else
    ``.symtab``, else ``.dynsym``."""
    return _ENTRIES.get(image, name, lambda: _find_symbol_entry(image, name))


def _find_symbol_entry(image: ElfImage, name: str) -> Optional[Tuple[int, bool]]:
    if image._is_elf64le:
        return _find_in_tables(image, name)
    elf = image.elf
    # .dynsym through its hash table first (ELF gABI "Hash Table", GNU's DT_GNU_HASH):
    # one bucket instead of a name map of every symbol.
    for hash_name in (".gnu.hash", ".hash"):
        sec = elf.get_section_by_name(hash_name)
        if sec is not None and hasattr(sec, "get_symbol"):
            try:
                sym = sec.get_symbol(name)
            except Exception:
                break
            if sym is not None and sym["st_shndx"] != "SHN_UNDEF" and sym["st_value"]:
                return sym["st_value"], _is_ifunc(sym)
            break
    for section in (".symtab", ".dynsym"):
        sec = elf.get_section_by_name(section)
        if sec is None or sec["sh_type"] == "SHT_NOBITS" or not hasattr(sec, "get_symbol_by_name"):
            continue
        try:
            found = next(((sym["st_value"], _is_ifunc(sym)) for sym in sec.get_symbol_by_name(name) or ()
                          if sym["st_shndx"] != "SHN_UNDEF" and sym["st_value"]), None)
        except Exception:
            continue
        if found:
            return found
    return None


def _is_ifunc(sym) -> bool:
    # pyelftools names STT_GNU_IFUNC (10, the first OS-specific type) STT_LOOS.
    return sym["st_info"]["type"] in ("STT_GNU_IFUNC", "STT_LOOS")


def _keep(best: dict, is_code: bool, undefined: bool, name: str, addr: int, size: int) -> None:
    """Among aliases at one address keep the name gdb shows: its minimal symbols are
    sorted by address then name (minsyms.c compare_minimal_symbols: strcmp, the order of
    the UTF-8 bytes, which is the order of the code points Python compares) and a lookup
    takes the last, so the greatest name wins (raise over gsignal, pause over __libc_pause).
    ``best``: address -> (address, size, name)."""
    if not is_code or undefined or not name:
        return
    # Mapping symbols ($x, $d on aarch64) and assembler locals name no function.
    if addr == 0 or name[0] == "$" or name.startswith(".L"):
        return
    name = name.split("@", 1)[0]
    cur = best.get(addr)
    best[addr] = (addr, size, name) if cur is None else (addr, max(size, cur[1]), max(name, cur[2]))


def _code_sections(image: ElfImage) -> List[Tuple[int, int]]:
    """[sh_addr, sh_addr + sh_size) of each SHF_ALLOC | SHF_EXECINSTR section, sorted; a
    separate debug file keeps these headers (as SHT_NOBITS) with the stripped file's
    addresses."""
    out = []
    try:
        for flags, addr, size in _section_flags(image):
            if flags & SHF_ALLOC and flags & SHF_EXECINSTR and size:
                out.append((addr, addr + size))
    except Exception:
        return []
    return sorted(out)


def _section_flags(image: ElfImage):
    """(sh_flags, sh_addr, sh_size) of each section header; ELF64 LE ones with struct
    (Elf64_Shdr: sh_flags at 8, sh_addr 16, sh_size 32), as fast as the symbols are read."""
    if not image._is_elf64le:
        return [(s["sh_flags"], s["sh_addr"], s["sh_size"]) for s in image.elf.iter_sections()]
    e_shoff, e_shentsize, data = image.ehdr.e_shoff, image.ehdr.e_shentsize, image.data
    count = image.ehdr.e_shnum if e_shoff and e_shentsize >= 64 else 0
    return [_ELF64_SHDR_FLAGS.unpack_from(data, e_shoff + i * e_shentsize) for i in range(count)
            if e_shoff + (i + 1) * e_shentsize <= len(data)]


def _read_elf64le(image: ElfImage, section: str, best: dict) -> None:
    """The Elf64_Sym entries (gABI "Symbol Table") of `section` read with struct, names from
    the string table its sh_link names: pyelftools builds a parsed object per symbol, 50 times
    slower, and an object per section header first. Nothing for a section that is no
    SHT_SYMTAB or SHT_DYNSYM with contents."""
    data = image.data
    info, strtab = image.get_section_info(section), image.get_section_info(image.section_link(section) or "")
    if info is None or strtab is None or info[3] not in ("SHT_SYMTAB", "SHT_DYNSYM") or strtab[3] == "SHT_NOBITS":
        return
    _, str_off, str_size, _ = strtab
    _, off, size, _ = info
    entsize = image.section_entsize(section) or _ELF64_SYM.size
    if entsize != _ELF64_SYM.size or off + size > len(data):
        sec = image.elf.get_section_by_name(section)  # pyelftools reads what struct does not
        for sym in sec.iter_symbols():
            SymbolTable._consider(best, sym)
        return
    strings = bytes(data[str_off:str_off + str_size])
    find = strings.find
    # _keep's rules, inline: a static libc has thousands of symbols, read on every cold run.
    for st_name, st_info, _, st_shndx, st_value, st_size in _ELF64_SYM.iter_unpack(data[off:off + size]):
        if (st_info & 0xF) not in _CODE_TYPE_VALUES or not st_shndx or not st_name or not st_value:
            continue
        end = find(b"\0", st_name)
        if end <= st_name or strings[st_name] in b"$." and strings.startswith((b"$", b".L"), st_name):
            continue  # no name, a mapping symbol or an assembler local
        # pyelftools' StringTableSection.get_string: UTF-8 with replacement characters.
        name = strings[st_name:end].decode("utf-8", "replace")
        if "@" in name:
            name = name.split("@", 1)[0]
        cur = best.get(st_value)
        best[st_value] = (st_value, st_size, name) if cur is None else \
            (st_value, max(st_size, cur[1]), max(name, cur[2]))


def _find_in_tables(image: ElfImage, name: str) -> Optional[Tuple[int, bool]]:
    """`find_symbol` for ELF64 little-endian files from the section headers read with struct
    (pyelftools' section name map parses every header and builds the hash tables: 10 ms on
    libc, more than the whole unwind): ``.dynsym``, then ``.symtab``, each with the string
    table its sh_link names."""
    for section in (".dynsym", ".symtab"):
        info, strtab = image.get_section_info(section), image.get_section_info(image.section_link(section) or "")
        if info is None or strtab is None or "SHT_NOBITS" in (info[3], strtab[3]):
            continue
        found = _scan_elf64le(image.data, info[1], info[2], strtab[1], strtab[2], name)
        if found:
            return found
    return None


def _scan_elf64le(data, off: int, size: int, str_off: int, str_size: int, name: str) -> Optional[Tuple[int, bool]]:
    """st_value of the defined symbol `name` in the Elf64_Sym table at [off, off+size), read
    with struct: the offsets where the string table holds `name` (a string may end another
    one: linkers share suffixes), then the symbols whose st_name is one of them."""
    strings = bytes(data[str_off:str_off + str_size])
    key = name.encode() + b"\0"
    offsets = set()
    at = strings.find(key)
    while at >= 0:
        offsets.add(at)
        at = strings.find(key, at + 1)
    if not offsets or off + size > len(data):
        return None
    for st_name, st_info, _, st_shndx, st_value, _ in _ELF64_SYM.iter_unpack(data[off:off + size - size % 24]):
        if st_name in offsets and st_shndx and st_value:
            return st_value, st_info & 0xF == _STT_GNU_IFUNC
    return None


def find_global_symbol(modules, name: str) -> Optional[int]:
    """gdb's lookup_minimal_symbol(name) over every objfile: the runtime address the first
    trusted module (in load order) that defines `name` gives it, in its file's symbols,
    then its debug file's. An STT_GNU_IFUNC names its resolver, not the function the call
    reached (the one the resolver chose at load time): None, as for a name nothing defines."""
    for mod in modules:
        found = find_module_symbol(mod, name)
        if found:
            return None if found[1] else found[0] + mod.bias
    return None


def find_module_symbol(mod, name: str) -> Optional[Tuple[int, bool]]:
    """``find_symbol_entry`` of `name` in a trusted module's file, else in its separate
    debug file (which keeps the whole .symtab a stripped file lost): one name looked up,
    not the module's symbol table built."""
    if not mod.trusted:
        return None
    for image in (mod.image, mod.debug_image):
        try:
            found = find_symbol_entry(image, name) if image is not None else None
        except Exception:  # noqa: BLE001 - an unreadable symbol table defines nothing
            found = None
        if found:
            return found
    return None
