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
