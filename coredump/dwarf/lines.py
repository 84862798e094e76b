"""
Line tables
===========

One compile unit's DWARF line table (DWARF 5 §6.2), reduced the way gdb's reader records
it, so that ``file:line`` for an address is the one gdb's ``bt`` prints; beside each file
name, the absolute path it names (gdb's ``symtab_to_fullname`` before it opens the file).

A table made by ``LineTable.lazy`` runs the state machine only over the sequence that
holds the address asked (``coredump.dwarf.sequences`` finds them), and only up to that
address on a first lookup: a frame needs a few rows of a program that may have 100,000.

Limits: a line program that emits more than ``MAX_LINE_ROWS`` rows, or runs past the
caller's deadline, raises ``LineProgramTooLarge`` (its CU then has no lines); a lazy
table's rows are counted when it is made, its first lookup in a sequence may still meet
the deadline. The program itself is decoded by ``coredump.dwarf.lineprogram``, whose
names are re-exported here.
"""

from __future__ import annotations

import bisect
import posixpath
from array import array

from coredump.dwarf.lineprogram import MAX_LINE_ROWS, LineProgram, LineProgramTooLarge, decode_line_program, run
from coredump.dwarf.sequences import Clusters, clusters, scan_sequences

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable, Dict, List, Optional, Tuple

__all__ = ("LineTable", "LineProgram", "decode_line_program", "LineProgramTooLarge", "MAX_LINE_ROWS")


# Times one sequence is decoded up to the address asked (from its start) before it is
# decoded whole: a second address past the first is decoded to the end.
_PARTIAL_DECODES = 1
# Opcodes of a program decoded whole at once: below this, finding its sequences first
# costs more than it saves.
SMALL_PROGRAM = 4096


class _Part:
    """The rows gdb keeps of some of a program's sequences (all of them, or one cluster's),
    per source file (gdb's "subfile"), each file's sorted by address."""

    __slots__ = ("subfiles", "index")

    def __init__(self, subfiles: Dict[str, List[Tuple[int, int, bool]]], ordered: bool = False):
        self.subfiles = subfiles
        if not ordered:
            for rows in subfiles.values():
                rows.sort(key=lambda r: (r[0], r[1] != 0))  # end markers first at one address
        self.index = [(name, [r[0] for r in rows], rows) for name, rows in subfiles.items()]


