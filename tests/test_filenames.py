"""File names as gdb spells them (coredump/dwarf/lines.py): the line table's file and directory
entries (DWARF 4 §6.2.4, DWARF 5 §6.2.4.1) joined as gdb's dwarf2_start_subfile and
start_subfile join them, and full names as its symtab_to_fullname gives them, against gdb's
``info line`` on programs built here: with an absolute compilation directory, and with a
relative one (``-fdebug-prefix-map=DIR=.``, as Debian builds libc6-dbg)."""

import re
import shutil
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from coredump.dwarf.lines import LineTable, decode_line_program

HEADERS = {"src/near.h": "static inline int near(int *p)\n{\n    return *p + 2;\n}\n",
           "src/inc/helper.h": "static inline int helper(int *p)\n{\n    return *p + 1;\n}\n"}
MAIN = ('#include "near.h"\n#include "inc/helper.h"\nint main(int argc, char **argv)\n{\n'
        "    int *p = argc > 5 ? &argc : 0;\n    return helper(p) + near(p);\n}\n")


def _build(tmp_path, version, relative, inside):
    """prog built from `tmp_path` (``src/main.c``), or from inside ``src`` (``main.c``: the line
    table's file then sits in directory 0, as libc6-dbg's pthread_kill.c does)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: the programs are built at test time")
    for name, text in HEADERS.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "src" / "main.c").write_text(MAIN)
    out = tmp_path / "prog"
    flags = [f"-fdebug-prefix-map={tmp_path}=."] if relative else []
    cwd, source = (tmp_path / "src", "main.c") if inside else (tmp_path, "src/main.c")
    done = subprocess.run(["gcc", "-O2", "-g", version, *flags, "-o", str(out), source], cwd=cwd,
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"gcc cannot build with {version}: {done.stderr.strip()[:200]}")
    return out


def _table(path):
    with open(path, "rb") as f:
        dwarf = ELFFile(f).get_dwarf_info(relocate_dwarf_sections=False)
        cu = next(dwarf.iter_CUs())
        top = cu.get_top_DIE()
        program = decode_line_program(dwarf.debug_line_sec.stream.getvalue(), top.attributes["DW_AT_stmt_list"].value,
                                      dwarf.debug_str_sec.stream.getvalue(),
                                      dwarf.debug_line_str_sec.stream.getvalue() if dwarf.debug_line_str_sec else None)
        table = LineTable(program, top.attributes["DW_AT_comp_dir"].value.decode(),
                          top.attributes["DW_AT_name"].value.decode())
        return table, sorted({r[0] for r in program.rows if not r[5]})


def _info_lines(gdb, path, addresses, display):
    """gdb's ``info line *ADDR`` with ``set filename-display DISPLAY``: address -> (file, line)."""
    argv = [gdb, "-batch", "-nx", "-iex", "set debuginfod enabled off", "-iex", f"set filename-display {display}"]
    for address in addresses:
        argv += ["-ex", f"info line *{address:#x}"]
    out = subprocess.run(argv + [str(path)], capture_output=True, text=True, timeout=300).stdout
    return {int(m.group(3), 16): (m.group(2), int(m.group(1))) for m in re.finditer(
        r'^Line (\d+) of "([^"]+)"\s+(?:starts at|is at) address (0x[0-9a-f]+)', out, re.M)}


@pytest.mark.parametrize("inside", [False, True], ids=["from-top", "from-src"])
@pytest.mark.parametrize("relative", [False, True], ids=["absolute-comp-dir", "relative-comp-dir"])
@pytest.mark.parametrize("version", ["-gdwarf-4", "-gdwarf-5"])
def test_names_and_full_names_are_gdbs(tmp_path, gdb, version, relative, inside):
    path = _build(tmp_path, version, relative, inside)
    table, addresses = _table(path)
    names = _info_lines(gdb, path, addresses, "relative")
    full = _info_lines(gdb, path, addresses, "absolute")
    assert names and names.keys() == full.keys()
    seen = set()
    for address, (name, line) in names.items():
        ours = table.lookup(address)
        assert ours == (name, line), hex(address)
        assert table.path_of(ours[0]) == full[address][0], hex(address)
        seen.add(name)
    # The unit's own file, a header beside it, one below it: three spellings.
    assert {n.rsplit("/", 1)[-1] for n in seen} == {"main.c", "near.h", "helper.h"}
