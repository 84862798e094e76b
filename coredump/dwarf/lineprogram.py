"""
Line-number programs
====================

The decoder of one compile unit's DWARF line-number program (DWARF 5 §6.2): its header
(§6.2.4), its opcodes and the state machine that runs them (§6.2.5), giving the rows in
program order; ``coredump.dwarf.lines`` reduces them to a ``LineTable``.

Limits: a program that emits more than ``MAX_LINE_ROWS`` rows, or runs past the caller's
deadline, raises ``LineProgramTooLarge``.
"""

from __future__ import annotations

import bisect
import struct
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, List, Optional, Tuple
    Row = Tuple[int, int, int, bool, int, bool]  # address, file, line, is_stmt, discriminator, end_sequence

__all__ = ("LineProgram", "decode_line_program", "read_line_program", "run", "LineProgramTooLarge",
           "MAX_LINE_ROWS", "Row")

# Rows one line program may emit. gcc -O2 -g emits ~7 rows per line of code, so this is a
# CU of ~150,000 lines (sqlite3.c, the largest C file in common use, is ~250,000 lines with
# comments). It decodes in ~0.7 s here (0.8-1.5 million rows/s); rows and table peak at
# ~270 bytes a row, ~270 MB.
MAX_LINE_ROWS = 1_000_000
# Bytes of opcodes run between two checks of the row count and the deadline; and, when
# decoding up to an address only, between checks of the address.
_CHUNK = 1 << 16
_PAST_CHUNK = 1 << 10


class LineProgramTooLarge(Exception):
    """A line program past ``MAX_LINE_ROWS`` rows or past its deadline (not a ValueError:
    a caller that falls back to another decoder on malformed input must not on this)."""


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


# Standard opcodes (DWARF 5 Table 7.25) and extended opcodes (Table 7.26).
DW_LNS_copy, DW_LNS_advance_pc, DW_LNS_advance_line, DW_LNS_set_file = 1, 2, 3, 4
DW_LNS_negate_stmt, DW_LNS_const_add_pc, DW_LNS_fixed_advance_pc = 6, 8, 9
DW_LNE_end_sequence, DW_LNE_set_address, DW_LNE_define_file, DW_LNE_set_discriminator = 1, 2, 3, 4
# Line-number header entry content types (Table 7.27).
DW_LNCT_path, DW_LNCT_directory_index = 1, 2
# Attribute forms allowed in entry formats (§6.2.4.1, Table 7.6).
DW_FORM_block, DW_FORM_data2, DW_FORM_data4, DW_FORM_data8 = 0x09, 0x05, 0x06, 0x07
DW_FORM_string, DW_FORM_data1, DW_FORM_sdata, DW_FORM_strp, DW_FORM_udata = 0x08, 0x0B, 0x0D, 0x0E, 0x0F
DW_FORM_strx, DW_FORM_strp_sup, DW_FORM_data16, DW_FORM_line_strp = 0x1A, 0x1D, 0x1E, 0x1F
DW_FORM_strx1, DW_FORM_strx4, DW_FORM_GNU_strp_alt = 0x25, 0x28, 0x1F21
_FIXED = {DW_FORM_data1: 1, DW_FORM_data2: 2, DW_FORM_data4: 4, DW_FORM_data8: 8, DW_FORM_data16: 16,
          DW_FORM_strx1: 1, 0x26: 2, 0x27: 3, DW_FORM_strx4: 4}


class LineProgram:
    """One decoded line program: header file names and the rows it emits."""

    __slots__ = ("version", "dirs", "files", "rows")

    def __init__(self, version: int, dirs: List[str], files: List[Tuple[str, int]], rows: Optional[List[Row]]):
        self.version, self.dirs, self.files, self.rows = version, dirs, files, rows

    @classmethod
    def from_pyelftools(cls, lineprog) -> LineProgram:
        header = lineprog.header
        dirs = [_text(d) for d in header.get("include_directory", ())]
        rows = []
        for entry in lineprog.get_entries():
            st = entry.state
            if st is not None:
                rows.append((st.address, st.file, st.line, bool(st.is_stmt), st.discriminator,
                             bool(st.end_sequence)))
        # After decoding: DW_LNE_define_file appends to the header's list.
        files = [(_text(e.name), e.dir_index or 0) for e in header.get("file_entry", ())]
        return cls(header["version"], dirs, files, rows)


