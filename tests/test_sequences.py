"""Line tables decoded a cluster of sequences at a time (coredump.dwarf.sequences, LineTable.lazy)
against the whole-program decode (LineTable of decode_line_program) on every compile unit of
real binaries: the same (file, line, path) at every row address, the address before it and
addresses between rows."""

import os
import struct

import pytest

from coredump.dwarf import lines
from coredump.dwarf.lineprogram import decode_line_program, read_line_program
from coredump.dwarf.lines import LineTable
from coredump.elf.image import open_image
from tests import cores

elffile = pytest.importorskip("elftools.elf.elffile")

# ../shared/corpus beside the checkout (DESIGN.md, Tests); a worktree's checkout is one further down.
CORPUS = next((p for p in (cores.ROOT.parent / "shared" / "corpus", cores.ROOT.parents[1] / "shared" / "corpus")
               if p.is_dir()), None)
# Addresses asked of one compile unit (spread over its rows), and of them, how many each get
# a table of their own (the first lookup of a sequence decodes it up to the address only).
_PER_CU, _FRESH = 240, 6


@pytest.fixture(autouse=True)
def _every_program_by_sequences(monkeypatch):
    """Small programs too go by their sequences here (analyze decodes them whole at once)."""
    monkeypatch.setattr(lines, "SMALL_PROGRAM", 0)


