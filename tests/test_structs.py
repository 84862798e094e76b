"""Structure types' data members (coredump/dwarf/structs.py) against gdb's ``ptype/o`` of the
same type in the same file: a Go program's runtime types (names in the DIE, DW_FORM_string)
and a C program's struct (gcc's names, in .debug_str or in the DIE)."""

import re
import subprocess

import pytest

from coredump.dwarf.index import DwarfIndex
from coredump.dwarf.structs import find_named_types
from coredump.elf.image import ElfImage
from tests import cores
from tests.go_samples import build_go_samples

# ptype/o: "/* offset | size */    type name;" per member; a member of a structure type is
# expanded: "/* offset | size */    struct T {", its members, then "} name;".
_MEMBER = re.compile(r"^/\*\s+(\d+)\s+\|\s+\d+ \*/ +(.*?)$")
_CLOSE = re.compile(r"^\s+} (\w+);$")


def _gdb_members(gdb, exe, type_name):
    """The type's own members (not those of the members gdb expands) by name: byte offset."""
    out = subprocess.run([gdb, "-batch", "-nx", "-iex", "set auto-load no", "-ex", "set language c",
                          "-ex", f"ptype/o {type_name}", str(exe)], capture_output=True, text=True, timeout=120)
    members, opened = {}, []
    for line in out.stdout.splitlines():
        m, close = _MEMBER.match(line), _CLOSE.match(line)
        if m and m.group(2).endswith("{"):
            opened.append(int(m.group(1)))
        elif m and not opened:
            members[re.search(r"(\w+)(?:\[\d+\])*;$", m.group(2)).group(1)] = int(m.group(1))
        elif close and opened:
            offset = opened.pop()
            if not opened:
                members[close.group(1)] = offset
    return members


@pytest.mark.parametrize("name", ["runtime.g", "runtime.m", "runtime._panic", "runtime.eface"])
def test_go_runtime_layouts_are_gdbs(gdb, name):
    exe = build_go_samples() / "go_nil"
    types = find_named_types(DwarfIndex(ElfImage(str(exe))), {name}, units=("runtime",))
    theirs = _gdb_members(gdb, exe, f"'{name}'")
    assert len(theirs) >= 2 and types[name].members == theirs


def test_a_c_struct_is_gdbs(gdb):
    cores.build_samples()
    exe = cores.BUILD / "O0" / "segv"
    types = find_named_types(DwarfIndex(ElfImage(str(exe))), {"node", "no_such_type"})
    assert "no_such_type" not in types
    assert types["node"].members == _gdb_members(gdb, exe, "struct node") == {"key": 0, "value": 8}


def test_the_go_runtime_type_attribute_is_read():
    """cmd/link's DW_AT_go_runtime_type (0x2904): the descriptors of two types differ."""
    exe = build_go_samples() / "go_nil"
    types = find_named_types(DwarfIndex(ElfImage(str(exe))), {"string", "runtime.errorString"},
                             units=("runtime",), attributes=frozenset((0x2904,)))
    offsets = {name: t.attributes.get(0x2904) for name, t in types.items()}
    assert None not in offsets.values() and len(set(offsets.values())) == 2