def _uleb(data, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _cstr(data: bytes, pos: int) -> Tuple[bytes, int]:
    end = data.index(b"\0", pos)
    return data[pos:end], end + 1


def _string_at(section, offset: int) -> Optional[bytes]:
    """The NUL-terminated string at `offset` of a string section (bytes or memoryview)."""
    if section is None or offset >= len(section):
        return None
    size = 256
    while True:
        chunk = bytes(section[offset:offset + size])
        end = chunk.find(b"\0")
        if end >= 0:
            return chunk[:end]
        if offset + size >= len(section):
            return None
        size *= 4


def decode_line_program(data, offset: int, debug_str=None, debug_line_str=None,
                        deadline: Optional[float] = None, sup_str=None) -> LineProgram:
    """Decode the line program at `offset` of a ``.debug_line`` section (`data`, bytes or a
    memoryview; DWARF 2 to 5, 32- or 64-bit format, little-endian). `debug_str` and
    `debug_line_str` resolve DW_FORM_strp and DW_FORM_line_strp names; `sup_str`, the
    supplementary file's ``.debug_str``, DW_FORM_strp_sup and DW_FORM_GNU_strp_alt ones. DW_LNE_set_address
    takes its operand's size from the opcode's length, so no address size is needed.
    Raises ValueError, IndexError or struct.error on malformed input, LineProgramTooLarge
    past ``MAX_LINE_ROWS`` rows or past `deadline` (a ``time.monotonic()``)."""
    program, prog, params = read_line_program(data, offset, debug_str, debug_line_str, sup_str)
    program.rows = _run(prog, program.files, params, deadline)
    return program


def read_line_program(data, offset: int, debug_str=None, debug_line_str=None,
                      sup_str=None) -> Tuple[LineProgram, bytes, tuple]:
    """The header of the line program at `offset` (arguments as ``decode_line_program``'s),
    without its rows: (a ``LineProgram`` whose rows are None, the opcodes, the state
    machine's parameters for ``run``)."""
    (unit_length,) = _U32.unpack_from(data, offset)
    pos = 4
    off_size = 4
    if unit_length == 0xFFFFFFFF:  # the 64-bit DWARF format (§7.4)
        (unit_length,) = _U64.unpack_from(data, offset + 4)
        pos, off_size = 12, 8
    end = pos + unit_length
    data = bytes(data[offset:offset + end])  # this unit only: indexing bytes is fastest
    if len(data) < end:
        raise ValueError("line table runs past the end of .debug_line")
    version, program_start, params, pos = _header(data, pos, off_size)
    dirs, files = _file_names(data, pos, version, (off_size, debug_str, debug_line_str, sup_str))
    return LineProgram(version, dirs, files, None), data[program_start:end], params


def run(prog: bytes, params, deadline: Optional[float] = None, start: int = 0,
        stop: Optional[int] = None, past: Optional[int] = None, files: Optional[list] = None) -> List[Row]:
    """The rows of the opcodes `prog[start:stop]` (whole sequences, §6.2.5.3: the state
    machine starts from its initial registers). DW_LNE_define_file entries go to `files`
    (none: the program's file list has them already, ``sequences.scan_sequences``). With
    `past`, for one sequence whose address never goes down: its rows up to address `past`."""
    part = prog if start == 0 and stop is None else prog[start:stop]
    rows = _run(part, files if files is not None else [], params, deadline, past)
    if past is not None and rows and rows[-1][0] > past:
        del rows[bisect.bisect_right(rows, (past, float("inf"))):]
    return rows


def _header(data: bytes, pos: int, off_size: int) -> Tuple[int, int, tuple, int]:
    """The header fields after unit_length (§6.2.4 items 2-12): (version, where the program
    starts, the state machine's parameters for ``_run``, where the directory table starts)."""
    (version,) = _U16.unpack_from(data, pos)
    pos += 2
    if not 2 <= version <= 5:
        raise ValueError(f"unsupported line table version {version}")
    if version >= 5:
        pos += 2  # address_size, segment_selector_size
    header_length = int.from_bytes(data[pos:pos + off_size], "little")
    pos += off_size
    program_start = pos + header_length
    min_inst, pos = data[pos], pos + 1
    max_ops = 1
    if version >= 4:
        max_ops, pos = data[pos] or 1, pos + 1
    default_is_stmt = bool(data[pos])
    line_base = data[pos + 1] - 256 if data[pos + 1] >= 128 else data[pos + 1]
    line_range, opcode_base = data[pos + 2], data[pos + 3]
    pos += 4
    std_lengths = bytes(data[pos:pos + opcode_base - 1])
    pos += opcode_base - 1
    if not line_range:
        raise ValueError("line_range is 0")
    params = (min_inst, max_ops, default_is_stmt, line_base, line_range, opcode_base, std_lengths)
    return version, program_start, params, pos


def _file_names(data: bytes, pos: int, version: int, strings) -> Tuple[List[str], List[Tuple[str, int]]]:
    """The include directories and file names (§6.2.4 items 13-20): DWARF 5's described
    entries, or DWARF 2-4's NUL-terminated lists."""
    if version >= 5:
        dir_entries, pos = _entries(data, pos, strings)
        file_entries, pos = _entries(data, pos, strings)
        dirs = [_text(e.get(DW_LNCT_path) or b"") for e in dir_entries]
        files = [(_text(e.get(DW_LNCT_path) or b""), e.get(DW_LNCT_directory_index) or 0) for e in file_entries]
        return dirs, files
    dirs, files = [], []
    while data[pos]:
        name, pos = _cstr(data, pos)
        dirs.append(_text(name))
    pos += 1
    while data[pos]:
        entry, pos = _file_entry(data, pos)
        files.append(entry)
    return dirs, files


def _file_entry(data, pos: int) -> Tuple[Tuple[str, int], int]:
    """A DWARF 2-4 file entry (and DW_LNE_define_file's operand): name, then ULEB128
    directory index, modification time and length (§6.2.4 item 20 in DWARF 4)."""
    name, pos = _cstr(data, pos)
    dir_index, pos = _uleb(data, pos)
    _, pos = _uleb(data, pos)
    _, pos = _uleb(data, pos)
    return (_text(name), dir_index), pos


def _entries(data, pos: int, strings) -> Tuple[List[Dict[int, object]], int]:
    """DWARF 5 directory or file-name entries: a format (content type, form pairs) then
    the entries (§6.2.4 items 14-20)."""
    count, pos = data[pos], pos + 1
    fmt = []
    for _ in range(count):
        content, pos = _uleb(data, pos)
        form, pos = _uleb(data, pos)
        fmt.append((content, form))
    n, pos = _uleb(data, pos)
    out = []
    for _ in range(n):
        entry: Dict[int, object] = {}
        for content, form in fmt:
            entry[content], pos = _form(data, pos, form, strings)
        out.append(entry)
    return out, pos


def _form(data, pos: int, form: int, strings):
    off_size, debug_str, debug_line_str, sup_str = strings
    if form == DW_FORM_line_strp or form == DW_FORM_strp:
        offset = int.from_bytes(data[pos:pos + off_size], "little")
        return _string_at(debug_line_str if form == DW_FORM_line_strp else debug_str, offset), pos + off_size
    if form == DW_FORM_string:
        return _cstr(data, pos)
    if form == DW_FORM_udata:
        return _uleb(data, pos)
    if form in _FIXED:
        size = _FIXED[form]
        value = int.from_bytes(data[pos:pos + size], "little")
        return (value if size < 16 and form < DW_FORM_strx1 else None), pos + size
    if form in (DW_FORM_strp_sup, DW_FORM_GNU_strp_alt):  # a supplementary file's string (None without it)
        return _string_at(sup_str, int.from_bytes(data[pos:pos + off_size], "little")), pos + off_size
    if form == DW_FORM_sdata:
        return _sleb(data, pos)
    if form == DW_FORM_block:
        size, pos = _uleb(data, pos)
        return None, pos + size
    if form == DW_FORM_strx:
        _, pos = _uleb(data, pos)
        return None, pos
    raise ValueError(f"unsupported form {form:#x} in a line table header")


def _sleb(data, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            if byte & 0x40:
                result -= 1 << shift
            return result, pos


def _run(prog: bytes, files: list, params, deadline: Optional[float] = None,
         past: Optional[int] = None) -> List[Row]:
    """Execute the opcodes of `prog` (§6.2.5): a tight loop over local variables, run a
    chunk of ``_CHUNK`` bytes at a time between checks of the limits; with `past`, also
    stopped after a chunk ends above that address (``run``)."""
    min_inst, max_ops, default_is_stmt, line_base, line_range, opcode_base, std_lengths = params
    rows: List[Row] = []
    emit = rows.append
    address, file, line, is_stmt, disc, op_index = 0, 1, 1, default_is_stmt, 0, 0
    const_add = min_inst * ((255 - opcode_base) // line_range)
    pos, n = 0, len(prog)
    chunk_end = 0
    chunk = _CHUNK if past is None else _PAST_CHUNK
    while pos < n:
        if pos >= chunk_end:  # an opcode may run past the chunk's end: the check waits for it
            if past is not None and address > past:
                break
            chunk_end = pos + chunk
            check_rows(len(rows), deadline)
        op = prog[pos]
        pos += 1
        if op >= opcode_base:  # special opcode (§6.2.5.1)
            adj = op - opcode_base
            if max_ops == 1:
                address += min_inst * (adj // line_range)
            else:
                adv = op_index + adj // line_range
                address += min_inst * (adv // max_ops)
                op_index = adv % max_ops
            line += line_base + adj % line_range
            emit((address, file, line, is_stmt, disc, False))
            disc = 0
        elif op == 0:  # extended opcode: one call per sequence or discriminator, off the hot path
            state = (address, file, line, is_stmt, disc, op_index)
            (address, file, line, is_stmt, disc, op_index), pos = _extended(prog, pos, state, files, emit,
                                                                            default_is_stmt)
        elif op == DW_LNS_copy:
            emit((address, file, line, is_stmt, disc, False))
            disc = 0
        elif op == DW_LNS_advance_pc:
            value, pos = _uleb(prog, pos)
            address += value * min_inst
        elif op == DW_LNS_advance_line:
            value, pos = _sleb(prog, pos)
            line += value
        elif op == DW_LNS_set_file:
            file, pos = _uleb(prog, pos)
        elif op == DW_LNS_negate_stmt:
            is_stmt = not is_stmt
        elif op == DW_LNS_const_add_pc:
            address += const_add
        elif op == DW_LNS_fixed_advance_pc:
            address += prog[pos] | prog[pos + 1] << 8
            pos += 2
            op_index = 0
        else:  # set_column, set_isa, and opcodes without state we keep: skip their operands
            for _ in range(std_lengths[op - 1]):
                _, pos = _uleb(prog, pos)
    check_rows(len(rows), None)
    return rows


def check_rows(count: int, deadline: Optional[float]) -> None:
    """Raise LineProgramTooLarge past ``MAX_LINE_ROWS`` rows or past `deadline`."""
    if count > MAX_LINE_ROWS:
        raise LineProgramTooLarge(f"more than {MAX_LINE_ROWS} rows")
    if deadline is not None and time.monotonic() > deadline:
        raise LineProgramTooLarge("past the deadline")


def _extended(prog: bytes, pos: int, state: tuple, files: list, emit, default_is_stmt: bool) -> Tuple[tuple, int]:
    """An extended opcode at `pos` (after its 0 byte): ULEB128 length, then the sub-opcode
    and its operands (§6.2.5.3). Returns the state machine's registers and the next opcode's
    position."""
    address, file, line, is_stmt, disc, op_index = state
    size, pos = _uleb(prog, pos)
    after = pos + size
    sub = prog[pos] if size else 0
    if sub == DW_LNE_end_sequence:
        emit((address, file, line, False, disc, True))  # as pyelftools records it
        return (0, 1, 1, default_is_stmt, 0, 0), after
    if sub == DW_LNE_set_address:
        return (int.from_bytes(prog[pos + 1:after], "little"), file, line, is_stmt, disc, 0), after
    if sub == DW_LNE_set_discriminator:
        disc = _uleb(prog, pos + 1)[0]
    elif sub == DW_LNE_define_file:
        files.append(_file_entry(prog, pos + 1)[0])
    return (address, file, line, is_stmt, disc, op_index), after


_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
