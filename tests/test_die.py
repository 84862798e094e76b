"""Our DWARFInfo, CompileUnit and DIE (coredump.dwarf.dwarfinfo, compileunit, die) and our
range and location lists (coredump.dwarf.rangelists, locationlists) against pyelftools, the
reference: every DIE's offset, tag, has_children, size, parent and attributes (name, form,
value, raw_value, offset), and the range and location lists of every DIE that has them, on
the sample binaries, a Rust and a Go binary, dwz'd debug files with their supplementary file,
the corpus and libc's debug file; then a cold analysis that imports no pyelftools DWARF."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coredump.dwarf.dwarfinfo import DWARFInfo, dwarf_info
from coredump.dwarf.locations import location_list
from coredump.dwarf.supplementary import attach
from coredump.elf.image import open_image
from tests import cores
from tests.dwz_samples import dwz_debug_dir, dwz_skip_reason, strip_pair
from tests.go_samples import build_go_samples
from tests.rust_samples import build_rust_samples
from tests.test_dies import _libc_debug_file

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
# pyelftools parses ~35,000 DIEs/s here: one file's comparison stops near this many DIEs.
_REFERENCE_DIES = 30_000


def _reference(image, supplementary=None):
    ref = image.elf.get_dwarf_info(relocate_dwarf_sections=False, follow_links=False)
    if supplementary is not None:
        ref.supplementary_dwarfinfo = supplementary.elf.get_dwarf_info(relocate_dwarf_sections=False,
                                                                       follow_links=False)
    return ref


def _reference_dies(cu):
    """pyelftools' DIEs of `cu` in order with their parents, as its iter_DIEs walks them
    (without stepping into imported units)."""
    stream, pos, end = cu.dwarfinfo.debug_info_sec.stream, cu.cu_die_offset, cu.cu_offset + cu.size
    parent = None
    from elftools.dwarf.die import DIE

    while pos < end:
        die = DIE(cu, stream, pos) if pos != cu.cu_die_offset else cu.get_top_DIE()
        yield die, parent
        if die.tag is None:
            parent = parent[1] if parent is not None else None
        elif die.has_children or pos == cu.cu_die_offset:
            parent = (die, parent)
        pos += die.size


def _attrs(die):
    return [(a.name, a.form, a.value, a.raw_value, a.offset) for a in die.attributes.values()]


def _ref_lists(ref, die):
    """(ranges, location lists by attribute) of a pyelftools DIE; None for a list it cannot read."""
    from elftools.dwarf.locationlists import LocationParser

    ranges = locs = None
    if "DW_AT_ranges" in die.attributes:
        try:
            ranges = ref.range_lists().get_range_list_at_offset(die.attributes["DW_AT_ranges"].value, cu=die.cu)
        except Exception:
            ranges = None
    version = die.cu["version"]
    for name, attr in die.attributes.items():
        if LocationParser.attribute_has_location(attr, version) and LocationParser._attribute_has_loc_list(
                attr, version):
            try:
                found = LocationParser(ref.location_lists()).parse_from_attribute(attr, version, die)
            except Exception:
                found = None  # pyelftools has no reading of it (a GNU view pair): ours is not compared
            locs = (locs or {})
            locs[name] = found
    return ranges, locs


def _our_lists(info, die, want_locs):
    ranges = None
    if "DW_AT_ranges" in die.attributes:
        ranges = info.range_lists().get_range_list_at_offset(die.attributes["DW_AT_ranges"].value, die.cu)
    locs = None
    if want_locs is not None:
        locs = {name: location_list(die, die.attributes[name]) if want_locs[name] is not None else None
                for name in want_locs}
    return ranges, locs


def compare_file(path, supplementary=None, budget: int = _REFERENCE_DIES, stride: int = 1, every: int = 5) -> int:
    """Every `stride`-th CU's DIEs, until `budget` DIEs, equal to pyelftools'; the parents of
    every `every`-th DIE found again by a fresh DWARFInfo's own walk (dies.ancestors)."""
    image = open_image(str(path))
    if image is None or not image.has_section(".debug_info"):
        return 0
    info, fresh = dwarf_info(image), dwarf_info(image)
    assert isinstance(info, DWARFInfo)
    if supplementary is not None:
        attach(info, supplementary)
        attach(fresh, supplementary)
    ref = _reference(image, supplementary)
    seen = 0
    for n, (cu, ref_cu) in enumerate(zip(info.iter_CUs(), ref.iter_CUs())):
        assert (cu.cu_offset, cu.cu_die_offset, cu.size) == (ref_cu.cu_offset, ref_cu.cu_die_offset, ref_cu.size)
        assert {k: cu[k] for k in ("version", "address_size", "debug_abbrev_offset", "unit_length")} == \
            {k: ref_cu[k] for k in ("version", "address_size", "debug_abbrev_offset", "unit_length")}
        if n % stride:
            continue
        if cu["version"] >= 5:
            assert cu["unit_type"] == ref_cu["unit_type"]
        ours = list(cu.iter_DIEs())
        theirs = list(_reference_dies(ref_cu))
        assert len(ours) == len(theirs), (path, cu.cu_offset)
        for k, (die, (ref_die, parent)) in enumerate(zip(ours, theirs)):
            where = (str(path), die.offset)
            assert (die.offset, die.tag, die.has_children, die.size) == \
                (ref_die.offset, ref_die.tag, ref_die.has_children, ref_die.size), where
            assert (die._parent.offset if die._parent else None) == (parent[0].offset if parent else None), where
            if die.tag is None:
                continue
            assert _attrs(die) == _attrs(ref_die), where
            ref_ranges, ref_locs = _ref_lists(ref, ref_die)
            ranges, locs = _our_lists(info, die, ref_locs)
            assert ranges == ref_ranges, where
            assert locs == ref_locs, where
            if k % every == 0 and k:
                again = fresh.get_DIE_from_refaddr(die.offset).get_parent()
                assert again.offset == die._parent.offset, where
        seen += len(ours)
        if seen > budget:
            break
    return seen


