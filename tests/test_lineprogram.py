"""Our .debug_line decoder (coredump.dwarf.lineprogram) against pyelftools' on every
compile unit of real binaries."""

import os
import shutil
import struct
import subprocess
import sys
import time

import pytest

from coredump.dwarf import lineprogram
from coredump.dwarf.lineprogram import LineProgram, LineProgramTooLarge, decode_line_program
from coredump.dwarf.lines import LineTable
from tests import cores

elffile = pytest.importorskip("elftools.elf.elffile")


def _sections(path):
    """(pyelftools DWARFInfo, the open file) of `path`."""
    f = open(path, "rb")
    return elffile.ELFFile(f).get_dwarf_info(relocate_dwarf_sections=False), f


def _buffer(section):
    return section.stream.getbuffer() if section is not None else None


def _compare_every_cu(path, limit=None):
    """Decode each CU's line program both ways; returns how many CUs were compared."""
    dwarf, f = _sections(path)
    try:
        if dwarf.debug_line_sec is None:
            pytest.skip(f"{path} has no .debug_line")
        data = _buffer(dwarf.debug_line_sec)
        strs, line_strs = _buffer(dwarf.debug_str_sec), _buffer(dwarf.debug_line_str_sec)
        count = 0
        for cu in dwarf.iter_CUs():
            attr = cu.get_top_DIE().attributes.get("DW_AT_stmt_list")
            if attr is None:
                continue
            ref = LineProgram.from_pyelftools(dwarf.line_program_for_CU(cu))
            ours = decode_line_program(data, attr.value, strs, line_strs)
            where = f"{path} CU at {cu.cu_offset:#x}"
            assert (ours.version, ours.dirs, ours.files) == (ref.version, ref.dirs, ref.files), where
            assert ours.rows == ref.rows, where
            # The table built from either gives the same answers at every row address.
            mine, theirs = LineTable(ours), LineTable(ref)
            for address in {r[0] for r in ref.rows[:: max(1, len(ref.rows) // 200)]}:
                assert mine.lookup(address) == theirs.lookup(address), (where, hex(address))
            count += 1
            if limit and count >= limit:
                break
        return count
    finally:
        del data, strs, line_strs  # release the exported buffers before pyelftools' streams close
        f.close()


@pytest.mark.parametrize("variant", ["O0", "O2", "static"])
def test_c_samples_every_cu(variant):
    cores.build_samples()
    paths = sorted(p for p in (cores.BUILD / variant).iterdir() if p.is_file() and os.access(p, os.X_OK))
    assert paths
    assert sum(_compare_every_cu(str(p)) for p in paths[:6]) >= 6


def test_libcrash_shared_library():
    cores.build_samples()
    assert _compare_every_cu(str(cores.BUILD / "O2" / "libcrash.so")) >= 1


def _python_with_lines():
    """The running Python's own shared library or executable, when it carries .debug_line."""
    import sysconfig

    candidates = [os.path.realpath(sys.executable)]
    libdir, ldlib = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY")
    if libdir and ldlib:
        candidates.insert(0, os.path.join(libdir, ldlib))
    for path in candidates:
        if os.path.isfile(path):
            dwarf, f = _sections(path)
            has = dwarf.debug_line_sec is not None
            f.close()
            if has:
                return path
    return None


def test_python_interpreter_every_cu():
    path = _python_with_lines()
    if path is None:
        pytest.skip("this Python carries no .debug_line")
    assert _compare_every_cu(path, limit=40) >= 1


def test_libstdcxx_if_it_has_lines():
    out = subprocess.run(["g++", "-print-file-name=libstdc++.so.6"], capture_output=True, text=True) \
        if shutil.which("g++") else None
    path = os.path.realpath(out.stdout.strip()) if out and out.returncode == 0 else ""
    if not os.path.isfile(path):
        pytest.skip("no libstdc++ found")
    dwarf, f = _sections(path)
    has = dwarf.debug_line_sec is not None
    f.close()
    if not has:
        pytest.skip("libstdc++ here carries no .debug_line")
    assert _compare_every_cu(path, limit=40) >= 1


def _build(tmp_path, flags, name):
    if shutil.which("gcc") is None:
        pytest.skip("no gcc")
    (tmp_path / "inl.h").write_text("static inline int twice(int x) { return x * 2; }\n")
    (tmp_path / "prog.c").write_text(
        '#include "inl.h"\nint g;\nint main(int argc, char **argv) {\n'
        "  for (int i = 0; i < argc; i++) g += twice(i) + (i & 1 ? 3 : 5);\n  return g;\n}\n")
    out = tmp_path / name
    done = subprocess.run(["gcc", "-O2", *flags, "-o", str(out), "prog.c"], cwd=tmp_path,
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"gcc cannot build with {flags}: {done.stderr.strip()[:200]}")
    return str(out)


@pytest.mark.parametrize("version", ["-gdwarf-2", "-gdwarf-3", "-gdwarf-4", "-gdwarf-5"])
def test_dwarf_versions(tmp_path, version):
    """Each DWARF version's header (2-4: string lists; 5: entry formats), on a program with
    code inlined from a header (file switches, discriminators)."""
    assert _compare_every_cu(_build(tmp_path, [version], "prog")) >= 1


def _ours(path):
    dwarf, f = _sections(path)
    try:
        out = []
        for cu in dwarf.iter_CUs():
            offset = cu.get_top_DIE().attributes["DW_AT_stmt_list"].value
            p = decode_line_program(_buffer(dwarf.debug_line_sec), offset, _buffer(dwarf.debug_str_sec),
                                    _buffer(dwarf.debug_line_str_sec))
            out.append((p.version, p.dirs, p.files, p.rows))
        return out
    finally:
        f.close()


@pytest.mark.parametrize("version", ["-gdwarf-4", "-gdwarf-5"])
def test_dwarf64_debug_info(tmp_path, version):
    """-gdwarf64 makes .debug_info 64-bit while gas may keep .debug_line 32-bit (pyelftools
    0.33 then reads the line header with the CU's offset size and fails): each table is
    read in its own format, the same as the all-32-bit build's."""
    plain = _ours(_build(tmp_path, [version], "prog32"))
    assert _ours(_build(tmp_path, [version, "-gdwarf64"], "prog64")) == plain and plain[0][3]


def test_64bit_line_table_format(tmp_path):
    """A DWARF 4 unit rewritten in the 64-bit format (§7.4: unit_length 0xffffffff then
    8 bytes, header_length 8 bytes) decodes to the same rows."""
    path = _build(tmp_path, ["-gdwarf-4"], "prog")
    with open(path, "rb") as f:
        raw = elffile.ELFFile(f).get_section_by_name(".debug_line").data()
    unit_length, version = struct.unpack_from("<IH", raw, 0)
    assert version == 4
    (header_length,) = struct.unpack_from("<I", raw, 6)
    rest = raw[10:4 + unit_length]
    wide = b"\xff\xff\xff\xff" + struct.pack("<QHQ", unit_length + 4, version, header_length) + rest
    narrow_program = decode_line_program(raw, 0)
    wide_program = decode_line_program(wide, 0)
    assert narrow_program.rows and wide_program.rows == narrow_program.rows
    assert (wide_program.dirs, wide_program.files) == (narrow_program.dirs, narrow_program.files)


def test_malformed_programs_raise_not_hang():
    with pytest.raises((ValueError, IndexError, struct.error)):
        decode_line_program(b"\xff\xff\xff\xff", 0)
    # version 9 is no DWARF line table
    with pytest.raises(ValueError):
        decode_line_program(b"\x10\x00\x00\x00\x09\x00" + bytes(14), 0)


def test_limits_raise_too_large(monkeypatch):
    """MAX_LINE_ROWS and the deadline stop the decoder with LineProgramTooLarge, which is no
    ValueError (the index's fallback to pyelftools on malformed input must not catch it)."""
    cores.build_samples()
    dwarf, f = _sections(str(cores.BUILD / "O2" / "cxx_throw"))
    try:
        data = _buffer(dwarf.debug_line_sec)
        strs, line_strs = _buffer(dwarf.debug_str_sec), _buffer(dwarf.debug_line_str_sec)
        offset = next(dwarf.iter_CUs()).get_top_DIE().attributes["DW_AT_stmt_list"].value
        rows = len(decode_line_program(data, offset, strs, line_strs).rows)
        assert rows > 10
        monkeypatch.setattr(lineprogram, "MAX_LINE_ROWS", rows)
        assert len(decode_line_program(data, offset, strs, line_strs, deadline=time.monotonic() + 60).rows) == rows
        monkeypatch.setattr(lineprogram, "MAX_LINE_ROWS", rows - 1)
        with pytest.raises(LineProgramTooLarge, match=f"more than {rows - 1} rows"):
            decode_line_program(data, offset, strs, line_strs)
        monkeypatch.undo()
        with pytest.raises(LineProgramTooLarge, match="deadline"):
            decode_line_program(data, offset, strs, line_strs, deadline=time.monotonic() - 1)
        assert not issubclass(LineProgramTooLarge, ValueError)
    finally:
        del data, strs, line_strs
        f.close()
