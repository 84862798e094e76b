"""
Supplementary object files
==========================

The file that holds the DIEs and strings a debug file shares with others (``dwz -m``):
named by ``.gnu_debugaltlink`` (the GNU extension: a file name, then the supplementary
file's build-id) or ``.debug_sup`` (DWARF 5 §7.3.6), reached through
``DW_FORM_GNU_strp_alt``/``DW_FORM_GNU_ref_alt`` or ``DW_FORM_strp_sup``/``DW_FORM_ref_sup4``/
``DW_FORM_ref_sup8``, and imported by ``DW_TAG_imported_unit`` (DWARF 5 §3.1.2).

Found as gdb's ``dwarf2_get_dwz_file`` (dwarf2/dwz.c) finds it, after the bundle's
``files/<build-id>/``: the named path (a relative one from the debug file's directory),
the same ``.dwz/`` path under each debug directory, ``.build-id/xx/yyyy.debug`` by its
build-id, then debuginfod. Every candidate's build-id must be the one the link names.
pyelftools resolves the forms once the file is attached (``DWARFInfo.supplementary_dwarfinfo``).

Partial units hold what dwz found shared: types, declarations, abstract instances of inline
functions, never code (it moves no DIE with DW_AT_low_pc or DW_AT_ranges). So the search for
the function at an address walks the compile units only; the names, inline origins and
specifications in partial units are reached through the references that point at them
(DW_FORM_ref_addr within the file, the alt/sup forms into the supplementary file).
"""

from __future__ import annotations

import functools
import os
import posixpath

from coredump.dwarf.expr import ExpressionError, read_uleb128
from coredump.elf.image import ElfImage, open_image
from coredump.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Iterator, List, Optional, Tuple

__all__ = ("SupplementaryLink", "Supplementary", "read_link", "file_identity", "find_supplementary", "attach",
           "string_value", "ALT_STRING_FORMS", "ALT_REFERENCE_FORMS")

# DWARF 5 §7.5.6 (Table 7.6, attribute form encodings) and the GNU extensions dwz writes
# for DWARF 2-4.
ALT_STRING_FORMS = ("DW_FORM_strp_sup", "DW_FORM_GNU_strp_alt")
ALT_REFERENCE_FORMS = ("DW_FORM_ref_sup4", "DW_FORM_ref_sup8", "DW_FORM_GNU_ref_alt")

# A path and a build-id: a section larger than this is not a link (PATH_MAX plus a digest).
MAX_LINK_SIZE = 4096 + 64
# Hex digits of a supplementary file's identity: SHA-512's 64 bytes at most.
MAX_IDENTITY_HEX = 128
# Debug directories' parents tried for a ``/.dwz/`` path (gdb's dwz_search_other_debugdirs).
MAX_DWZ_PREFIXES = 16


@dataclass(frozen=True)
class SupplementaryLink:
    """What a debug file says of its supplementary file: the name as written, its build-id
    (hex; DWARF 5's sup_checksum, which dwz fills with the build-id, as gdb reads it) and the
    section that says it."""

    name: str
    build_id: Optional[str]
    section: str


@dataclass(frozen=True)
class Supplementary:
    """The outcome of the search for one debug file's supplementary file: the image found
    (``image``), or why there is none (``problem``, one line naming the file)."""

    link: SupplementaryLink
    image: Optional[ElfImage] = None
    problem: Optional[str] = None


def read_link(image: ElfImage) -> Optional[SupplementaryLink]:
    """The supplementary file `image` (an ElfImage) names, or None when it names none.
    ``.debug_sup`` of a supplementary file itself (is_supplementary = 1) names none."""
    raw = image.section_bytes(".gnu_debugaltlink")
    if raw is not None and 0 < len(raw) <= MAX_LINK_SIZE:
        raw = bytes(raw)
        nul = raw.find(b"\0")
        if nul > 0:
            return SupplementaryLink(_decode(raw[:nul]), raw[nul + 1:].hex() or None, ".gnu_debugaltlink")
    sup = _read_debug_sup(image)
    if sup is not None and not sup[0] and sup[1]:
        return SupplementaryLink(_decode(sup[1]), sup[2] or None, ".debug_sup")
    return None


def _read_debug_sup(image: ElfImage) -> Optional[Tuple[int, bytes, str]]:
    """(is_supplementary, sup_filename, sup_checksum as hex) of `image`'s ``.debug_sup``
    (DWARF 5 §7.3.6: version (uhalf, 5), is_supplementary (ubyte), sup_filename (string),
    sup_checksum_len (ULEB128), sup_checksum), or None when it has none or it is malformed."""
    raw = image.section_bytes(".debug_sup")
    if raw is None or not 4 <= len(raw) <= MAX_LINK_SIZE:
        return None
    raw = bytes(raw)
    nul = raw.find(b"\0", 3)
    if raw[0] != 5 or raw[1] != 0 or raw[2] > 1 or nul < 0:
        return None
    try:
        length, at = read_uleb128(raw, nul + 1)
    except ExpressionError:
        return None
    if at + length > len(raw):
        return None
    return raw[2], raw[3:nul], raw[at:at + length].hex()


