"""
Line-program sequences
======================

The sequences of one line-number program (DWARF 5 §6.2.5.3: DW_LNE_end_sequence ends one
and resets every register), found by one pass that tracks the address register only, so
that a lookup runs the full state machine (``coredump.dwarf.lineprogram``) over the
sequences around its address and not over the whole program.

Sequences are grouped into *clusters*: a sequence alone, or sequences whose address ranges
overlap (a linker puts every discarded function's sequence at address 0). A lookup in a
cluster of one sequence needs its rows only: every row gdb's reader keeps for a file at
the end of a sequence is an end marker (``coredump.dwarf.lines``), so no other sequence's
row is nearer. A cluster of overlapping sequences, and a program this pass cannot split
(VLIW op_index, an address that goes down inside a sequence, rows after the last
end_sequence), are decoded whole, as before.

Limits: the pass counts the rows the program emits and checks the deadline as the full
decoder does, raising ``LineProgramTooLarge`` past ``lineprogram.MAX_LINE_ROWS``.
"""

from __future__ import annotations

import bisect
import re
from array import array

from coredump.dwarf import lineprogram
from coredump.dwarf.lineprogram import _file_entry, _uleb, check_rows

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Optional, Tuple
    Sequence = Tuple[int, int, int, int]  # lowest address, end address, first byte, byte after its end_sequence

__all__ = ("Clusters", "scan_sequences", "clusters")

# Standard opcodes whose operands the decoder reads itself (DWARF 5 Table 7.25), whatever
# standard_opcode_lengths says: the pass must step over the same bytes.
_ADVANCE_PC, _ADVANCE_LINE, _SET_FILE, _NEGATE_STMT, _CONST_ADD_PC, _FIXED_ADVANCE_PC = 2, 3, 4, 6, 8, 9


def scan_sequences(prog: bytes, files: list, params, deadline: Optional[float] = None) -> Optional[List[Sequence]]:
    """The sequences of `prog` in program order, or None when the program cannot be split
    (see the module's docstring). DW_LNE_define_file entries are appended to `files` as the
    full decoder appends them. Raises what the full decoder raises on the same bytes.

    Opcodes that move the address by their operand or end a sequence are read here one by
    one; the runs between them are matched by a regular expression (``_Runs``) and summed
    by ``bytes.translate``, not stepped through one opcode at a time."""
    min_inst, max_ops, _, _, _, opcode_base, std_lengths = params
    if max_ops != 1:
        return None  # VLIW op_index (§6.2.5.1): the full decoder alone
    runs = _runs(params)
    match, counted, advances, not_rows = runs.match, runs.counted, runs.advances, runs.not_rows
    seqs: List[Sequence] = []
    address = low = start = rows = seq_rows = 0
    pos, n = 0, len(prog)
    while pos < n:
        end = match(prog, pos).end()
        if end > pos:
            ops = counted(prog[pos:end])
            address += min_inst * sum(ops.translate(advances))
            rows += len(ops.translate(None, not_rows))
            check_rows(rows, deadline)
            pos = end
            if pos >= n:
                break
        op = prog[pos]
        pos += 1
        if op >= opcode_base or op == lineprogram.DW_LNS_copy:
            rows += 1
            address += runs.special[op]
        elif op == 0:
            size, pos = _uleb(prog, pos)
            after = pos + size
            sub = prog[pos] if size else 0
            if sub == lineprogram.DW_LNE_end_sequence:
                rows += 1
                seqs.append((low, address, start, after))
                address = low = 0
                start, seq_rows = after, rows
            elif sub == lineprogram.DW_LNE_set_address:
                value = int.from_bytes(prog[pos + 1:after], "little")
                if rows == seq_rows:
                    low = value  # no row yet: the sequence's rows start at or above it
                elif value < address:
                    return None  # the address goes down inside a sequence
                address = value
            elif sub == lineprogram.DW_LNE_set_discriminator:
                _uleb(prog, pos + 1)
            elif sub == lineprogram.DW_LNE_define_file:
                files.append(_file_entry(prog, pos + 1)[0])
            pos = after
        elif op == _ADVANCE_PC:
            value, pos = _uleb(prog, pos)
            address += value * min_inst
        elif op == _CONST_ADD_PC:
            address += runs.special[255]
        elif op == _FIXED_ADVANCE_PC:
            address += prog[pos] | prog[pos + 1] << 8
            pos += 2
        elif op == _ADVANCE_LINE or op == _SET_FILE:
            _, pos = _uleb(prog, pos)  # a SLEB128 is as long as a ULEB128 of the same bytes
        elif op != _NEGATE_STMT:
            for _ in range(std_lengths[op - 1]):
                _, pos = _uleb(prog, pos)
    check_rows(rows, None)
    if rows != seq_rows:
        return None  # rows no end_sequence ends: the whole table keeps them open
    return seqs


