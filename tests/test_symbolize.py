"""symbolize_frames against gdb's ``bt``: physical frames in, gdb's numbered frames out."""

from pathlib import Path

import pytest

from coredump.analysis import analyze_core
from coredump.elf.core import open_core
from coredump.model import Frame, Trust
from coredump.symbols.finder import FileFinder, FinderOptions
from coredump.symbols.symbolize import symbolize_frames
from coredump.target import Target
from tests import cores
from tests.gdb_oracle import run_gdb, strip_params


def _physical(frames):
    """gdb's physical frames, as an unwinder finds them: without its inline frames (they
    share their caller's pc) and tail-call frames (no stack frame of their own; put back
    after symbolization, test_tailcall.py)."""
    out = []
    for f in frames:
        if not f.is_inline:
            out.append(Frame(index=len(out), pc=f.frame_pc, trust=Trust.CONTEXT if not out else Trust.CFI))
    return out


def _symbolized(gdb, exe: Path, core: Path, debug_files):
    target = Target(open_core(str(core)), FileFinder(debug_files.finder_options(exe=str(exe))))
    want = run_gdb(str(exe), str(core), gdb, debug=debug_files).crashing.physical_frames()
    return want, symbolize_frames(target, _physical(want))


@pytest.mark.parametrize("variant, program", [
    ("O0", "segv"), ("O2", "segv"), ("static", "segv"), ("O0", "cxx_throw"), ("O2", "cxx_throw"),
    ("O0", "uselib"), ("O2", "uselib"), ("O2", "abort_assert"),
])
def test_frames_match_gdb(make_core, gdb, debug_files, variant, program):
    core = make_core(variant, program)
    want, got = _symbolized(gdb, cores.BUILD / variant / program, core, debug_files)
    assert [f.index for f in got] == list(range(len(want)))
    starts = {m.path: m.start for m in Target(
        open_core(str(core)), FileFinder(FinderOptions(exe=str(cores.BUILD / variant / program)))).modules}
    for g, f in zip(want, got):
        assert f.pc == g.frame_pc and f.module is not None
        assert f.inline == g.is_inline, (g, f)
        assert f.module_offset == f.pc - starts[f.module]
        if g.file is not None:  # gdb had debug info: the DWARF name and line
            assert strip_params(f.function) == g.function, (g, f)
            assert (f.file, f.line) == (g.file, g.line), (g, f)
        elif g.function is not None:  # an ELF symbol
            assert f.function == g.function or strip_params(f.function) == g.function, (g, f)
        else:  # gdb's `??`
            assert f.function is None, (g, f)


def test_frames_past_an_omitted_stretch_keep_their_numbers(make_core):
    """A walk that hit the frame cap keeps the bottom frames under their own numbers
    (gdb's `bt -N` numbers); symbolizing must not renumber them into the gap."""
    core = make_core("O0", "segv")
    target = Target(open_core(str(core)), FileFinder(FinderOptions(exe=str(cores.BUILD / "O0" / "segv"))))
    pc = target.core.threads[0].registers["rip"]
    frames = [Frame(0, pc), Frame(1, pc + 1, trust=Trust.CFI), Frame(5000, pc + 1, trust=Trust.CFI)]
    assert [f.index for f in symbolize_frames(target, frames)] == [0, 1, 5000]


def test_cxx_frame_keeps_the_raw_name(make_core, gdb, debug_files):
    core = make_core("O0", "cxx_throw")
    _, got = _symbolized(gdb, cores.BUILD / "O0" / "cxx_throw", core, debug_files)
    frame = next(f for f in got if f.function and f.function.startswith("store::"))
    assert frame.function == "store::load_config(store::Config const&)"
    assert frame.mangled == "_ZN5store11load_configERKNS_6ConfigE"
    assert frame.symbol_offset is not None and frame.symbol_offset > 0


