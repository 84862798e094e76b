"""Our .debug_line decoder against pyelftools' on every compile unit of real binaries."""

import os
import re
import shutil
import struct
import subprocess
import sys
import time

import pytest

from coredump.symbols import lineprogram
from coredump.symbols.lines import LineProgram, LineProgramTooLarge, LineTable, decode_line_program
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


def test_table_round_trips_through_cache_data():
    cores.build_samples()
    path = str(cores.BUILD / "O2" / "cxx_throw")
    dwarf, f = _sections(path)
    try:
        cu = next(dwarf.iter_CUs())
        table = LineTable.from_pyelftools(dwarf.line_program_for_CU(cu))
        copy = LineTable.from_data(table.to_data())
        rows = dwarf.line_program_for_CU(cu).get_entries()
        addresses = {e.state.address for e in rows if e.state is not None}
        assert addresses
        for address in addresses:
            assert copy.lookup(address) == table.lookup(address)
        assert copy.file_name(1) == table.file_name(1)
    finally:
        f.close()


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


def test_cached_tables_of_another_shape_are_misses(tmp_path, monkeypatch):
    """An entry left under our kind by an older format must not break the lookup: the
    index answers as it does with the cache off."""
    from coredump.symbols import cache, dwarf
    from coredump.symbols.image import ElfImage

    cores.build_samples()
    path = str(cores.BUILD / "O0" / "segv")
    monkeypatch.setenv("COREDUMP_CACHE", "0")
    dwarf._UNITS.clear()
    image = ElfImage(path)
    index = dwarf.DwarfIndex(image)
    fresh = [s for s in image.elf.get_section_by_name(".symtab").iter_symbols() if s.name == "main"][0]
    address = fresh["st_value"]
    expected = (index.find_frames(address), index.find_line(address))
    assert expected[0] and expected[1]
    monkeypatch.setenv("COREDUMP_CACHE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    unit = index._unit_for(address)
    for kind in (dwarf._LINES_KIND, dwarf._FUNCS_KIND):
        cache.put(image.build_id, index._kind(kind, unit), [("not", "this", "shape")])
    dwarf._UNITS.clear()
    index = dwarf.DwarfIndex(ElfImage(path))
    assert (index.find_frames(address), index.find_line(address)) == expected


def _build_in_subdirs(tmp_path, version):
    """A program compiled from `tmp_path` as ``src/main.c`` including ``inc/helper.h``: the
    line table's directories are relative to the compilation directory (``src``, ``src/inc``)."""
    if shutil.which("gcc") is None:
        pytest.skip("no gcc")
    (tmp_path / "src" / "inc").mkdir(parents=True)
    (tmp_path / "src" / "inc" / "helper.h").write_text(
        "static inline int helper(int *p)\n{\n    return *p + 1;\n}\n")
    (tmp_path / "src" / "main.c").write_text(
        '#include "inc/helper.h"\nint main(int argc, char **argv)\n{\n'
        "    int *p = argc > 5 ? &argc : 0;\n    return helper(p);\n}\n")
    out = tmp_path / f"main{version}"
    done = subprocess.run(["gcc", "-O2", "-g", version, "-o", str(out), "src/main.c"], cwd=tmp_path,
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"gcc cannot build with {version}: {done.stderr.strip()[:200]}")
    return str(out)


def _gdb_info_lines(gdb, path, addresses):
    """gdb's ``info line *ADDR`` with ``set filename-display absolute``: address -> (full path, line)."""
    argv = [gdb, "-batch", "-nx", "-iex", "set debuginfod enabled off", "-iex", "set filename-display absolute"]
    for address in addresses:
        argv += ["-ex", f"info line *{address:#x}"]
    out = subprocess.run(argv + [path], capture_output=True, text=True, timeout=300).stdout
    found = {}
    for m in re.finditer(r'^Line (\d+) of "([^"]+)"\s+(?:starts at|is at) address (0x[0-9a-f]+)', out, re.M):
        found[int(m.group(3), 16)] = (m.group(2), int(m.group(1)))
    return found


@pytest.mark.parametrize("version", ["-gdwarf-4", "-gdwarf-5"])
def test_file_paths_match_gdb(tmp_path, gdb, version):
    """The absolute path beside each looked-up name is the one gdb prints with
    ``filename-display absolute``: the compilation directory (DW_AT_comp_dir for DWARF 4's
    directory 0, directory 0 itself in DWARF 5), then the relative include directory."""
    path = _build_in_subdirs(tmp_path, version)
    dwarf, f = _sections(path)
    try:
        cu = next(dwarf.iter_CUs())
        comp_dir = cu.get_top_DIE().attributes["DW_AT_comp_dir"].value.decode()
        table = LineTable(decode_line_program(_buffer(dwarf.debug_line_sec),
                                              cu.get_top_DIE().attributes["DW_AT_stmt_list"].value,
                                              _buffer(dwarf.debug_str_sec), _buffer(dwarf.debug_line_str_sec)),
                          comp_dir)
        rows = LineProgram.from_pyelftools(dwarf.line_program_for_CU(cu)).rows
    finally:
        f.close()
    addresses = sorted({r[0] for r in rows if not r[5]})
    want = _gdb_info_lines(gdb, path, addresses)
    compared = set()
    for address, (full, line) in want.items():
        name, ours_line = table.lookup(address)
        assert (table.path_of(name), ours_line) == (full, line), hex(address)
        compared.add(name)
    assert {n.rsplit("/", 1)[-1] for n in compared} == {"main.c", "helper.h"}
    # A relative directory names a file under the compilation directory.
    assert any(n.startswith("src/inc/") for n in compared)


def test_file_path_rules():
    """DWARF 4 §6.2.4: directory 0 is DW_AT_comp_dir and file 1 the first; DWARF 5: both
    0-based and directory 0 the compilation directory; without an absolute compilation
    directory a relative name has no path."""
    v4 = LineTable(LineProgram(4, ["inc", "/usr/include"], [("a.c", 0), ("b.h", 1), ("s.h", 2),
                                                               ("/abs/c.c", 1), ("x.c", 9)], []), "/build/dir")
    assert [v4.file_path(i) for i in range(1, 6)] == [
        "/build/dir/a.c", "/build/dir/inc/b.h", "/usr/include/s.h", "/abs/c.c", None]
    assert v4.file_path(0) is None and v4.file_name(2) == "inc/b.h"
    assert LineTable(LineProgram(4, [], [("a.c", 0)], []), None).file_path(1) is None
    assert LineTable(LineProgram(4, [], [("a.c", 0)], []), "rel").file_path(1) is None
    v5 = LineTable(LineProgram(5, ["/cu/dir", "../up"], [("m.c", 0), ("h.h", 1)], []), None)
    assert (v5.file_path(0), v5.file_path(1)) == ("/cu/dir/m.c", "/cu/up/h.h")


def test_paths_round_trip_through_cache_data():
    cores.build_samples()
    path = str(cores.BUILD / "O0" / "segv")
    dwarf, f = _sections(path)
    try:
        cu = next(dwarf.iter_CUs())
        comp_dir = cu.get_top_DIE().attributes["DW_AT_comp_dir"].value.decode()
        table = LineTable.from_pyelftools(dwarf.line_program_for_CU(cu), comp_dir)
    finally:
        f.close()
    copy = LineTable.from_data(table.to_data())
    # make -C records the directory as getcwd() gives it: symlinks resolved.
    assert copy.comp_dir == comp_dir and os.path.realpath(comp_dir) == os.path.realpath(cores.SAMPLES)
    assert copy.path_of("segv.c") == table.path_of("segv.c") == os.path.join(comp_dir, "segv.c")
    assert copy.file_path(1) == table.file_path(1)