class LineTable:
    """Rows of one line program, grouped per source file (gdb's "subfile") and sorted.

    gdb (``lnp_state_machine::record_line`` in dwarf2/read.c) drops a non-statement row that
    switches file at an address that already has a statement row, and ends the previous file's run at the
    address of a file switch, which deletes that file's rows at the same address. Lookup then
    takes, per file, the last row at or below the address, and the file whose row is nearest.

    A table made by ``lazy`` runs the state machine on first lookup in a cluster of
    sequences (``coredump.dwarf.sequences``), and only over that cluster's opcodes.
    """

    def __init__(self, program: LineProgram, comp_dir: Optional[str] = None, cu_name: Optional[str] = None):
        self.version: int = program.version
        self.comp_dir = comp_dir
        self.cu_name = cu_name  # the compile unit's DW_AT_name: gdb's first subfile
        self._dirs = program.dirs
        self._files = program.files
        self._names: Dict[int, Optional[str]] = {}
        self._paths: Dict[str, Optional[str]] = {}  # a subfile's name -> its absolute path
        self._whole: Optional[_Part] = None
        self._clusters: Optional[Clusters] = None
        # cluster -> its rows, the address they go to, the times it was decoded
        self._parts: Dict[int, Tuple[_Part, float, int]] = {}
        self._prog: Optional[bytes] = None
        self._params: Optional[tuple] = None
        self._load: Optional[Callable[[object], bytes]] = None
        self.origin: object = None  # what the caller's loader reads the opcodes back from
        self.rows_decoded = 0  # rows the state machine ran to since (a bound tests check)
        if program.rows is not None:
            self._whole = _Part(self._record(program.rows))

    @classmethod
    def lazy(cls, program: LineProgram, prog: bytes, params: tuple, comp_dir: Optional[str] = None,
             cu_name: Optional[str] = None, deadline: Optional[float] = None, origin: object = None) -> LineTable:
        """The table of `program` (``lineprogram.read_line_program``: no rows yet), its
        opcodes `prog` and state-machine `params`, decoded a cluster at a time. Raises what
        ``decode_line_program`` raises on the same program, limits included."""
        table = cls(program, comp_dir, cu_name)
        table.origin = origin
        in_header = len(table._files)
        seqs = scan_sequences(prog, table._files, params, deadline) if len(prog) >= SMALL_PROGRAM else None
        if seqs is None:  # a small program, or one the pass cannot split: the whole of it now
            del table._files[in_header:]  # DW_LNE_define_file's entries, appended again as decoded
            table._whole = _Part(table._record(run(prog, params, deadline, files=table._files)))
        else:
            table._clusters, table._prog, table._params = clusters(seqs), prog, params
        return table

    @classmethod
    def from_pyelftools(cls, lineprog, comp_dir: Optional[str] = None, cu_name: Optional[str] = None) -> LineTable:
        """The table of a pyelftools ``LineProgram`` (the reference decoder, for tests)."""
        return cls(LineProgram.from_pyelftools(lineprog), comp_dir, cu_name)

    def to_data(self) -> tuple:
        """Plain data for the parse cache: a lazy table's clusters (a few arrays, cheap to
        write: its rows are decoded again from the file), else each file's sorted rows as
        three arrays, which pickle as raw bytes; ``from_data`` rebuilds the table."""
        head = (self.version, self._dirs, self._files, self.comp_dir, self.cu_name)
        if self._clusters is not None:
            return ("clusters", head, self._params, self._clusters.to_data(), self.origin)
        packed = {}
        for name, rows in self._whole.subfiles.items():
            try:
                packed[name] = (array("Q", [r[0] for r in rows]), array("q", [r[1] for r in rows]),
                                bytes(r[2] for r in rows))
            except OverflowError:  # a malformed program's address past 64 bits: keep the rows
                packed[name] = list(rows)
        return ("rows", head, packed, self._paths)

    @classmethod
    def from_data(cls, data: tuple, load: Optional[Callable[[object], bytes]] = None) -> LineTable:
        """The table `to_data` gave; `load(origin)` reads a lazy table's opcodes back (the
        ``prog`` of ``lineprogram.read_line_program``)."""
        shape, (version, dirs, files, comp_dir, cu_name) = data[0], data[1]
        table = cls(LineProgram(version, dirs, files, None), comp_dir, cu_name)
        if shape == "clusters":
            table._params, clustered, table.origin = data[2], data[3], data[4]
            table._clusters, table._load = Clusters.from_data(clustered), load
            return table
        subfiles = {}
        for name, value in data[2].items():
            subfiles[name] = value if isinstance(value, list) else list(zip(value[0], value[1], map(bool, value[2])))
        table._whole, table._paths = _Part(subfiles, ordered=True), data[3]
        return table

    def _part(self, address: int, deadline: Optional[float]) -> Optional[_Part]:
        """The rows that decide `address`: its cluster's (its sequence's up to the highest
        address asked so far, or all of them once ``_PARTIAL_DECODES`` did not do), or the
        whole program's."""
        if self._clusters is None:
            return self._whole
        i = self._clusters.find(address)
        if i is None:
            return None
        known = self._parts.get(i)
        if known is not None and address <= known[1]:
            return known[0]
        if self._prog is None:
            self._prog = self._load(self.origin)
        spans = self._clusters.spans[i]
        if spans is None:  # overlapping sequences: their rows are the whole program's
            if self._whole is None:
                rows = run(self._prog, self._params, deadline)
                self.rows_decoded += len(rows)
                self._whole = _Part(self._record(rows))
            part, upto, tries = self._whole, float("inf"), 0
        else:
            # A row above `address` changes no row at or below it (gdb's end markers go at
            # the address of the row that ends a run, and an address never goes down here).
            tries = known[2] + 1 if known is not None else 1
            upto = address if tries <= _PARTIAL_DECODES else float("inf")
            (start, stop), = spans
            rows = run(self._prog, self._params, deadline, start, stop, address if tries <= _PARTIAL_DECODES else None)
            self.rows_decoded += len(rows)
            part = _Part(self._record(rows), ordered=True)  # one sequence: its rows come in order
        self._parts[i] = (part, upto, tries)
        return part

    def _entry(self, index: int) -> Optional[Tuple[str, Optional[str], bool]]:
        """(name, include directory, whether the directory index is one the table has) of
        line-table file `index`; DWARF 5 §6.2.4.1: both 0-based, directory 0 the compilation
        directory as the producer spelled it; DWARF 4 §6.2.4: file 1 the first, directory 0
        none (DW_AT_comp_dir)."""
        v5 = self.version >= 5
        pos = index if v5 else index - 1
        if not 0 <= pos < len(self._files):
            return None
        name, dir_index = self._files[pos]
        dpos = dir_index if v5 else dir_index - 1
        if 0 <= dpos < len(self._dirs):
            return name, self._dirs[dpos], True
        return name, None, not v5 and dir_index == 0

    def file_name(self, index: int) -> Optional[str]:
        """The name gdb shows for line-table file `index` (DW_AT_call_file, DW_LNS_set_file),
        as gdb's ``dwarf2_start_subfile`` and ``start_subfile`` build it: the name under its
        include directory (in DWARF 5 directory 0 too: libc6-dbg's ``./nptl/pthread_kill.c``);
        an absolute name that is the compilation directory joined to the unit's own
        DW_AT_name is that name (gcc's ``abort_assert.c``)."""
        if index in self._names:
            return self._names[index]
        entry = self._entry(index)
        name = None
        if entry is not None:
            name, directory, _ = entry
            if directory is not None and not name.startswith("/"):
                name = posixpath.join(directory, name)
            cu_name = self.cu_name
            if name.startswith("/") and self.comp_dir and cu_name and not cu_name.startswith("/") \
                    and name == f"{self.comp_dir}/{cu_name}":
                name = cu_name
        self._names[index] = name
        return name

    def file_path(self, index: int) -> Optional[str]:
        """The full name of line-table file `index` as gdb's ``symtab_to_fullname`` gives it
        for a file not on this machine: the name ``file_name`` shows, under the compilation
        directory unless absolute (DW_AT_comp_dir; DWARF 5: else directory 0); normalized when
        absolute, as gdb's is once it finds the file; relative when the compilation directory
        is (libc6-dbg's ``./nptl/./nptl/pthread_kill.c``). None when the table names a
        directory it does not have, or says no directory for a relative name."""
        entry = self._entry(index)
        if entry is None or not entry[2]:
            return None
        name = self.file_name(index)
        if not name.startswith("/"):
            base = self.comp_dir or (self._dirs[0] if self.version >= 5 and self._dirs else None)
            if not base:
                return None
            name = f"{base}/{name}"  # gdb's concat (dirname, SLASH_STRING, filename)
        return posixpath.normpath(name) if name.startswith("/") else name

    def path_of(self, name: str) -> Optional[str]:
        """The absolute path of the file ``lookup`` named `name`, or None when unknown."""
        return self._paths.get(name)

    def _record(self, rows) -> Dict[str, List[Tuple[int, int, bool]]]:
        """Per subfile, the rows gdb keeps; `rows` are (address, file, line, is_stmt,
        discriminator, end_sequence) in program order (whole sequences)."""
        last_sub: Optional[str] = None
        last_line = 0
        last_addr: Optional[int] = None
        stmt_at_addr = False
        names = self._names
        subfiles: Dict[str, List[Tuple[int, int, bool]]] = {}
        last_file = -1
        sub = None
        for address, file, line, is_stmt, discriminator, end_sequence in rows:
            if end_sequence:
                _finish(subfiles, last_sub, address)
                last_sub, last_line, last_addr, stmt_at_addr = None, 0, None, False
                continue
            if address != last_addr:
                last_addr, stmt_at_addr = address, False
            if file != last_file:
                sub = (names[file] if file in names else self.file_name(file)) or "??"
                last_file = file
                if self._paths.get(sub) is None:
                    self._paths[sub] = self.file_path(file)
            changed = sub != last_sub
            ignore = (changed and not is_stmt and stmt_at_addr) or line == 0
            stmt_at_addr = stmt_at_addr or is_stmt
            if changed and not ignore:
                _finish(subfiles, last_sub, address)
            if not ignore:
                if changed or line != last_line or not discriminator:
                    rows_of = subfiles.get(sub)
                    if rows_of is None:
                        rows_of = subfiles[sub] = []
                    rows_of.append((address, line, is_stmt))
                last_sub, last_line = sub, line
        return subfiles

    def lookup(self, address: int, deadline: Optional[float] = None) -> Optional[Tuple[str, int]]:
        """(file, line) for `address`, or None where the table says nothing (gdb's
        ``find_pc_sect_line``: the nearest row at or below, preferring a statement row).
        A lazy table's first lookup in a cluster may raise LineProgramTooLarge past
        `deadline`."""
        part = self._part(address, deadline)
        return _nearest(part.index, address) if part is not None else None