class _Runs:
    """For one header's parameters: `match` finds a run of opcodes that neither end a
    sequence nor move the address by an operand; `strip` leaves each one's opcode byte;
    `advances` maps it to its address advance in units of minimum_instruction_length
    (§6.2.5.1 special opcodes, DW_LNS_const_add_pc); `not_rows` are the bytes of opcodes
    that emit no row (all but special opcodes and DW_LNS_copy); `special[op]` is an
    opcode's advance in bytes, for the few read one by one."""

    def __init__(self, params):
        min_inst, _, _, _, line_range, opcode_base, std_lengths = params
        leb = rb"[\x80-\xff]*[\x00-\x7f]"
        single = set(range(max(opcode_base, 1), 256))  # special opcodes
        by_count: dict = {}  # standard opcodes by how many LEB128 operands they have
        for op in range(1, min(opcode_base, 256)):
            if op in (_ADVANCE_PC, _FIXED_ADVANCE_PC) or op - 1 >= len(std_lengths):
                continue  # read one by one (an opcode without a length: as the decoder fails)
            count = 0 if op in (lineprogram.DW_LNS_copy, _NEGATE_STMT, _CONST_ADD_PC) else \
                1 if op in (_ADVANCE_LINE, _SET_FILE) else std_lengths[op - 1]
            if count:
                by_count.setdefault(count, []).append(op)
            else:
                single.add(op)
        operands = [_class(ops) + b"(?:" + leb + b"){%d}" % count for count, ops in by_count.items()]
        # DW_LNE_set_discriminator whose operand ends where its length says (§6.2.5.3).
        operands.append(rb"\x00\x02\x04[\x00-\x7f]|\x00\x03\x04[\x80-\xff][\x00-\x7f]")
        tokens = [_class(sorted(single))] if single else []
        self.match = re.compile(b"(?:" + b"|".join(tokens + operands) + b")*+").match
        # A run with each opcode that has operands (and its operands) made one 0 byte:
        # only the opcodes that move the address or emit a row are left to count.
        operand = re.compile(b"|".join(operands)).sub
        self.counted = lambda run: operand(b"\x00", run)
        units = [0] * 256
        for op in range(max(opcode_base, 1), 256):
            units[op] = (op - opcode_base) // line_range
        if _CONST_ADD_PC < opcode_base:
            units[_CONST_ADD_PC] = (255 - opcode_base) // line_range
        self.advances = bytes(units)
        self.special = [min_inst * u for u in units]
        if lineprogram.DW_LNS_copy < opcode_base:
            self.special[lineprogram.DW_LNS_copy] = 0
        self.not_rows = bytes(op for op in range(256) if op < opcode_base and op != lineprogram.DW_LNS_copy)


def _class(ops) -> bytes:
    return b"[" + b"".join(re.escape(bytes([op])) for op in ops) + b"]"


_RUNS: dict = {}


def _runs(params) -> _Runs:
    runs = _RUNS.get(params)
    if runs is None:
        runs = _RUNS[params] = _Runs(params)
    return runs


class Clusters:
    """Clusters of sequences sorted by address: [lows[i], highs[i]) and the byte spans of
    their sequences in program order (None: decode the whole program)."""

    __slots__ = ("lows", "highs", "spans")

    def __init__(self, lows, highs, spans: List[Optional[Tuple[Tuple[int, int], ...]]]):
        self.lows, self.highs, self.spans = lows, highs, spans

    def find(self, address: int) -> Optional[int]:
        """The cluster holding `address`, or None where no sequence has rows."""
        i = bisect.bisect_right(self.lows, address) - 1
        return i if i >= 0 and address < self.highs[i] else None

    def to_data(self) -> tuple:
        return (self.lows, self.highs, self.spans)

    @classmethod
    def from_data(cls, data: tuple) -> Clusters:
        return cls(*data)


def clusters(seqs: List[Sequence]) -> Clusters:
    """Group `seqs` (``scan_sequences``) into clusters. A sequence without extent has no
    row but end markers: it answers no address and is left out."""
    order = sorted((s for s in seqs if s[1] > s[0]), key=lambda s: (s[0], s[1], s[2]))
    lows: List[int] = []
    highs: List[int] = []
    members: List[list] = []
    for seq in order:
        if members and seq[0] < highs[-1]:  # overlaps the cluster so far
            members[-1].append(seq)
            highs[-1] = max(highs[-1], seq[1])
        else:
            lows.append(seq[0])
            highs.append(seq[1])
            members.append([seq])
    spans = [((m[0][2], m[0][3]),) if len(m) == 1 else None for m in members]
    try:
        return Clusters(array("Q", lows), array("Q", highs), spans)
    except OverflowError:  # a malformed program's address past 64 bits
        return Clusters(lows, highs, spans)