def test_named_frames_and_unknown_modules_are_kept(make_core):
    core = make_core("O0", "segv")
    target = Target(open_core(str(core)), FileFinder(FinderOptions(exe=str(cores.BUILD / "O0" / "segv"))))
    pc = target.core.threads[0].registers["rip"]
    frames = [Frame(0, pc), Frame(1, pc, trust=Trust.SIGNAL, function="<signal handler called>"),
              Frame(2, 8, trust=Trust.SCAN)]
    got = symbolize_frames(target, frames)
    assert got[0].function == "store_value" and got[0].line is not None
    assert got[1].function == "<signal handler called>" and got[1].file is None
    assert got[2].function is None and got[2].module is None and got[2].index == 2


@pytest.mark.parametrize("variant, program", [("O0", "segv"), ("O2", "uselib"), ("O2", "cxx_throw")])
def test_source_paths_match_gdb(make_core, gdb, debug_files, variant, program):
    """Each frame with a source file carries its absolute path: gdb's ``bt`` file with ``set
    filename-display absolute``; frames without source carry none."""
    exe = cores.BUILD / variant / program
    core = make_core(variant, program)
    target = Target(open_core(str(core)), FileFinder(debug_files.finder_options(exe=str(exe))))
    want = run_gdb(str(exe), str(core), gdb, extra=("-iex", "set filename-display absolute"),
                   debug=debug_files).crashing.physical_frames()
    got = symbolize_frames(target, _physical(want))
    sourced = [(g, f) for g, f in zip(want, got) if g.file is not None]
    assert sourced and len(got) == len(want)
    for g, f in sourced:
        assert f.source_path == g.file, (g, f)
        assert f.source_path == f.file or f.source_path.endswith("/" + f.file), (g, f)
    assert all(f.source_path is None for g, f in zip(want, got) if g.file is None and f.file is None)


@pytest.mark.parametrize("variant", ["O0", "O2"])
def test_offsets_are_never_negative(make_core, debug_files, variant):
    """An offset counts from the start of the code that holds the pc (issue #15: libc6-dbg's
    __assert_fail_base, whose cold part lies before its entry, was `+-59787`), in the JSON
    and the text alike."""
    from coredump.report.json import crash_to_dict
    from coredump.report.text import render_text

    exe = cores.BUILD / variant / "abort_assert"
    crash = analyze_core(str(make_core(variant, "abort_assert")), debug_files.analyze_options(exe=str(exe)))
    frames = [f for t in crash_to_dict(crash)["threads"] for f in t["frames"]]
    if debug_files.directory is None:  # libc's DWARF names the frame whose cold part it is
        assert "__assert_fail_base" in [f["function"] for f in frames]
    assert [f for f in frames if f["offset"] is not None and f["offset"] < 0] == []
    assert "+-" not in render_text(crash)


def test_a_pc_is_symbolized_once_per_analysis_by_its_pc_and_lookup_address(make_core, monkeypatch):
    """Frames at one pc share what the first found, unless their lookup address differs: a
    function's entry as frame 0 (the pc itself) and as a caller's return address (pc - 1,
    the code before it). Either order gives each what a fresh analysis gives it."""
    from coredump.symbols.symtab import find_symbol

    core = make_core("O2", "threads")
    exe = cores.BUILD / "O2" / "threads"

    def fresh():
        return Target(open_core(str(core)), FileFinder(FinderOptions(exe=str(exe))))

    target = fresh()
    module = next(m for m in target.modules if m.path == str(exe))
    entry = find_symbol(module.image, "crunch") + module.bias
    frames = [Frame(0, entry), Frame(1, entry, trust=Trust.CFI), Frame(2, entry + 3), Frame(3, entry + 3)]
    alone = [symbolize_frames(fresh(), [f])[0] for f in frames]
    assert alone[0].function == "crunch" and alone[0].symbol_offset == 0
    assert (alone[1].function, alone[1].symbol_offset) != ("crunch", 0)
    asked = []
    find_frames = module.dwarf.find_frames
    monkeypatch.setattr(module.dwarf, "find_frames", lambda vaddr: asked.append(vaddr) or find_frames(vaddr))
    for order in (frames, frames[::-1]):
        got = {f.index: f for f in symbolize_frames(target, order)}
        assert [got[f.index] for f in frames] == alone
    assert sorted(asked) == sorted({f.lookup_pc - module.bias for f in frames})  # 3 addresses, 8 frames