def _finish(subfiles: Dict[str, List[Tuple[int, int, bool]]], sub: Optional[str], address: int) -> None:
    """An end marker (line 0) for `sub` at `address`; it replaces rows at that address
    (gdb's ``buildsym_compunit::record_line`` for line 0)."""
    if sub is None:
        return
    rows = subfiles.get(sub)
    last_line = None
    while rows:
        last_line = rows[-1][1]
        if rows[-1][0] != address:
            break
        rows.pop()
    if last_line:  # an end marker after nothing, or after a marker, is dropped
        rows.append((address, 0, True))


def _nearest(index, address: int) -> Optional[Tuple[str, int]]:
    """gdb's ``find_pc_sect_line`` over one part's files (``LineTable.lookup``)."""
    best: Optional[Tuple[int, str, int]] = None
    for name, addrs, rows in index:
        i = bisect.bisect_right(addrs, address) - 1
        if i < 0:
            continue
        row = rows[i]
        if not row[2]:
            # A non-statement row: a statement row at the same address wins.
            j = i
            while j > 0 and rows[j - 1][0] == row[0] and rows[j - 1][1] != 0 and not rows[j][2]:
                j -= 1
            if rows[j][2]:
                row = rows[j]
        if row[1] == 0:
            continue
        if best is None or row[0] > best[0]:
            best = (row[0], name, row[1])
    return (best[1], best[2]) if best else None