def file_identity(image: ElfImage) -> Optional[str]:
    """What a link names a supplementary file by: its own ``.debug_sup`` sup_checksum (a
    DWARF 5 supplementary file, is_supplementary = 1; dwz --dwarf-5 writes no build-id note),
    else its GNU build-id (gdb's verify_id in dwarf2/dwz.c)."""
    sup = _read_debug_sup(image)
    identity = sup[2] if sup is not None and sup[0] and sup[2] else image.build_id
    # A checksum is a digest (dwz: a 20-byte build-id); a longer one names no file we store.
    return identity if identity is None or len(identity) <= MAX_IDENTITY_HEX else None


def _matches(link: SupplementaryLink, image: ElfImage) -> bool:
    return image.has_debug_info and (link.build_id is None or file_identity(image) == link.build_id)


def _decode(name: bytes) -> str:
    return name.decode("utf-8", "surrogateescape")


def iter_candidates(link: SupplementaryLink, debug_path: str, debug_dirs) -> Iterator[str]:
    """Paths where the file may be, in gdb's order: the name (relative to the debug file's
    directory, as resolved and as found), then its ``.dwz/...`` tail under each debug directory
    and that directory's parents' names (``/usr/lib/debug/.dwz/x`` under ``D``: ``D/.dwz/x``,
    ``D/debug/.dwz/x``, ``D/lib/debug/.dwz/x``, ...)."""
    name = link.name
    if "\0" in name:
        return
    if posixpath.isabs(name):
        yield name
    else:
        # From the debug file itself (Fedora's .build-id entries are links to it), then from
        # the path it was found at, where ".." is the kernel's to resolve.
        yield posixpath.normpath(posixpath.join(posixpath.dirname(os.path.realpath(debug_path)), name))
        yield posixpath.join(posixpath.dirname(debug_path), name)
    at = name.find("/.dwz/")
    if at < 0:
        return
    parents = [p for p in name[:at].split("/") if p]
    tail = name[at + 1:]
    if ".." in tail.split("/"):
        return  # a tail that climbs out of the debug directory is no file of it
    for d in debug_dirs:
        for k in range(min(len(parents), MAX_DWZ_PREFIXES) + 1):
            yield posixpath.join(d, *parents[len(parents) - k:], tail)


def find_supplementary(image: ElfImage, finder) -> Optional[Supplementary]:
    """The supplementary file of the debug file `image`, or None when it needs none.

    `finder` is the analysis' ``FileFinder``: its bundle and ``.build-id`` lookups
    (``find_debug_by_build_id``), its debug directories and its debuginfod session."""
    link = read_link(image)
    if link is None:
        return None
    matches = functools.partial(_matches, link)
    wrong: List[Tuple[str, Optional[str]]] = []
    by_id = finder.find_debug_by_build_id(link.build_id, matches) if link.build_id else None
    if by_id is not None:
        return Supplementary(link, by_id)
    for path in iter_candidates(link, image.path, finder.debug_dirs()):
        cand = open_image(path)
        if cand is None or not cand.has_debug_info:
            continue
        if matches(cand):
            return Supplementary(link, cand)
        wrong.append((path, file_identity(cand)))
    fetched = finder.fetch_debuginfo(link.build_id, matches) if link.build_id else None
    if fetched is not None:
        return Supplementary(link, fetched)
    return Supplementary(link, None, _problem(link, wrong))


def _problem(link: SupplementaryLink, wrong: List[Tuple[str, Optional[str]]]) -> str:
    """One line per supplementary file, whichever debug files name it (the analysis joins
    equal warnings)."""
    want = f"build-id {link.build_id}" if link.build_id else "no build-id"
    if wrong:
        path, found = wrong[0]
        what = f"{path!r} has build-id {found or 'none'}, not {link.build_id}"
    else:
        what = f"{link.name!r} ({want}) not found"
    return (f"supplementary DWARF file ({link.section}) {what}: the DWARF of the debug files that "
            "name it is not used, their frames are named from the symbol table")


def attach(dwarfinfo, supplementary: ElfImage) -> None:
    """Resolve `dwarfinfo`'s alt/sup forms in the supplementary ElfImage `supplementary`:
    pyelftools reads them through ``supplementary_dwarfinfo`` (set before any DIE is read,
    as each DIE translates its values when it is parsed)."""
    from coredump.dwarf.dwarfinfo import dwarf_info

    dwarfinfo.supplementary_dwarfinfo = dwarf_info(supplementary)


def string_value(attr) -> Optional[str]:
    """A string attribute's text; None for a DW_FORM_strp_sup / DW_FORM_GNU_strp_alt offset
    that no supplementary file resolved (pyelftools then leaves the offset, an integer)."""
    value = attr.value
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if attr.form in ALT_STRING_FORMS and not isinstance(value, str):
        return None
    return str(value)
