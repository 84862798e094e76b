"""
Source frames
=============

The source-level frames at one address of a function's DIE: the chain of
DW_TAG_inlined_subroutine scopes that hold it (DWARF 5 §3.3.8), each frame's ``file:line``,
and the name gdb shows for each (through DW_AT_abstract_origin and DW_AT_specification).

``coredump.dwarf.index`` finds the compile unit, the function and the line table;
this module turns them into ``SourceFrame`` values.
"""

from __future__ import annotations

from coredump.demangle import demangle
from coredump.dwarf.limits import DwarfTooLarge
from coredump.dwarf.supplementary import ALT_REFERENCE_FORMS, string_value
from coredump.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable, List, Optional, Tuple
    Ranges = List[Tuple[int, int]]

__all__ = ("SourceFrame", "MAX_INLINE_DEPTH", "inline_chain", "source_frames", "die_names")

# DW_TAG_inlined_subroutine nesting followed at one address. Real chains are tens deep
# (gdb shows every level, it has no cap); past this the chain is a generator's, and frames
# cut from its inner end would name the wrong function at the pc.
MAX_INLINE_DEPTH = 256

_SCOPE_TAGS = ("DW_TAG_lexical_block", "DW_TAG_inlined_subroutine", "DW_TAG_try_block",
               "DW_TAG_catch_block")
# Scopes whose name qualifies the names declared in them (DWARF 5 §3.2, §5.7).
_QUALIFIER_TAGS = ("DW_TAG_namespace", "DW_TAG_class_type", "DW_TAG_structure_type",
                   "DW_TAG_union_type", "DW_TAG_module", "DW_TAG_interface_type")


@dataclass(frozen=True)
class SourceFrame:
    """One source-level frame at an address: an inlined call (``inline``) or the function
    that holds the code. ``low_pc`` is the function's entry, when known; ``path`` is the
    absolute path of ``file`` (``file`` is the name gdb shows), when the DWARF says it."""

    function: Optional[str]
    linkage_name: Optional[str]
    file: Optional[str]
    line: Optional[int]
    inline: bool = False
    low_pc: Optional[int] = None
    path: Optional[str] = None


def inline_chain(sub, address: int, ranges: Callable[..., Ranges], visit: Callable[[int], None]) -> list:
    """The DW_TAG_inlined_subroutine DIEs under `sub` holding `address`, outermost first
    (elfutils' ``dwarf_getscopes``: descend into the child scope that holds the pc).
    `ranges(die)` gives a DIE's code ranges; `visit(count)` sees each DIE read and raises
    ``DwarfTooLarge`` past the walk's limits."""
    chain = []
    die = sub
    count = 0
    while True:
        inner = None
        for child in die.iter_children():
            count += 1
            visit(count)
            if child.tag not in _SCOPE_TAGS:
                continue
            child_ranges = ranges(child)
            if not child_ranges and child.tag == "DW_TAG_lexical_block" and child.has_children:
                child_ranges = [(address, address + 1)]  # a block without code ranges: look inside
            if any(low <= address < high for low, high in child_ranges):
                inner = child
                break
        if inner is None:
            break
        if inner.tag == "DW_TAG_inlined_subroutine":
            if len(chain) == MAX_INLINE_DEPTH:
                raise DwarfTooLarge(f"inline chain at {address:#x} in the CU at {sub.cu.cu_offset:#x} "
                                    f"is deeper than {MAX_INLINE_DEPTH}")
            chain.append(inner)
        die = inner
    return chain


def source_frames(chain: list, row: Optional[Tuple[str, int]], table, entry_pc: Callable[..., Optional[int]],
                  is_top_level: Callable[..., bool]) -> List[SourceFrame]:
    """Innermost first: one frame per DIE of `chain` (the subprogram, then its inline chain
    outermost first). The innermost frame's ``file:line`` is the line-table `row`; each outer
    one's is the DW_AT_call_file/DW_AT_call_line of the inlined call it makes (DWARF 5
    §3.3.8.1), named through the line `table`. `entry_pc(die)` is a subprogram's entry;
    `is_top_level(die)` says the DIE is a child of its CU DIE (``die_names``)."""
    frames: List[SourceFrame] = []
    file, line = row if row else (None, None)
    path = table.path_of(file) if row else None
    for die in reversed(chain):
        name, linkage = die_names(die, is_top_level)
        inline = die.tag == "DW_TAG_inlined_subroutine"
        low = None if inline else entry_pc(die)
        frames.append(SourceFrame(name, linkage, file, line, inline, low, path))
        if inline:
            call_file = _attr(die, "DW_AT_call_file")
            known = table is not None and call_file
            file = table.file_name(call_file) if known else None
            path = table.file_path(call_file) if known else None
            line = _attr(die, "DW_AT_call_line")
    return frames


