"""
Symbol tables
=============

Function names for addresses from an image's ``.symtab``, else ``.dynsym`` (ELF gABI
"Symbol Table"), searched with bisect.
"""

from __future__ import annotations

import bisect
from typing import List, Optional, Tuple

from coredump.symbols import cache
from coredump.symbols.image import ElfImage

__all__ = ("SymbolTable",)

# ELF st_info types that name code.
_CODE_TYPES = ("STT_FUNC", "STT_GNU_IFUNC", "STT_NOTYPE")
# Version of the cached (source, addresses, entries) triple; bump when the rules below change.
_FORMAT = 3


class SymbolTable:
    """Sorted function symbols of one image, in the image's own (unrelocated) addresses."""

    def __init__(self, image: ElfImage):
        self._image = image
        kind = f"symtab.{_FORMAT}.{len(image.data)}"  # a stripped file and its debug file share a build-id
        cached = cache.get(image.build_id, kind)
        if cached is not None:
            self.source, self._addrs, self._entries = cached
            return
        self._read(image)
        cache.put(image.build_id, kind, (self.source, self._addrs, self._entries))

    def _read(self, image: ElfImage) -> None:
        self.source: Optional[str] = None
        best = {}
        for name in (".symtab", ".dynsym"):
            sec = image.elf.get_section_by_name(name)
            if sec is None or sec["sh_type"] == "SHT_NOBITS" or not hasattr(sec, "iter_symbols"):
                continue
            try:
                for sym in sec.iter_symbols():
                    self._consider(best, sym)
            except Exception:
                pass
            if best:
                self.source = name
                break
        entries = sorted(best.values())
        self._addrs: List[int] = [e[0] for e in entries]
        self._entries: List[Tuple[int, int, str]] = [(e[0], e[1], e[3]) for e in entries]

    @staticmethod
    def _consider(best: dict, sym) -> None:
        """Among aliases at one address keep the name gdb shows: its minimal symbols are
        sorted by address then name (minsyms.c compare_minimal_symbols) and a lookup takes
        the last, so the greatest name wins (raise over gsignal, pause over __libc_pause)."""
        if sym["st_info"]["type"] not in _CODE_TYPES or sym["st_shndx"] == "SHN_UNDEF" or not sym.name:
            return
        addr = sym["st_value"]
        # Mapping symbols ($x, $d on aarch64) and assembler locals name no function.
        if addr == 0 or sym.name[0] == "$" or sym.name.startswith(".L"):
            return
        name = sym.name.split("@", 1)[0]
        size = sym["st_size"]
        cur = best.get(addr)
        if cur is None:
            best[addr] = (addr, size, name.encode(), name)
        else:
            best[addr] = (addr, max(size, cur[1]), *max((name.encode(), name), cur[2:]))

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, address: int) -> Optional[Tuple[str, int]]:
        """(name, offset) of the function containing `address`, or None.

        A symbol with a size covers only [value, value+size); a size-0 symbol covers up to
        the next symbol (gdb's minimal-symbol rule)."""
        i = bisect.bisect_right(self._addrs, address) - 1
        for j in range(i, max(-1, i - 8), -1):
            start, size, name = self._entries[j]
            if size == 0 and j == i:
                return name, address - start
            if start <= address < start + size:
                return name, address - start
        return None

    def find_symbol(self, name: str) -> Optional[int]:
        """The image address of the symbol `name` of any type (functions and data, such as
        glibc's GLIBC_PRIVATE ``__abort_msg``): from ``.dynsym`` through its hash table, else
        ``.symtab``, else a scan of ``.dynsym``; None when absent or undefined."""
        elf = self._image.elf
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
                    return sym["st_value"]
                break
        for section in (".symtab", ".dynsym"):
            sec = elf.get_section_by_name(section)
            if sec is None or sec["sh_type"] == "SHT_NOBITS" or not hasattr(sec, "get_symbol_by_name"):
                continue
            try:
                syms = sec.get_symbol_by_name(name) or ()
            except Exception:
                continue
            for sym in syms:
                if sym["st_shndx"] != "SHN_UNDEF" and sym["st_value"]:
                    return sym["st_value"]
        return None
