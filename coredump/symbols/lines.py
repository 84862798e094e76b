"""
Line tables
===========

One compile unit's DWARF line table (DWARF 5 §6.2), reduced the way gdb's reader records
it, so that ``file:line`` for an address is the one gdb's ``bt`` prints.
"""

from __future__ import annotations

import bisect
import posixpath
from typing import Dict, List, Optional, Tuple

__all__ = ("LineTable",)


class LineTable:
    """Rows of one line program, grouped per source file (gdb's "subfile") and sorted.

    gdb (``lnp_state_machine::record_line`` in dwarf2/read.c) drops a non-statement row that
    switches file at an address that already has a statement row, and ends the previous file's run at the
    address of a file switch, which deletes that file's rows at the same address. Lookup then
    takes, per file, the last row at or below the address, and the file whose row is nearest.
    """

    def __init__(self, lineprog):
        header = lineprog.header
        self.version: int = header["version"]
        self._dirs = [_text(d) for d in header.get("include_directory", ())]
        self._files = list(header.get("file_entry", ()))
        self._names: Dict[int, Optional[str]] = {}
        self._subfiles: Dict[str, List[Tuple[int, int, bool]]] = {}
        self._record(lineprog)
        self._index: List[Tuple[str, List[int], List[Tuple[int, int, bool]]]] = []
        for name, rows in self._subfiles.items():
            rows.sort(key=lambda r: (r[0], r[1] != 0))  # end markers first at one address
            self._index.append((name, [r[0] for r in rows], rows))

    def file_name(self, index: int) -> Optional[str]:
        """The name gdb shows for line-table file `index` (DW_AT_call_file, DW_LNS_set_file):
        the name as recorded, under its include directory unless that is the compilation
        directory (directory 0), as gdb's ``dwarf2_start_subfile`` builds it."""
        if index in self._names:
            return self._names[index]
        pos = index if self.version >= 5 else index - 1  # DWARF 5 §6.2.4: 0-based from v5
        name = None
        if 0 <= pos < len(self._files):
            entry = self._files[pos]
            name = _text(entry.name)
            dir_index = entry.dir_index
            dpos = dir_index if self.version >= 5 else dir_index - 1
            if dir_index and not name.startswith("/") and 0 <= dpos < len(self._dirs):
                name = posixpath.join(self._dirs[dpos], name)
        self._names[index] = name
        return name

    def _record(self, lineprog) -> None:
        last_sub: Optional[str] = None
        last_line = 0
        last_addr: Optional[int] = None
        stmt_at_addr = False
        for entry in lineprog.get_entries():
            st = entry.state
            if st is None:
                continue
            if st.end_sequence:
                self._finish(last_sub, st.address)
                last_sub, last_line, last_addr, stmt_at_addr = None, 0, None, False
                continue
            if st.address != last_addr:
                last_addr, stmt_at_addr = st.address, False
            sub = self.file_name(st.file) or "??"
            changed = sub != last_sub
            ignore = (changed and not st.is_stmt and stmt_at_addr) or st.line == 0
            stmt_at_addr = stmt_at_addr or bool(st.is_stmt)
            if changed and not ignore:
                self._finish(last_sub, st.address)
            if not ignore:
                if changed or st.line != last_line or not st.discriminator:
                    self._subfiles.setdefault(sub, []).append((st.address, st.line, bool(st.is_stmt)))
                last_sub, last_line = sub, st.line

    def _finish(self, sub: Optional[str], address: int) -> None:
        """An end marker (line 0) for `sub` at `address`; it replaces rows at that address
        (gdb's ``buildsym_compunit::record_line`` for line 0)."""
        if sub is None:
            return
        rows = self._subfiles.get(sub)
        last_line = None
        while rows:
            last_line = rows[-1][1]
            if rows[-1][0] != address:
                break
            rows.pop()
        if last_line:  # an end marker after nothing, or after a marker, is dropped
            rows.append((address, 0, True))

    def lookup(self, address: int) -> Optional[Tuple[str, int]]:
        """(file, line) for `address`, or None where the table says nothing (gdb's
        ``find_pc_sect_line``: the nearest row at or below, preferring a statement row)."""
        best: Optional[Tuple[int, str, int]] = None
        for name, addrs, rows in self._index:
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


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)
