"""DwarfIndex against gdb's ``bt`` on real cores: names, inline frames and file:line."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from coredump.dwarf.index import DwarfIndex, SourceFrame
from coredump.elf.core import open_core
from coredump.elf.image import ElfImage
from coredump.symbols.finder import FileFinder, FinderOptions
from coredump.target import Target
from tests import cores
from tests.gdb_oracle import run_gdb, strip_params

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
DEMANGLE = CORPUS / "elfutils" / "testfile-backtrace-demangle"


def _target(core, exe, debug_files=None):
    options = debug_files.finder_options(exe=str(exe)) if debug_files else FinderOptions(exe=str(exe))
    return Target(open_core(str(core)), FileFinder(options))


def _groups(frames):
    """gdb's frames as groups sharing a pc: a frame with the inline frames before it
    (innermost first, gdb's INLINE_FRAME type)."""
    group = []
    for f in frames:
        group.append(f)
        if not f.is_inline:
            yield group
            group = []


def _pairs(group, ours):
    """gdb's frames of one pc with ours there (find_frames: inline frames innermost first, then
    the physical one). A tail-call frame (gdb's TAILCALL_FRAME, dwarf2/frame-tailcall.c) is one
    frame in gdb, named by the innermost function at the tail-calling jmp with that one's line:
    it is our innermost frame there, and the rest of ours are its inline chain."""
    if group[-1].is_tailcall:
        assert len(group) == 1 and ours and not ours[-1].inline, (group, ours)
        return [(group[0], ours[0])]
    assert len(ours) == len(group), (group, ours)
    return list(zip(group, ours))


def _check_against_gdb(gdb, exe, core, debug_files):
    """For every gdb frame in a module with DWARF, find_frames at that frame's lookup
    address gives gdb's function and file:line, inline frames included. Returns the count
    of frames checked."""
    target = _target(core, exe, debug_files)
    # Tail-call frames stay: no unwinder sees them, but gdb's pc for one is an address in
    # the function that made the tail call, which the index must name as gdb does.
    frames = run_gdb(str(exe), str(core), gdb, debug=debug_files).crashing.frames
    assert frames, "gdb printed no backtrace"
    checked = 0
    exact = True  # frame 0 and a frame a signal interrupted: the pc is the instruction's
    for group in _groups(frames):
        pc, lookup_exact, exact = group[0].frame_pc, exact, group[-1].is_signal
        assert all(f.frame_pc == pc for f in group)
        if group[0].file is None:
            continue  # gdb has no debug info there either
        module = target.find_module(pc)
        assert module is not None and module.dwarf is not None
        lookup = pc if lookup_exact else pc - 1
        ours = module.dwarf.find_frames(lookup - module.bias)
        for g, s in _pairs(group, ours):
            assert strip_params(s.function) == g.function, (g, s)
            assert (s.file, s.line) == (g.file, g.line), (g, s)
        assert [s.inline for s in ours] == [True] * (len(ours) - 1) + [False]
        checked += len(group)
    return checked


def _check_paths_against_gdb(gdb, exe, core, debug_files):
    """Each frame's path is the file gdb's ``bt`` prints with ``set filename-display absolute``
    (gdb's ``symtab_to_fullname``), inline frames' (DW_AT_call_file) included. That full name
    is the line table's directory joined to DW_AT_comp_dir: absolute for the samples built
    here, relative where the producer recorded a relative DW_AT_comp_dir (Debian's libc6-dbg:
    ``./nptl/./nptl/pthread_kill.c``), and ours is the same either way. Returns the counts of
    frames checked and of those in `exe` (whose comp_dir is this checkout: absolute)."""
    target = _target(core, exe, debug_files)
    frames = run_gdb(str(exe), str(core), gdb, extra=("-iex", "set filename-display absolute"),
                     debug=debug_files).crashing.frames
    checked = own = 0
    exact = True
    for group in _groups(frames):
        pc, lookup_exact, exact = group[0].frame_pc, exact, group[-1].is_signal
        if group[0].file is None:
            continue
        module = target.find_module(pc)
        ours = module.dwarf.find_frames((pc if lookup_exact else pc - 1) - module.bias)
        in_exe = os.path.realpath(module.path) == os.path.realpath(exe)
        for g, s in _pairs(group, ours):
            assert s.path == g.file and (g.file.startswith("/") or not in_exe), (g, s)
            assert s.path.endswith("/" + s.file) or s.path == s.file, (g, s)
            checked, own = checked + 1, own + in_exe
    return checked, own


@pytest.mark.parametrize("variant, program", [("O0", "segv"), ("O2", "cxx_throw"), ("static", "abort_assert")])
def test_paths_match_gdb(make_core, gdb, debug_files, variant, program):
    core = make_core(variant, program)
    checked, own = _check_paths_against_gdb(gdb, cores.BUILD / variant / program, core, debug_files)
    assert checked >= 2 and own >= 1


@pytest.mark.parametrize("variant", ["O0", "O2", "static"])
@pytest.mark.parametrize("program", ["segv", "abort_assert", "cxx_throw", "fpe"])
def test_frames_match_gdb(make_core, gdb, debug_files, variant, program):
    core = make_core(variant, program)
    assert _check_against_gdb(gdb, cores.BUILD / variant / program, core, debug_files) >= 2


@pytest.mark.parametrize("variant", ["O0", "O2"])
def test_shared_library_frames_match_gdb(make_core, gdb, debug_files, variant):
    core = make_core(variant, "uselib")
    checked = _check_against_gdb(gdb, cores.BUILD / variant / "uselib", core, debug_files)
    # The sample's own frames (lib_parse, lib_entry, main and its caller's inline chain) with
    # no libc debug files; libc's frames too where the machine has them.
    assert checked == 4 if debug_files.directory else checked >= 4


INLINE_SOURCE = r"""
static inline __attribute__((always_inline)) void poke(int *p, int v) { *p = v; }
static inline __attribute__((always_inline)) void relay(int *p, int v) { poke(p, v + 1); }
__attribute__((noipa)) void outer(int *p, int v) { relay(p, v * 2); }
int main(int argc, char **argv) { (void)argv; outer((int *)0, argc); return 0; }
"""


def test_inline_frames_match_gdb(make_core, gdb, debug_files, tmp_path):
    """-O2 with always_inline: gdb lists inline frames before outer, sharing its pc."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    src = tmp_path / "inl.c"
    src.write_text(INLINE_SOURCE)
    exe = tmp_path / "inl"
    subprocess.run(["gcc", "-O2", "-g", "-o", str(exe), str(src)], check=True)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _, core = cores.run_crash([str(exe)], run_dir)
    assert core is not None
    frames = run_gdb(str(exe), str(core), gdb, debug=debug_files).crashing.frames
    names = [f.function for f in frames]
    outer = names.index("outer")
    assert outer >= 1 and frames[0].frame_pc == frames[outer].frame_pc
    assert [f.is_inline for f in frames[:outer + 1]] == [True] * outer + [False]
    assert _check_against_gdb(gdb, exe, core, debug_files) >= 3
    assert _check_paths_against_gdb(gdb, exe, core, debug_files)[1] >= 3  # inline frames' DW_AT_call_file


def test_cxx_names_are_demangled_linkage_names():
    exe = cores.BUILD / "O0" / "cxx_throw"
    cores.build_samples()
    image = ElfImage(str(exe))
    index = DwarfIndex(image)
    sym = image.elf.get_section_by_name(".symtab").get_symbol_by_name("_ZN5store11load_configERKNS_6ConfigE")
    frame = index.find_function(sym[0]["st_value"] + 4)
    assert frame == SourceFrame("store::load_config(store::Config const&)",
                                "_ZN5store11load_configERKNS_6ConfigE", "cxx_throw.cpp", 12,
                                False, sym[0]["st_value"], frame.path)
    assert os.path.realpath(frame.path) == os.path.realpath(cores.SAMPLES / "cxx_throw.cpp")


def test_address_outside_any_unit_gives_nothing():
    cores.build_samples()
    index = DwarfIndex(ElfImage(str(cores.BUILD / "static" / "segv")))
    image = index.image
    abort = image.elf.get_section_by_name(".symtab").get_symbol_by_name("abort")[0]["st_value"]
    assert index.find_frames(abort) == []  # glibc's objects carry no DWARF here
    assert index.find_frames(0) == []


def test_first_lookup_is_fast():
    """The brief's budget: a first lookup in a small binary takes tens of milliseconds."""
    cores.build_samples()
    image = ElfImage(str(cores.BUILD / "O2" / "cxx_throw"))
    sym = image.elf.get_section_by_name(".symtab").get_symbol_by_name("main")[0]
    start = time.process_time()  # CPU time: other processes on the machine do not inflate it
    frames = DwarfIndex(image).find_frames(sym["st_value"])
    elapsed = time.process_time() - start
    assert frames and frames[-1].function == "main"
    assert elapsed < 1.0, elapsed  # loose: `make bench` has the numbers


def test_corrupt_dwarf_never_raises(tmp_path):
    cores.build_samples()
    data = bytearray((cores.BUILD / "O0" / "segv").read_bytes())
    image = ElfImage(str(cores.BUILD / "O0" / "segv"))
    _, off, size, _ = image.get_section_info(".debug_info")
    for i in range(off + 11, off + size, 7):
        data[i] ^= 0x5A
    bad = tmp_path / "bad"
    bad.write_bytes(bytes(data))
    index = DwarfIndex(ElfImage(str(bad)))
    sym = image.elf.get_section_by_name(".symtab").get_symbol_by_name("store_value")[0]
    assert isinstance(index.find_frames(sym["st_value"]), list)


@pytest.mark.skipif(not DEMANGLE.exists(), reason="the shared corpus is not beside this checkout")
def test_corpus_demangle_core():
    expected = json.loads((CORPUS / "elfutils" / "expected.json").read_text())
    case = next(c for c in expected["cases"] if c["exe"] == DEMANGLE.name)
    target = _target(DEMANGLE.with_name(case["core"]), DEMANGLE)
    exe = target.executable
    assert exe is not None and exe.dwarf is not None
    symtab = exe.image.elf.get_section_by_name(".symtab")
    names = {}
    for name in ("_Z7cxxfunci", "f"):
        frame = exe.dwarf.find_function(symtab.get_symbol_by_name(name)[0]["st_value"])
        names[frame.function] = frame
    assert set(names) == {"cxxfunc(int)", "f()"}
    assert names["cxxfunc(int)"].linkage_name == "_Z7cxxfunci"
    pc = target.core.threads[0].registers["rip"]  # frame 0: the faulting instruction
    frame0 = exe.dwarf.find_frames(pc - exe.bias)
    assert [(f.function, f.file, f.line) for f in frame0] == [
        ("cxxfunc(int)", *case["lines"]["cxxfunc(int)"])]