def _binaries():
    cores.build_samples()
    return [p for v in ("O0", "O2", "O2-nocs", "static", "stripped") if (cores.BUILD / v).is_dir()
            for p in sorted((cores.BUILD / v).iterdir())
            if p.is_file() and (os.access(p, os.X_OK) or p.suffix in (".so", ".debug"))]


def test_sample_binaries_match_pyelftools():
    """O0, O2, static, shared library, C++ builds: all their DIEs."""
    total = sum(compare_file(p) for p in _binaries())
    assert total > 10_000


def test_rust_and_go_binaries_match_pyelftools():
    rust = build_rust_samples()
    assert compare_file(rust / "rust_panic", stride=7) > 5_000
    assert compare_file(rust / "rust_panic_release", stride=11) > 5_000
    assert compare_file(build_go_samples() / "go_nil", stride=3) > 5_000


@pytest.mark.parametrize("layout", ["dwz-dir", "dwarf5"])
def test_dwz_debug_files_match_pyelftools(tmp_path, layout):
    """DW_FORM_GNU_ref_alt / GNU_strp_alt (and DWARF 5's ref_sup4 / strp_sup) resolved in the
    supplementary file, as pyelftools resolves them; the supplementary file itself too."""
    reason = dwz_skip_reason()
    if reason:
        pytest.skip(reason)
    split = strip_pair(tmp_path / "pair")
    sup = dwz_debug_dir(split, tmp_path / "debug", layout)
    debug_files = sorted((tmp_path / "debug" / ".build-id").glob("*/*.debug"))
    sup_image = open_image(str(sup))
    assert sum(compare_file(p, supplementary=sup_image) for p in debug_files if Path(p) != sup) > 20
    assert compare_file(sup) > 5


def test_corpus_files_match_pyelftools():
    if not CORPUS.is_dir():
        pytest.skip(f"no corpus at {CORPUS}")
    files = [p for p in sorted(CORPUS.rglob("*")) if p.is_file() and not p.name.endswith((".json", ".md"))
             and p.read_bytes()[:4] == b"\x7fELF"]
    assert sum(compare_file(p) for p in files) > 100


def test_libc_debug_file_matches_pyelftools():
    """A sample of its CUs (every 37th), with its dwz supplementary file where it has one."""
    path = _libc_debug_file()
    if path is None:
        pytest.skip("no debug file for libc under /usr/lib/debug (Debian: libc6-dbg)")
    from coredump.dwarf.supplementary import read_link

    image = open_image(path)
    link = read_link(image)
    sup = None
    if link is not None:
        candidate = os.path.join("/usr/lib/debug/.dwz", os.path.basename(os.path.dirname(link.name)),
                                 os.path.basename(link.name))
        sup = open_image(link.name) if os.path.exists(link.name) else open_image(candidate) \
            if os.path.exists(candidate) else None
    assert compare_file(path, supplementary=sup, stride=37) > 5_000


# ---- no pyelftools DWARF on a cold analysis ------------------------------------------------

