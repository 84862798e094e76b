"""
DWARF index
===========

Function names, inline frames and ``file:line`` (with the file's absolute path) for an
address from an image's DWARF (versions 2 to 5), parsing only the compile unit that covers
the address. The frames themselves (inline chain, names) are built by
``coredump.dwarf.inline``; ``SourceFrame`` and ``MAX_INLINE_DEPTH`` are re-exported.

Limits (``coredump.dwarf.limits``): a walk of a compile unit visits at most
``MAX_DIES_PER_WALK`` DIEs, an inline chain is at most ``MAX_INLINE_DEPTH`` deep, a line
program emits at most ``lineprogram.MAX_LINE_ROWS`` rows, and all lookups of an analysis share
its ``DwarfBudget`` of time. A limit that cuts in leaves the address to the symbol table
(a line-table cut: to DWARF names without lines) and adds one warning for the file.
"""

from __future__ import annotations

import bisect
import struct
import time

from coredump.dwarf.cache import call_sites_memo, entry_kind, frames_memo, supplementary_identity
from coredump.dwarf.callsites import FunctionCallSites, read_call_sites
from coredump.dwarf.dies import DieError, ancestors, collect_functions, unit_reader
from coredump.dwarf.inline import MAX_INLINE_DEPTH, SourceFrame, inline_chain, source_frames
from coredump.dwarf.limits import DwarfBudget, DwarfTooLarge
from coredump.dwarf.lineprogram import read_line_program
from coredump.dwarf.lines import LineProgramTooLarge, LineTable
from coredump.dwarf.ranges import die_ranges, entry_pc
from coredump.dwarf.sections import unit_bytes
from coredump.dwarf.supplementary import attach, string_value
from coredump.dwarf.units import CompileUnitIndex
from coredump.elf.image import ElfImage
from coredump.symbols import cache

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, List, Optional, Tuple

    from coredump.dwarf.ranges import Ranges

__all__ = ("SourceFrame", "DwarfIndex", "MAX_DIES_PER_WALK", "MAX_INLINE_DEPTH")

# DIEs one walk of a compile unit visits (its functions, or the scopes above one address).
# A top-level DIE costs ~28 us to parse and skip here and pyelftools keeps it (~1.7 KB), so
# this is ~2.8 s and ~170 MB: one huge CU cannot take the whole time budget. gcc -O2's CU
# DIE has ~2 children per function (a CU of ~50,000 functions); namespaces count members.
MAX_DIES_PER_WALK = 100_000



class _Unit:
    """What one compile unit yields, parsed on first use."""

    def __init__(self, cu):
        self.cu = cu
        self.lines: Optional[LineTable] = None
        self.lines_done = False
        self.functions: Optional[List[Tuple[int, int, int]]] = None  # (low, high, DIE offset)
        self.nested: Optional[List[Tuple[int, int, int]]] = None
        # Offsets of the CU DIE's children: their parent is no namespace or class, which
        # spares pyelftools' get_parent a walk of the CU for a DIE read by offset.
        self.top_level: frozenset = frozenset()
        self.top_sorted: Optional[List[int]] = None  # top_level in order, for dwarf.dies.ancestors
        self.frames: Dict[int, Tuple[SourceFrame, ...]] = {}
        self.call_sites: Dict[int, Optional[FunctionCallSites]] = {}  # by subprogram DIE offset
        # What a size limit (not time) cut from this CU: "functions", "functions.nested" or
        # "lines" -> the reason.
        self.cut: Dict[str, str] = {}
        self.malformed: Optional[str] = None  # why our DIE reader cannot walk this CU


_UNITS: Dict[Tuple[str, int], _Unit] = {}

# What the parse cache holds per compile unit; bump when the shape changes (a change of the
# rules that fill it is caught by dwarfcache.code_tag, part of every entry's name).
_LINES_KIND = "lines.5"  # LineTable.to_data
_FUNCS_KIND = "funcs.2"  # (ranges, top-level offsets)