def _addresses(rows):
    """Every row address, the byte before it and the middle of each gap, spread to _PER_CU."""
    addrs = sorted({r[0] for r in rows})
    out = set(addrs) | {a - 1 for a in addrs if a} | {(a + b) // 2 for a, b in zip(addrs, addrs[1:])}
    out = sorted(out)
    return out[:: max(1, len(out) // _PER_CU)] + out[-3:]


def _answer(table, address):
    hit = table.lookup(address)
    return hit, table.path_of(hit[0]) if hit else None


def _compare_cu(data, offset, strs, line_strs, where) -> bool:
    try:
        whole = decode_line_program(data, offset, strs, line_strs)
    except (ValueError, IndexError, struct.error):
        return False  # what our decoder leaves to pyelftools
    program, prog, params = read_line_program(data, offset, strs, line_strs)
    reference = LineTable(whole, "/comp", "cu.c")
    addresses = _addresses(whole.rows)
    expected = {a: _answer(reference, a) for a in addresses}
    down = LineTable.lazy(program, prog, params, "/comp", "cu.c")
    assert down._files == whole.files, where  # DW_LNE_define_file's entries too
    for address in reversed(addresses):  # each sequence first decoded up to its highest address asked
        assert _answer(down, address) == expected[address], (where, hex(address))
    up = LineTable.lazy(read_line_program(data, offset, strs, line_strs)[0], prog, params, "/comp", "cu.c")
    for address in addresses:  # then past it: the whole sequence
        assert _answer(up, address) == expected[address], (where, hex(address))
    cached = LineTable.from_data(up.to_data(), lambda origin: prog)
    for address in addresses[:: max(1, len(addresses) // _FRESH)]:
        fresh = LineTable.lazy(read_line_program(data, offset, strs, line_strs)[0], prog, params, "/comp", "cu.c")
        assert _answer(fresh, address) == expected[address], (where, hex(address))
        assert _answer(cached, address) == expected[address], (where, hex(address))
    return True


def _compare_file(path) -> int:
    """Compare every CU of `path`; returns how many were compared."""
    with open(path, "rb") as f:
        elf = elffile.ELFFile(f)
        if not elf.has_dwarf_info() or not elf.little_endian:
            return 0
        dwarf = elf.get_dwarf_info(relocate_dwarf_sections=False)
        if dwarf.debug_line_sec is None:
            return 0
        data = dwarf.debug_line_sec.stream.getvalue()
        strs = dwarf.debug_str_sec.stream.getvalue() if dwarf.debug_str_sec else None
        line_strs = dwarf.debug_line_str_sec.stream.getvalue() if dwarf.debug_line_str_sec else None
        offsets = sorted({cu.get_top_DIE().attributes["DW_AT_stmt_list"].value for cu in dwarf.iter_CUs()
                          if "DW_AT_stmt_list" in cu.get_top_DIE().attributes})
    return sum(_compare_cu(data, off, strs, line_strs, f"{path} line program at {off:#x}") for off in offsets)


def _elf_files(directory):
    for entry in sorted(directory.iterdir()) if directory.is_dir() else ():
        if entry.is_file():
            with open(entry, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    yield entry


@pytest.mark.parametrize("variant", ["O0", "O2", "static"])
def test_c_samples_every_cu(variant):
    cores.build_samples()
    assert sum(_compare_file(str(p)) for p in _elf_files(cores.BUILD / variant)) >= 10


def test_rust_samples_every_cu():
    from tests.rust_samples import build_rust_samples

    build = build_rust_samples()
    assert sum(_compare_file(str(p)) for p in _elf_files(build)) >= 10


def test_go_samples_every_cu():
    from tests.go_samples import build_go_samples

    build = build_go_samples()
    assert sum(_compare_file(str(p)) for p in _elf_files(build)) >= 10


def test_corpus_every_cu():
    if CORPUS is None:
        pytest.skip("no ../shared/corpus beside the checkout")
    files = [p for d in sorted(CORPUS.iterdir()) if d.is_dir() for p in _elf_files(d)]
    assert sum(_compare_file(str(p)) for p in files) >= 1


def test_libc_debug_file_every_cu():
    libc = open_image("/lib/x86_64-linux-gnu/libc.so.6") if os.path.exists("/lib/x86_64-linux-gnu/libc.so.6") \
        else None
    path = f"/usr/lib/debug/.build-id/{libc.build_id[:2]}/{libc.build_id[2:]}.debug" if libc and libc.build_id \
        else None
    if path is None or not os.path.exists(path):
        pytest.skip("libc's debug file is not installed (Debian: libc6-dbg)")
    assert _compare_file(path) >= 100


def _programs(path):
    """(header, opcodes, parameters, whole-program rows) of each line program of `path`."""
    with open(path, "rb") as f:
        dwarf = elffile.ELFFile(f).get_dwarf_info(relocate_dwarf_sections=False)
        data = dwarf.debug_line_sec.stream.getvalue()
        strs = dwarf.debug_str_sec.stream.getvalue() if dwarf.debug_str_sec else None
        line_strs = dwarf.debug_line_str_sec.stream.getvalue() if dwarf.debug_line_str_sec else None
        offsets = sorted({cu.get_top_DIE().attributes["DW_AT_stmt_list"].value for cu in dwarf.iter_CUs()
                          if "DW_AT_stmt_list" in cu.get_top_DIE().attributes})
    for off in offsets:
        yield read_line_program(data, off, strs, line_strs) + (decode_line_program(data, off, strs, line_strs).rows,)


def test_a_lookup_runs_the_state_machine_over_its_sequence_only():
    """In the Rust release sample's largest line program (libstd's, a sequence per function),
    one lookup decodes a few hundredths of the rows; a lookup at a long sequence's first row
    decodes fewer rows than the sequence has."""
    from tests.rust_samples import build_rust_samples

    path = build_rust_samples() / "rust_panic_release"
    if not path.exists():
        pytest.skip("no rust_panic_release sample")
    program, prog, params, rows = max(_programs(str(path)), key=lambda p: len(p[3]))
    table = LineTable.lazy(program, prog, params)
    # Each sequence's first row, but those of functions the linker discarded (all at 0).
    starts = [i for i, r in enumerate(rows) if (i == 0 or rows[i - 1][5]) and r[0] >= 0x1000]
    assert len(starts) > 50
    middle = rows[starts[len(starts) // 2] + 1][0]
    assert table.lookup(middle) is not None
    assert 0 < table.rows_decoded <= len(rows) // 20
    length, first = max((b - a, a) for a, b in zip(starts, starts[1:]) if not any(r[5] for r in rows[a:b - 1]))
    fresh = LineTable.lazy(program, prog, params)
    fresh.lookup(rows[first][0])
    assert 0 < fresh.rows_decoded < length


def _unit(program: bytes) -> bytes:
    """A DWARF 4 line-number program unit (§6.2.4) with one file, a.c, around `program`."""
    header = bytes([1, 1, 1, 0xFB, 14, 13]) + bytes([0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1]) + b"\0" + b"a.c\0\0\0\0\0"
    body = struct.pack("<HI", 4, len(header)) + header + program
    return struct.pack("<I", len(body)) + body


def _set_address(address: int) -> bytes:
    return b"\x00\x09\x02" + struct.pack("<Q", address)


_END = b"\x00\x01\x01"


def _same_or_both_fail(unit: bytes, where: str) -> None:
    """The lazy table answers as the whole decode at every address of interest, or both
    raise the same kind of error."""
    try:
        whole = decode_line_program(unit, 0)
    except (ValueError, IndexError, struct.error) as exc:
        with pytest.raises(type(exc)):
            program, prog, params = read_line_program(unit, 0)
            table = LineTable.lazy(program, prog, params)
            for address in range(0, 0x40):
                table.lookup(address)
        return
    reference = LineTable(whole)
    program, prog, params = read_line_program(unit, 0)
    table = LineTable.lazy(program, prog, params)
    for address in sorted({a for r in whole.rows for a in (r[0] - 1, r[0], r[0] + 1)} | set(range(0x40))):
        assert _answer(table, address) == _answer(reference, address), (where, hex(address))


def test_programs_the_pass_cannot_split_are_decoded_whole():
    """An address that goes down inside a sequence, rows no end_sequence ends, and two
    sequences over the same addresses answer as the whole decode does."""
    down = _set_address(0x20) + b"\x21\x21" + _set_address(0x10) + b"\x21\x03\x02\x21" + _END
    open_end = _set_address(0x10) + b"\x21\x21" + _END + _set_address(0x30) + b"\x21\x21"
    overlap = _set_address(0x10) + b"\x21\x30\x30" + _END + _set_address(0x12) + b"\x03\x07\x21\x21" + _END
    touching = _set_address(0x10) + b"\x21\x30" + _END + _set_address(0x13) + b"\x03\x07\x21\x21" + _END
    for name, program in (("down", down), ("open end", open_end), ("overlap", overlap), ("touching", touching)):
        _same_or_both_fail(_unit(program), name)
    program, prog, params = read_line_program(_unit(down), 0)
    assert LineTable.lazy(program, prog, params)._clusters is None  # decoded whole


def test_damaged_programs_fail_as_the_whole_decode_does():
    """Every truncation and 400 one-byte changes of a real program: the same answers, or the
    same kind of error (never a hang: each decode is bounded by the program's length)."""
    import random

    cores.build_samples()
    program, prog, params, rows = max(_programs(str(cores.BUILD / "O2" / "cxx_throw")), key=lambda p: len(p[1]))
    unit = _unit(prog[: 1 << 12])
    for cut in range(len(unit) - 60, len(unit), 3):
        _same_or_both_fail(struct.pack("<I", cut - 4) + unit[4:cut], f"cut {cut}")
    rng = random.Random(18)
    for _ in range(400):
        at = rng.randrange(len(unit) - len(prog[: 1 << 12]), len(unit))
        _same_or_both_fail(unit[:at] + bytes([rng.randrange(256)]) + unit[at + 1:], f"byte {at} changed")


def test_limits_keep_their_meaning(monkeypatch):
    """MAX_LINE_ROWS counts the rows the program emits, found by the pass before any row is
    decoded; a deadline already past stops it."""
    from coredump.dwarf import lineprogram
    from coredump.dwarf.lineprogram import LineProgramTooLarge

    unit = _unit(b"".join(_set_address(0x1000 * i) + b"\x21" * 50 + _END for i in range(1, 40)))
    rows = len(decode_line_program(unit, 0).rows)
    monkeypatch.setattr(lineprogram, "MAX_LINE_ROWS", rows)
    program, prog, params = read_line_program(unit, 0)
    assert LineTable.lazy(program, prog, params).lookup(0x1001) is not None
    monkeypatch.setattr(lineprogram, "MAX_LINE_ROWS", rows - 1)
    with pytest.raises(LineProgramTooLarge, match=f"more than {rows - 1} rows"):
        LineTable.lazy(*read_line_program(unit, 0))
    monkeypatch.undo()
    monkeypatch.setattr(lines, "SMALL_PROGRAM", 0)
    with pytest.raises(LineProgramTooLarge, match="deadline"):
        LineTable.lazy(*read_line_program(unit, 0), deadline=0.0)