# `python -m coredump` that prints, as it exits, the modules it imported.
_DRIVER = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr, flush=True))
sys.argv = ["coredump"] + sys.argv[1:]
from coredump.cli.entry import main
main()
"""


def _imported(core, exe, tmp_path):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", _DRIVER, "analyze", "--format", "json", "--exe", str(exe), str(core)],
                         env=env, capture_output=True, text=True, timeout=300)
    crash = json.loads(out.stdout)
    return crash, json.loads(out.stderr.strip().splitlines()[-1])


def _no_pyelftools_dwarf(modules):
    return [m for m in modules if m.startswith(("elftools.dwarf", "elftools.construct"))]


def test_cold_analysis_imports_no_pyelftools_dwarf(make_core, tmp_path):
    """An O2 C++ core and an O2 C core whose libc has its debug file (where libc6-dbg is
    installed): their frames named from DWARF, with neither elftools.dwarf nor construct."""
    for program in ("cxx_throw", "abort_assert"):
        core = make_core("O2", program)
        crash, modules = _imported(core, cores.BUILD / "O2" / program, tmp_path / program)
        assert any(f.get("file") for t in crash["threads"] for f in t["frames"]), program
        assert _no_pyelftools_dwarf(modules) == [], program
        if program == "abort_assert" and _libc_debug_file() is not None:
            libc = next(m for m in crash["modules"] if "/libc.so" in m["path"])
            assert libc["debug_file"], libc


def test_cold_rust_analysis_imports_no_pyelftools_dwarf(tmp_path):
    from tests.rust_samples import make_rust_core

    build = build_rust_samples()
    core = make_rust_core("rust_panic")
    crash, modules = _imported(core, build / "rust_panic", tmp_path)
    assert any((f.get("file") or "").endswith(".rs") for t in crash["threads"] for f in t["frames"])
    assert _no_pyelftools_dwarf(modules) == []


# ---- damaged DWARF: DieError, within the unit's bytes ---------------------------------------

def _walk_all(info, limit: int = 100_000) -> int:
    """Every DIE reached from every unit DIE by iter_children, with its attributes and
    parent, and what its references name; the count (bounded: the reader moves forward)."""
    seen = 0
    for cu in info.iter_CUs():
        stack = [cu.get_top_DIE()]
        while stack:
            die = stack.pop()
            for child in die.iter_children():
                seen += 1
                assert seen < limit
                for name, attr in child.attributes.items():
                    if attr.form.startswith("DW_FORM_ref"):
                        child.get_DIE_from_attribute(name)
                assert child.get_parent() is die
                stack.append(child)
    return seen


@pytest.mark.parametrize("damage", ["abbreviation code", "sibling loop", "reference past the unit",
                                    "unit shorter than its DIEs"])
def test_damaged_units_raise_die_error(damage, tmp_path):
    """A real binary's .debug_info damaged in place: our reader raises DieError (what the
    analysis turns into one warning and symbol-table names, test_dies.py), never another
    exception or a walk without end."""
    from coredump.dwarf.dies import DieError

    cores.build_samples()
    exe = tmp_path / "segv"
    exe.write_bytes((cores.BUILD / "O0" / "segv").read_bytes())
    image = open_image(str(exe))
    base = image.get_section_info(".debug_info")[1]
    info = dwarf_info(image)
    cu = next(info.iter_CUs())
    assert _walk_all(info) > 10  # undamaged: the whole tree
    child = next(c for c in cu.get_top_DIE().iter_children() if "DW_AT_sibling" in c.attributes)
    typed = next(c for c in cu.get_top_DIE().iter_children() if "DW_AT_type" in c.attributes
                 and c.attributes["DW_AT_type"].form == "DW_FORM_ref4")
    image.close()
    data = bytearray(exe.read_bytes())
    if damage == "abbreviation code":
        data[base + child.offset] = 0x7F  # no table of a small C file has 127 codes
    elif damage == "sibling loop":
        at = base + child.attributes["DW_AT_sibling"].offset
        data[at:at + 4] = (child.offset - cu.cu_offset).to_bytes(4, "little")  # DW_AT_sibling: itself
    elif damage == "reference past the unit":
        at = base + typed.attributes["DW_AT_type"].offset
        data[at:at + 4] = (0x7FFFFFF0).to_bytes(4, "little")
    else:
        data[base:base + 4] = (40).to_bytes(4, "little")  # the unit ends inside its DIEs
    exe.write_bytes(bytes(data))
    with pytest.raises(DieError):
        _walk_all(dwarf_info(open_image(str(exe))))