class DwarfIndex:
    """The DWARF of one image (the module's file or its separate debug file).

    Addresses are the image's own (unrelocated) virtual addresses.
    """

    def __init__(self, image: ElfImage, budget: Optional[DwarfBudget] = None,
                 supplementary: Optional[ElfImage] = None):
        """`supplementary` is the dwz file `image` names (``coredump.dwarf.supplementary``):
        its identity is part of every cache key, as the names read depend on it."""
        self.image = image
        self.supplementary = supplementary
        self.budget = budget if budget is not None else DwarfBudget()
        self._deadline = float("inf")
        self._cuts = 0  # limits that cut in, so far: a lookup they cut is not memoized
        self._cache_key = cache.image_key(image)  # what names this file's entries (not its build-id alone)
        self._key = (self._cache_key or image.path, supplementary_identity(supplementary))
        self._dwarf = None
        self._units: Optional[CompileUnitIndex] = None
        self._memo = frames_memo(image, supplementary)
        self._call_memo = call_sites_memo(image, supplementary)
        self._abbrevs: dict = {}  # abbreviation tables read by dwarf.dies, by offset and unit shape
        self._readers: dict = {}  # CU offset -> dwarf.dies.UnitReader
        # (what, address) -> coredump.dwarf.frame_values' plan, this analysis's: the parse
        # cache's copy is read through a lookup per call and not at all with the cache off.
        self.plans: dict = {}

    @property
    def dwarfinfo(self):
        if self._dwarf is None:
            # Imported here: a warm analysis reads no DWARF, its frames come from the parse cache.
            from coredump.dwarf.dwarfinfo import dwarf_info

            # The supplementary file is ours to find (pyelftools would open the link's path as written).
            dwarf = dwarf_info(self.image)
            if self.supplementary is not None:
                attach(dwarf, self.supplementary)
            self._dwarf = dwarf
        return self._dwarf

    # ---- public ---------------------------------------------------------------------

    def find_frames(self, address: int) -> List[SourceFrame]:
        """Innermost first: one frame per DW_TAG_inlined_subroutine holding `address`
        (deepest first, ``inline=True``), then the DW_TAG_subprogram. Never raises."""
        hit = self._memo.get(address)
        if hit is not None:
            return [SourceFrame(*f) for f in hit]
        cuts, started = self._cuts, self._start()
        try:
            unit = self._unit_for(address)
            if unit is None:
                frames: Tuple[SourceFrame, ...] = ()
            elif address in unit.frames:
                frames = unit.frames[address]
            else:
                frames = tuple(self._frames_in(unit, address))
                if self._cuts == cuts:
                    unit.frames[address] = frames
        except DwarfTooLarge as exc:
            self._cut(exc.reason)
            return []
        except DieError as exc:
            self._cuts += 1
            self.budget.malformed(self.image.path, str(exc))
            return []
        except Exception:
            return []
        finally:
            self.budget.charge(started)
        if self._cuts != cuts:
            return list(frames)  # a limit cut this lookup: a later analysis tries again
        self._memo.add(address, tuple((f.function, f.linkage_name, f.file, f.line, f.inline, f.low_pc,
                                       f.path) for f in frames))
        return list(frames)

    def find_function(self, address: int) -> Optional[SourceFrame]:
        """The physical function's frame at `address` (the last of ``find_frames``)."""
        frames = self.find_frames(address)
        return frames[-1] if frames else None

    @property
    def cuts(self) -> int:
        """Limits that cut in so far: a lookup they cut is not memoized."""
        return self._cuts

    def find_scopes(self, address: int) -> list:
        """The DIEs of the source-level frames at `address`, innermost first as
        ``find_frames`` lists them: the DW_TAG_inlined_subroutine chain, then the
        DW_TAG_subprogram (for their variables, ``coredump.dwarf.variables``). Never raises."""
        started = self._start()
        try:
            unit = self._unit_for(address)
            sub = self._function_at(unit, address) if unit is not None else None
            if sub is None:
                return []
            chain = [sub] + inline_chain(sub, address, self._die_ranges, lambda count: self._visit(count, unit))
            return chain[::-1]
        except DwarfTooLarge as exc:
            self._cut(exc.reason)
            return []
        except Exception:
            return []
        finally:
            self.budget.charge(started)

    def find_line(self, address: int) -> Optional[Tuple[str, int]]:
        """(file, line) of the line-table row for `address`, or None."""
        def read():
            unit = self._unit_for(address)
            return self._line_at(self._lines(unit), address) if unit is not None else None
        return self._guarded(read)

    def find_call_sites(self, address: int) -> Optional[FunctionCallSites]:
        """The call sites of the function holding `address` (``coredump.dwarf.callsites``),
        or None where no DW_TAG_subprogram holds it. Never raises."""
        hit = self._call_memo.get(address)
        if hit is not None:
            return FunctionCallSites.from_data(hit) if hit else None
        cuts = self._cuts

        def read():
            unit = self._unit_for(address)
            sub = self._function_at(unit, address) if unit is not None else None
            if sub is None:
                return None
            if sub.offset not in unit.call_sites:
                unit.call_sites[sub.offset] = read_call_sites(self.dwarfinfo, sub,
                                                              lambda count: self._visit(count, unit))
            return unit.call_sites[sub.offset]
        found = self._guarded(read)
        if self._cuts == cuts:  # a lookup a limit cut is tried again by a later analysis
            self._call_memo.add(address, found.to_data() if found is not None else False)
        return found

    def _guarded(self, read):
        """`read()` on the budget's clock; None when a limit cuts it (one warning) or it fails."""
        started = self._start()
        try:
            return read()
        except DwarfTooLarge as exc:
            self._cut(exc.reason)
            return None
        except Exception:
            return None
        finally:
            self.budget.charge(started)

    # ---- limits ---------------------------------------------------------------------------

    def _start(self) -> float:
        """Start the budget's clock for one lookup: `_deadline` is when it runs out."""
        self._deadline = self.budget.deadline()
        return time.monotonic()

    def _visit(self, count: int, unit: Optional[_Unit] = None) -> None:
        """One more DIE (the `count`-th) of a walk of `unit`'s CU, or one more CU of a walk
        of them all: raise DwarfTooLarge past a limit."""
        if unit is not None and count > MAX_DIES_PER_WALK:
            raise DwarfTooLarge(f"CU at {unit.cu.cu_offset:#x} has more than {MAX_DIES_PER_WALK} DIEs")
        if time.monotonic() > self._deadline:
            raise DwarfTooLarge(self.budget.time_reason())

    def _cut(self, reason: str) -> None:
        self._cuts += 1
        self.budget.warn(self.image.path, reason)

    # ---- compile units ------------------------------------------------------------------

    def _unit_for(self, address: int) -> Optional[_Unit]:
        if self._units is None:
            self._units = CompileUnitIndex(self.dwarfinfo, self._visit)
        offset = self._units.cu_offset(address)
        if offset is None:
            return None
        key = (self._key, offset)
        unit = _UNITS.get(key)
        if unit is None:
            unit = _UNITS[key] = _Unit(self.dwarfinfo.get_CU_at(offset))
        return unit

    def _lines(self, unit: _Unit) -> Optional[LineTable]:
        if "lines" in unit.cut:
            self._cut(unit.cut["lines"])
        if not unit.lines_done:
            kind = self._kind(_LINES_KIND, unit)
            cached = cache.get(self._cache_key, kind)
            if cached is False or (isinstance(cached, tuple) and cached and cached[0] in ("clusters", "rows")):
                unit.lines = LineTable.from_data(cached, self._line_opcodes) if cached else None
            else:
                try:
                    unit.lines = self._read_lines(unit)
                except LineProgramTooLarge as exc:
                    if time.monotonic() > self._deadline:
                        raise DwarfTooLarge(self.budget.time_reason()) from None  # a later analysis retries
                    unit.cut["lines"] = f"line program of the CU at {unit.cu.cu_offset:#x} has {exc}"
                    self._cut(unit.cut["lines"])
                else:
                    cache.put(self._cache_key, kind, unit.lines.to_data() if unit.lines else False, wait=False)
            unit.lines_done = True
        return unit.lines

    def _read_lines(self, unit: _Unit) -> Optional[LineTable]:
        """The CU's line table, decoded by our own reader (pyelftools' is ~15 times slower),
        or by pyelftools where ours does not go (big-endian files)."""
        top = unit.cu.get_top_DIE()
        attr = top.attributes.get("DW_AT_stmt_list")
        dwarf = self.dwarfinfo
        if attr is None or dwarf.debug_line_sec is None:
            return None
        comp_dir = top.attributes.get("DW_AT_comp_dir")
        comp_dir = string_value(comp_dir) if comp_dir is not None else None
        cu_name = top.attributes.get("DW_AT_name")
        cu_name = string_value(cu_name) if cu_name is not None else None
        if dwarf.config.little_endian:
            try:
                sup = dwarf.supplementary_dwarfinfo
                # This CU's line program only: a compressed .debug_line is inflated that far.
                program, opcodes, params = read_line_program(
                    unit_bytes(dwarf.debug_line_sec, attr.value), 0, _buffer(dwarf.debug_str_sec),
                    _buffer(dwarf.debug_line_str_sec), _buffer(sup.debug_str_sec) if sup is not None else None)
                return LineTable.lazy(program, opcodes, params, comp_dir, cu_name, self._deadline, attr.value)
            except (ValueError, IndexError, struct.error):
                pass  # what ours cannot read (a form it does not know): pyelftools may
        lineprog = dwarf.line_program_for_CU(unit.cu)
        return LineTable.from_pyelftools(lineprog, comp_dir, cu_name) if lineprog is not None else None

    def _line_opcodes(self, stmt_list: int) -> bytes:
        """The opcodes of the line program at `stmt_list` (a cached lazy table's, read back)."""
        return read_line_program(unit_bytes(self.dwarfinfo.debug_line_sec, stmt_list), 0)[1]

    def _line_at(self, table: Optional[LineTable], address: int) -> Optional[Tuple[str, int]]:
        """`table`'s row for `address`; its cluster is decoded on this budget's clock."""
        if table is None:
            return None
        try:
            return table.lookup(address, self._deadline)
        except LineProgramTooLarge:  # the rows were counted when the table was made: time ran out
            raise DwarfTooLarge(self.budget.time_reason()) from None

    def _kind(self, kind: str, unit: _Unit) -> str:
        """A cache kind naming one CU of this file."""
        return entry_kind(kind, self.image, unit.cu.cu_offset, supplementary=self.supplementary)

    # ---- DIEs -----------------------------------------------------------------------------

    def _frames_in(self, unit: _Unit, address: int) -> List[SourceFrame]:
        table = row = None
        try:
            table = self._lines(unit)
            row = self._line_at(table, address)
        except DwarfTooLarge as exc:
            self._cut(exc.reason)  # the time ran out in the line program: names go on without lines
        except Exception:
            pass
        sub = self._function_at(unit, address)
        if sub is None:
            return []
        chain = [sub] + inline_chain(sub, address, self._die_ranges, lambda count: self._visit(count, unit))
        return source_frames(chain, row, table, self._entry_pc, self._is_top_level)

    def _function_at(self, unit: _Unit, address: int):
        if unit.functions is None:
            unit.functions, unit.top_level = self._cached_functions(unit, nested=False)
        found = self._search(unit, unit.functions, address)
        if found is None:
            if unit.nested is None:
                unit.nested = self._cached_functions(unit, nested=True)[0]
            found = self._search(unit, unit.nested, address)
        return found

    def _cached_functions(self, unit: _Unit, nested: bool) -> Tuple[List[Tuple[int, int, int]], frozenset]:
        """The functions among the CU DIE's children (or, with `nested`, inside its namespaces
        and classes) and the offsets of the CU DIE's children, through the parse cache (plain
        tuples). One walk finds both lists; both are cached."""
        walk = "functions" + (".nested" if nested else "")
        if walk in unit.cut:
            raise DwarfTooLarge(unit.cut[walk])
        if unit.malformed is not None:
            raise DieError(unit.malformed)
        kind = self._kind(_FUNCS_KIND + (".nested" if nested else ""), unit)
        found = cache.get(self._cache_key, kind)
        if isinstance(found, tuple) and len(found) == 2:
            return found
        top_level: list = []  # a miss, or an entry of another shape
        try:
            outer, inner = self._collect_functions(unit, top_level)
        except DwarfTooLarge as exc:
            if time.monotonic() <= self._deadline:
                unit.cut["functions"] = unit.cut["functions.nested"] = exc.reason  # the same CU stops there again
            raise
        except DieError as exc:
            unit.malformed = str(exc)
            raise
        both = {False: (outer, frozenset(top_level)), True: (inner, frozenset())}
        for which, value in both.items():
            cache.put(self._cache_key, self._kind(_FUNCS_KIND + (".nested" if which else ""), unit), value,
                      wait=False)
        if unit.nested is None:
            unit.nested = inner
        return both[nested]

    def _search(self, unit: _Unit, table: List[Tuple[int, int, int]], address: int):
        i = bisect.bisect_right(table, (address, float("inf"), 0))
        for low, high, offset in reversed(table[max(0, i - 64):i]):
            if low <= address < high:
                return unit.cu.get_DIE_from_refaddr(offset)
        return None

    def _collect_functions(self, unit: _Unit, top_level: list):
        """(subprograms among the CU DIE's children, those inside its namespaces and classes),
        by our DIE reader (``dwarf.dies.collect_functions``)."""
        return collect_functions(self.dwarfinfo, unit.cu, self._reader(unit.cu), top_level,
                                 lambda count: self._visit(count, unit))

    def _reader(self, cu):
        reader = self._readers.get(cu.cu_offset)
        if reader is None:
            reader = self._readers[cu.cu_offset] = unit_reader(self.dwarfinfo, cu, self._abbrevs)
        return reader

    def _link_parents(self, die) -> None:
        """Give `die` and the DIEs above it their parents, found by our DIE reader: pyelftools'
        get_parent would parse every DIE of the CU before `die` to find them."""
        cu = die.cu
        unit = _UNITS.get((self._key, cu.cu_offset))
        top: List[int] = []
        if unit is not None:
            if unit.top_sorted is None:
                unit.top_sorted = sorted(unit.top_level)
            top = unit.top_sorted
        if hasattr(cu, "link_parents"):  # ours (coredump.dwarf.compileunit): its get_parent walks so
            cu.top_level = top
            return
        try:
            chain = ancestors(self._reader(cu), cu.cu_die_offset - cu.cu_offset, die.offset - cu.cu_offset,
                              top, lambda: self._visit(0))
        except (DieError, DwarfTooLarge):
            return  # pyelftools' own search decides (and the caller's handler sees what it raises)
        if not chain:
            return
        dies = [cu.get_DIE_from_refaddr(cu.cu_offset + pos) for pos in chain] + [die]
        for parent, child in zip(dies, dies[1:]):
            child.set_parent(parent)

    def _die_ranges(self, die) -> Ranges:
        return die_ranges(self.dwarfinfo, die)

    def _entry_pc(self, die) -> Optional[int]:
        return entry_pc(self.dwarfinfo, die)

    def _is_top_level(self, die) -> bool:
        """Whether `die` is known to be a child of its CU DIE (from the walk of its CU's
        functions): no namespace or class above it qualifies its name."""
        if die.dwarfinfo is not self.dwarfinfo:
            return False  # a DIE of the supplementary file: its offsets are not this file's
        unit = _UNITS.get((self._key, die.cu.cu_offset))
        if unit is not None and die.offset in unit.top_level:
            return True
        self._link_parents(die)  # the caller asks for its parents next
        return False


def _buffer(section):
    """A section's bytes without a copy (pyelftools keeps each DWARF section in a BytesIO)."""
    return section.stream.getbuffer() if section is not None else None