def die_names(die, is_top_level: Callable[..., bool]) -> Tuple[Optional[str], Optional[str]]:
    """(display name, linkage name): the demangled DW_AT_linkage_name found through
    DW_AT_abstract_origin / DW_AT_specification (in C, where nothing demangles, the linkage
    name itself: glibc's hidden aliases), else DW_AT_name qualified by its
    enclosing namespaces and classes (none when `is_top_level` says the DIE that has the
    name is a child of its CU DIE: no parent to look up)."""
    name = linkage = None
    named = None
    cur = die
    for _ in range(16):
        attrs = cur.attributes
        if linkage is None:
            for key in ("DW_AT_linkage_name", "DW_AT_MIPS_linkage_name"):
                if key in attrs:
                    linkage = string_value(attrs[key])
                    break
        if name is None and "DW_AT_name" in attrs:
            name = string_value(attrs["DW_AT_name"])
            named = cur if name is not None else None
        ref = next((k for k in ("DW_AT_abstract_origin", "DW_AT_specification")
                    if k in attrs), None)
        if ref is None or (attrs[ref].form in ALT_REFERENCE_FORMS and not cur.dwarfinfo.supplementary_dwarfinfo):
            break  # a DIE of a supplementary file that is not there
        cur = cur.get_DIE_from_attribute(ref)
    # A Rust function is named as gdb's bt names it: DW_AT_name (rustc puts the generic
    # arguments there) under its namespaces ({impl#N} included), not the linkage name.
    if linkage is not None and not (_is_rust(die) and name is not None):
        shown = demangle(linkage)
        if shown:
            return shown, linkage
        if _is_c(die):
            return linkage, linkage  # gdb's physname of a C function is its linkage name: __GI_raise
    if name is not None and named is not None:
        if not is_top_level(named):
            name = _qualify(named, name)
        if _is_cxx(die) and name != "main" and not _has_parameters(cur):
            name += "()"  # gdb's physname of a C++ function with no linkage name
    return name or linkage, linkage


def _qualify(die, name: str) -> str:
    parts = [name]
    try:
        parent = die.get_parent()
        while parent is not None and parent.tag in _QUALIFIER_TAGS:
            pname = parent.attributes.get("DW_AT_name")
            text = string_value(pname) if pname is not None else "(anonymous namespace)"
            if text is None:
                break  # its name is in a supplementary file that is not there
            parts.append(text)
            parent = parent.get_parent()
    except Exception:
        pass
    return "::".join(reversed(parts))


def _is_cxx(die) -> bool:
    lang = die.cu.get_top_DIE().attributes.get("DW_AT_language")
    # DW_LANG_C_plus_plus, _03, _11, _14 (DWARF 5 Table 7.17)
    return lang is not None and lang.value in (0x4, 0x19, 0x1A, 0x21)


def _is_c(die) -> bool:
    lang = die.cu.get_top_DIE().attributes.get("DW_AT_language")
    # DW_LANG_C89, _C, _C99, _C11, _C17 (DWARF 5 Table 7.17)
    return lang is not None and lang.value in (0x1, 0x2, 0xC, 0x1D, 0x2C)


def _is_rust(die) -> bool:
    lang = die.cu.get_top_DIE().attributes.get("DW_AT_language")
    return lang is not None and lang.value == 0x1C  # DW_LANG_Rust (DWARF 5 Table 7.17)


def _has_parameters(die) -> bool:
    return any(c.tag in ("DW_TAG_formal_parameter", "DW_TAG_unspecified_parameters")
               for c in die.iter_children())


def _attr(die, name: str):
    a = die.attributes.get(name)
    return a.value if a is not None else None
