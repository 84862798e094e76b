"""Our DIE reader (coredump.dwarf.dies, coredump.dwarf.abbrev) against pyelftools, the
reference: the functions of every CU, the CU DIE's children and the parents of DIEs, on the
sample binaries, a Rust binary and libc's debug file; then malformed DWARF, crafted byte by
byte and written into a real binary that crashes for a real core."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coredump.dwarf import cache as dwarfcache
from coredump.dwarf import index as dwarfindex
from coredump.dwarf.abbrev import Abbrev, AbbrevError, form_rule, read_abbrev_table
from coredump.dwarf.dies import DieError, UnitReader, ancestors, collect_functions, unit_reader
from coredump.dwarf.index import DwarfIndex
from coredump.dwarf.limits import DwarfBudget
from coredump.dwarf.ranges import die_ranges
from coredump.elf.image import open_image
from tests import cores
from tests.rust_samples import build_rust_samples

_CONTAINERS = ("DW_TAG_namespace", "DW_TAG_class_type", "DW_TAG_structure_type", "DW_TAG_union_type",
               "DW_TAG_module")
# pyelftools parses ~35,000 DIEs/s here: the reference walks of one large file stop near this.
_REFERENCE_DIES = 150_000


def _reference_functions(dwarfinfo, cu, nested: bool, top_level: list):
    """The walk DwarfIndex._collect_functions made with pyelftools before our reader."""
    out = []
    parent = cu.get_top_DIE()
    stack = [(parent, False)]
    while stack:
        die, inside = stack.pop()
        for child in die.iter_children():
            if die is parent:
                top_level.append(child.offset)
            if child.tag == "DW_TAG_subprogram" and (inside or not nested):
                try:
                    out.extend((low, high, child.offset) for low, high in die_ranges(dwarfinfo, child))
                except Exception:
                    continue
            elif nested and child.tag in _CONTAINERS and child.has_children:
                stack.append((child, True))
    return sorted(out)


def _libc_debug_file():
    libc = open_image("/lib/x86_64-linux-gnu/libc.so.6") if os.path.exists("/lib/x86_64-linux-gnu/libc.so.6") \
        else None
    if libc is None or not libc.build_id:
        return None
    path = f"/usr/lib/debug/.build-id/{libc.build_id[:2]}/{libc.build_id[2:]}.debug"
    return path if os.path.exists(path) else None


def _binaries():
    out = [p for v in ("O0", "O2", "static") for p in sorted((cores.BUILD / v).iterdir())
           if p.is_file() and os.access(p, os.X_OK) or p.suffix == ".so"]
    return out


def _compare_file(path, dies_budget: int = _REFERENCE_DIES, stride: int = 1, every: int = 1) -> int:
    """Functions (both walks) and top-level offsets of every `stride`-th CU, and the parents
    of every `every`-th DIE pyelftools reads there, until `dies_budget` DIEs: equal to pyelftools'."""
    image = open_image(str(path))
    if image is None or not image.elf.has_dwarf_info():
        return 0
    dwarfinfo = image.elf.get_dwarf_info(relocate_dwarf_sections=False, follow_links=False)
    abbrevs: dict = {}
    seen = 0
    for n, cu in enumerate(dwarfinfo.iter_CUs()):
        if n % stride or cu.get_top_DIE().tag != "DW_TAG_compile_unit":
            continue
        reader = unit_reader(dwarfinfo, cu, abbrevs)
        ours, theirs = [], []
        outer, inner = collect_functions(dwarfinfo, cu, reader, ours, lambda c: None)
        assert outer == _reference_functions(dwarfinfo, cu, False, theirs), (path, cu.cu_offset)
        assert inner == _reference_functions(dwarfinfo, cu, True, []), (path, cu.cu_offset)
        assert ours == theirs
        for k, die in enumerate(cu.iter_DIEs()):  # pyelftools sets each DIE's parent as it walks
            if die.is_null() or k % every:
                continue
            seen += 1
            chain, parent = [], die.get_parent()
            while parent is not None:
                chain.append(parent.offset - cu.cu_offset)
                parent = parent.get_parent()
            found = ancestors(reader, cu.cu_die_offset - cu.cu_offset, die.offset - cu.cu_offset, ours)
            assert found == chain[::-1], (path, die.offset)
            if k % 16 == 0 and cu.size < 50_000:  # without the CU DIE's children to lead the way
                assert ancestors(reader, cu.cu_die_offset - cu.cu_offset, die.offset - cu.cu_offset) == found
        if seen > dies_budget:
            break
    return seen


def test_sample_binaries_match_pyelftools():
    cores.build_samples()
    total = sum(_compare_file(p) for p in _binaries())
    assert total > 5_000


def test_rust_binary_matches_pyelftools():
    build = build_rust_samples()
    assert _compare_file(build / "rust_panic", every=3) > 10_000


