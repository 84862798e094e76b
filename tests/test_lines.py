"""Line tables (coredump.dwarf.lines): gdb's line choices, file paths, the cache data."""

import os
import re
import shutil
import subprocess

import pytest

from coredump.dwarf.lines import LineProgram, LineTable, decode_line_program
from tests import cores
from tests.test_lineprogram import _buffer, _sections

pytest.importorskip("elftools.elf.elffile")


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


def test_cached_tables_of_another_shape_are_misses(tmp_path, monkeypatch):
    """An entry left under our kind by an older format must not break the lookup: the
    index answers as it does with the cache off."""
    from coredump.dwarf import index as dwarf
    from coredump.elf.image import ElfImage
    from coredump.symbols import cache

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
    directory a relative name is under the relative one, as gdb's full name is (libc6-dbg's
    ``./nptl/./nptl/pthread_kill.c``), and without one it has no path."""
    v4 = LineTable(LineProgram(4, ["inc", "/usr/include"], [("a.c", 0), ("b.h", 1), ("s.h", 2),
                                                               ("/abs/c.c", 1), ("x.c", 9)], []), "/build/dir")
    assert [v4.file_path(i) for i in range(1, 6)] == [
        "/build/dir/a.c", "/build/dir/inc/b.h", "/usr/include/s.h", "/abs/c.c", None]
    assert v4.file_path(0) is None and v4.file_name(2) == "inc/b.h"
    assert LineTable(LineProgram(4, [], [("a.c", 0)], []), None).file_path(1) is None
    assert LineTable(LineProgram(4, [], [("a.c", 0)], []), "rel").file_path(1) == "rel/a.c"
    v5 = LineTable(LineProgram(5, ["/cu/dir", "../up"], [("m.c", 0), ("h.h", 1)], []), None)
    assert (v5.file_path(0), v5.file_path(1)) == ("/cu/dir/m.c", "/cu/up/h.h")


def test_paths_round_trip_through_cache_data():
    cores.build_samples()
    path = str(cores.BUILD / "O0" / "segv")
    dwarf, f = _sections(path)
    try:
        cu = next(dwarf.iter_CUs())
        comp_dir = cu.get_top_DIE().attributes["DW_AT_comp_dir"].value.decode()
        table = LineTable.from_pyelftools(dwarf.line_program_for_CU(cu), comp_dir,
                                          cu.get_top_DIE().attributes["DW_AT_name"].value.decode())
    finally:
        f.close()
    copy = LineTable.from_data(table.to_data())
    # make -C records the directory as getcwd() gives it: symlinks resolved.
    assert copy.comp_dir == comp_dir and os.path.realpath(comp_dir) == os.path.realpath(cores.SAMPLES)
    assert copy.path_of("segv.c") == table.path_of("segv.c") == os.path.join(comp_dir, "segv.c")
    assert copy.file_path(1) == table.file_path(1)