def test_libc_debug_file_matches_pyelftools():
    path = _libc_debug_file()
    if path is None:
        pytest.skip("no debug file for libc under /usr/lib/debug (libc6-dbg)")
    assert _compare_file(path, stride=11, every=3) > 10_000


def _reference_index(image):
    """A DwarfIndex that walks with pyelftools alone, as before our reader."""
    class Reference(DwarfIndex):
        def _collect_functions(self, unit, top_level):
            return (_reference_functions(self.dwarfinfo, unit.cu, False, top_level),
                    _reference_functions(self.dwarfinfo, unit.cu, True, []))

        def _link_parents(self, die):
            pass

    return Reference(image, DwarfBudget(1000.0))


@pytest.mark.parametrize("which", ["rust", "libc"])
def test_frames_and_inline_chains_match_pyelftools(which, monkeypatch):
    """find_frames (function, inline chain, qualified names) at the functions' entries and
    middles: the same with our reader as with pyelftools alone."""
    monkeypatch.setenv("COREDUMP_CACHE", "0")
    path = str(build_rust_samples() / "rust_panic") if which == "rust" else _libc_debug_file()
    if path is None:
        pytest.skip("no debug file for libc under /usr/lib/debug (libc6-dbg)")
    results = []
    for make in (lambda image: DwarfIndex(image, DwarfBudget(1000.0)), _reference_index):
        monkeypatch.setattr(dwarfindex, "_UNITS", {})
        monkeypatch.setattr(dwarfcache, "_MEMOS", {})
        image = open_image(path)
        index = make(image)
        symbols = sorted(s.entry.st_value for s in image.elf.get_section_by_name(".symtab").iter_symbols()
                         if s["st_info"]["type"] == "STT_FUNC" and s["st_size"] > 8)
        addresses = [a + d for a in symbols[::max(1, len(symbols) // 150)] for d in (0, 5)]
        results.append([index.find_frames(a) for a in addresses])
    assert sum(1 for f in results[0] if len(f) > 1) > 3  # inline chains among them
    assert results[0] == results[1]


# ---- crafted units ------------------------------------------------------------------------

def _uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _abbrevs(*entries) -> dict:
    """code -> Abbrev from (code, tag, has_children, [(attribute, form), ...])."""
    data = bytearray()
    for code, tag, children, attrs in entries:
        data += bytes([code, tag, 1 if children else 0])
        for name, form in attrs:
            data += _uleb(name) + _uleb(form) + (b"\x7f" if form == 0x21 else b"")
        data += b"\0\0"
    data += b"\0"
    return read_abbrev_table(bytes(data), 0, 8, 4, 5)


def _unit(body: bytes, table: dict) -> UnitReader:
    return UnitReader(body, 0x1000, 5, 8, 4, table)


def test_forms_are_skipped_by_their_sizes():
    """DWARF 5 Table 7.6: every form family, then DW_AT_low_pc read after them."""
    table = _abbrevs((1, 0x2E, False, [(0x03, 0x08), (0x02, 0x18), (0x0B, 0x0D), (0x3A, 0x21), (0x3B, 0x1F),
                                       (0x49, 0x1F20), (0x6E, 0x1F21), (0x47, 0x1C), (0x48, 0x24),
                                       (0x20, 0x16), (0x11, 0x01), (0x12, 0x0F)]))
    die = (b"\x01" + b"name\0" + b"\x02\x91\x00" + b"\x80\x7f" + b"\0\0\0\0" + b"\1\0\0\0" + b"\2\0\0\0"
           + b"\3\0\0\0" + b"\4\0\0\0\0\0\0\0" + b"\x0b\x05" + (0x401000).to_bytes(8, "little") + b"\x20")
    ab, values, end = _unit(die, table).read(0, frozenset((0x11, 0x12, 0x3A, 0x20)))
    assert end == len(die)
    assert values[0x11] == (0x01, 0x401000) and values[0x12] == (0x0F, 0x20)
    assert values[0x3A] == (0x21, -1)  # DW_FORM_implicit_const: the value is in the abbreviation
    assert values[0x20] == (0x0B, 5)  # DW_FORM_indirect naming data1
    assert form_rule(0x10, 4, 4, 2) == (0, 4) and form_rule(0x10, 8, 4, 3) == (0, 4)  # ref_addr: §7.5.4


@pytest.mark.parametrize("case", ["unknown code", "past the end", "sibling loops", "sibling backwards",
                                  "unknown form", "indirect indirect", "string unterminated"])
def test_malformed_units_raise_die_error_quickly(case):
    children = _abbrevs((1, 0x11, True, []), (2, 0x2E, True, [(0x01, 0x13)]), (3, 0x2E, False, [(0x03, 0x08)]),
                        (4, 0x2E, False, [(0x03, 0x16)]), (5, 0x2E, False, [(0x02, 0x04)]))
    body = {
        "unknown code": b"\x01\x09\0",
        "past the end": b"\x01\x05\xff\xff\0\0\0",  # a DW_FORM_block4 of 65535 bytes
        "sibling loops": b"\x01\x02\x01\0\0\0\x03a\0\0\0",
        "sibling backwards": b"\x01\x02\x00\0\0\0\x03a\0\0\0",
        "indirect indirect": b"\x01\x04\x16\x16\0",
        "string unterminated": b"\x01\x03abc",
        "unknown form": None,
    }[case]
    start = time.process_time()  # CPU time: other processes on the machine do not inflate it
    if body is None:
        with pytest.raises(AbbrevError):
            _abbrevs((1, 0x2E, False, [(0x03, 0x7E)]))
        return
    reader = _unit(body, children)
    with pytest.raises(DieError):
        collect = collect_functions(_FakeDwarf(), _FakeCU(), reader, [], lambda c: None)
        assert collect is None
    assert time.process_time() - start < 1


class _FakeCU:
    """The two fields collect_functions reads of a pyelftools unit (a crafted unit has none)."""
    cu_offset = 0x1000
    cu_die_offset = 0x1000

    def get_top_DIE(self):
        return None


class _FakeDwarf:
    pass


def test_abbrev_table_bounds():
    with pytest.raises(AbbrevError):
        read_abbrev_table(b"\x01\x2e", 0, 8, 4, 5)  # runs past the section
    assert isinstance(_abbrevs((1, 0x2E, False, []))[1], Abbrev)


# ---- malformed DWARF in a real binary, a real core --------------------------------------------

def _first_top_level_die(image):
    """(file offset of the abbreviation code, of DW_AT_sibling's value, the DIE) of the first
    child of the first CU DIE with a DW_AT_sibling that the walk follows (not a container:
    the walk enters those), in `image`'s .debug_info."""
    dwarfinfo = image.elf.get_dwarf_info(relocate_dwarf_sections=False, follow_links=False)
    section = image.elf.get_section_by_name(".debug_info")
    cu = next(dwarfinfo.iter_CUs())
    for child in cu.get_top_DIE().iter_children():
        sibling = child.attributes.get("DW_AT_sibling")
        if sibling is not None and sibling.form == "DW_FORM_ref4" and child.tag not in _CONTAINERS:
            return section["sh_offset"] + child.offset, section["sh_offset"] + sibling.offset, child
    raise AssertionError("no top-level DIE with a DW_AT_sibling")


@pytest.mark.parametrize("damage", ["abbreviation code", "sibling loop"])
def test_malformed_dwarf_in_a_real_core_gives_a_warning_and_symbol_names(damage, tmp_path):
    reason = cores.core_skip_reason()
    if reason:
        pytest.skip(reason)
    cores.build_samples()
    exe = tmp_path / "segv"
    shutil.copy(cores.BUILD / "O0" / "segv", exe)
    image = open_image(str(exe))
    code_at, sibling_at, die = _first_top_level_die(image)
    image.close()
    data = bytearray(exe.read_bytes())
    if damage == "abbreviation code":
        data[code_at] = 0x7F  # no table of a small C file has 127 codes
    else:
        rel = die.offset - die.cu.cu_offset
        data[sibling_at:sibling_at + 4] = rel.to_bytes(4, "little")  # DW_AT_sibling: itself
    exe.write_bytes(bytes(data))
    _, core = cores.run_crash([str(exe)], tmp_path)
    assert core is not None
    env = dict(os.environ, COREDUMP_CACHE="0")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", "from coredump.cli.main import main; main()", "analyze",
                           "--format", "json", "--exe", str(exe), str(core)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert time.monotonic() - start < 60
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    crash = json.loads(proc.stdout)
    warnings = [w for w in crash["warnings"] if w.startswith(str(exe)) and "malformed DWARF" in w]
    assert len(warnings) == 1, crash["warnings"]
    frames = crash["threads"][crash["crashing_thread"]]["frames"]
    names = [f["function"] for f in frames if f.get("module") == str(exe)]
    assert names[:3] == ["store_value", "fill_list", "build"]  # from .symtab
    assert all(f.get("line") is None for f in frames if f.get("module") == str(exe))


def test_the_walk_builds_no_pyelftools_dies():
    """Speed is measured by `make bench`; here: the walk of the largest CU leaves pyelftools
    with no DIE but the CU DIE (each costs ~28 us and ~1.7 KB)."""
    build = build_rust_samples()
    image = open_image(str(Path(build) / "rust_panic"))
    dwarfinfo = image.elf.get_dwarf_info(relocate_dwarf_sections=False, follow_links=False)
    cu = max(dwarfinfo.iter_CUs(), key=lambda c: c.size)
    collect_functions(dwarfinfo, cu, unit_reader(dwarfinfo, cu, {}), [], lambda c: None)
    assert len(cu._dielist) <= 2  # the CU DIE (and nothing per child)
