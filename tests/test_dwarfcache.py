"""The DWARF index through the parse cache: a warm index answers as a cold one, without
opening the DWARF for addresses it has seen."""

import json
import os
import subprocess
import sys

import pytest

from coredump.dwarf import cache as dwarfcache
from coredump.dwarf import index as dwarf
from coredump.elf.image import ElfImage
from coredump.symbols import cache
from tests import cores


def _addresses(image):
    """Every function's entry and a pc inside it, from the symbol table."""
    out = []
    for sym in image.elf.get_section_by_name(".symtab").iter_symbols():
        if sym["st_info"]["type"] == "STT_FUNC" and sym["st_value"] and sym["st_size"] > 4:
            out += [sym["st_value"], sym["st_value"] + sym["st_size"] // 2]
    return sorted(out)


@pytest.mark.parametrize("variant,program", [("O0", "segv"), ("O2", "cxx_throw"), ("O2", "abort_assert")])
def test_warm_index_answers_as_cold_without_dwarf(tmp_path, monkeypatch, variant, program):
    cores.build_samples()
    path = str(cores.BUILD / variant / program)
    monkeypatch.setenv("COREDUMP_CACHE", "0")
    monkeypatch.setattr(dwarfcache, "_MEMOS", {})  # none loaded by earlier tests
    dwarf._UNITS.clear()
    cold_index = dwarf.DwarfIndex(ElfImage(path))
    addresses = _addresses(cold_index.image)
    cold = {a: cold_index.find_frames(a) for a in addresses}
    assert sum(1 for f in cold.values() if f) >= 2
    assert all(s.path and s.path.startswith("/") for f in cold.values() for s in f if s.file)  # cached too

    monkeypatch.setenv("COREDUMP_CACHE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    dwarf._UNITS.clear()
    monkeypatch.setattr(dwarfcache, "_MEMOS", {})
    filling = dwarf.DwarfIndex(ElfImage(path))
    assert {a: filling.find_frames(a) for a in addresses} == cold, "filling"
    dwarfcache.flush_frames()
    cache.flush()
    # The warm round in a new process, as a second analysis would be: nothing this process
    # holds in memory can answer for the cache.
    warm = subprocess.run([sys.executable, "-c", WARM, path, json.dumps(addresses)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    assert warm.returncode == 0, warm.stderr
    answers = json.loads(warm.stdout)
    assert answers["frames"] == {str(a): repr(cold[a]) for a in addresses}
    assert answers["opened_dwarf"] is False  # every answer came from the cache


WARM = """
import json, sys
from coredump.dwarf import index as dwarf
from coredump.elf.image import ElfImage
index = dwarf.DwarfIndex(ElfImage(sys.argv[1]))
frames = {str(a): repr(index.find_frames(a)) for a in json.loads(sys.argv[2])}
print(json.dumps({"frames": frames, "opened_dwarf": index._dwarf is not None}))
"""


def test_entry_kinds_name_the_code_and_the_file():
    cores.build_samples()
    image = ElfImage(str(cores.BUILD / "O0" / "segv"))
    tag = dwarfcache.code_tag()
    assert len(tag) == 8 and int(tag, 16) >= 0 and dwarfcache.code_tag() == tag
    kind = dwarfcache.entry_kind("lines.2", image, 123)
    assert kind == f"lines.2.{tag}.{len(image.data)}.123"


def test_code_tag_covers_every_module_demangle_imports():
    """A split of the demanglers into more modules must not leave one out of the tag (they
    import their grammars on first use: one name of each mangling)."""
    out = subprocess.run(
        [sys.executable, "-c", "import sys; from coredump.demangle import demangle; "
         "[demangle(n) for n in ('_ZN5store11load_configERKNS_6ConfigE', '_RNvCs1234_7mycrate3foo', "
         "'_ZN4core9panicking5panic17h0123456789abcdefE')]; "
         "print(' '.join(m for m, v in sys.modules.items() if m.startswith('coredump.') "
         "and not v.__file__.endswith('__init__.py')))"],
        capture_output=True, text=True, check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    loaded = set(out.stdout.split())
    assert "coredump.demangle.itanium" in loaded and "coredump.demangle.rust_v0" in loaded
    assert loaded <= set(dwarfcache._RULE_MODULES)


def test_memo_is_bounded_and_off_when_the_cache_is(tmp_path, monkeypatch):
    cores.build_samples()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    image = ElfImage(str(cores.BUILD / "O0" / "segv"))
    monkeypatch.setenv("COREDUMP_CACHE", "0")
    memo = dwarfcache.FramesMemo(image)
    memo.add(1, ())
    assert memo.get(1) is None and not (tmp_path / "coredump").exists()
    monkeypatch.setenv("COREDUMP_CACHE", "1")
    monkeypatch.setattr(dwarfcache.FramesMemo, "MAX_ADDRESSES", 2)
    memo = dwarfcache.FramesMemo(image)
    for address in (1, 2, 3):
        memo.add(address, (("f", None, "a.c", address, False, None),))
    dwarfcache.flush_frames()
    again = dwarfcache.FramesMemo(image)
    assert again.get(1) == (("f", None, "a.c", 1, False, None),) and again.get(3) is None


def test_one_memo_per_file_so_no_writer_drops_addresses(tmp_path, monkeypatch):
    """Two indexes of one file share the memo: the entry written at exit has the
    addresses both found."""
    cores.build_samples()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("COREDUMP_CACHE", "1")
    monkeypatch.setattr(dwarfcache, "_MEMOS", {})  # none loaded by earlier tests
    path = str(cores.BUILD / "O2" / "cxx_throw")
    first, second = dwarf.DwarfIndex(ElfImage(path)), dwarf.DwarfIndex(ElfImage(path))
    assert first._memo is second._memo
    addresses = _addresses(first.image)
    first.find_frames(addresses[0])
    second.find_frames(addresses[-1])
    dwarfcache.flush_frames()
    monkeypatch.setattr(dwarfcache, "_MEMOS", {})
    fresh = dwarfcache.frames_memo(ElfImage(path))
    assert fresh.get(addresses[0]) is not None and fresh.get(addresses[-1]) is not None


def test_two_writers_of_one_entry_keep_each_others_addresses(tmp_path, monkeypatch):
    """Two analyses of one binary (two processes, each with its own memo) write the same
    entry; the second must not drop what the first wrote."""
    cores.build_samples()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("COREDUMP_CACHE", "1")
    image = ElfImage(str(cores.BUILD / "O0" / "segv"))
    first, second = dwarfcache.FramesMemo(image), dwarfcache.FramesMemo(image)
    first.add(1, (("f", None, "a.c", 1, False, None),))
    second.add(2, (("g", None, "b.c", 2, False, None),))
    second.flush()
    first.flush()
    again = dwarfcache.FramesMemo(image)
    assert again.get(1) == (("f", None, "a.c", 1, False, None),)
    assert again.get(2) == (("g", None, "b.c", 2, False, None),)


def test_code_tag_changes_with_a_rule_module_file_and_only_then(tmp_path, monkeypatch):
    package = tmp_path / "coredump"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "rules.py").write_text("RULE = 1\n")
    import coredump

    monkeypatch.setattr(coredump, "__file__", str(package / "__init__.py"))
    dwarfcache.code_tag.cache_clear()
    tag = dwarfcache.code_tag(("coredump.rules",))
    dwarfcache.code_tag.cache_clear()
    assert dwarfcache.code_tag(("coredump.rules",)) == tag and len(tag) == 8
    (package / "rules.py").write_text("RULE = 22\n")  # (a rewrite within one clock tick keeps the times)
    dwarfcache.code_tag.cache_clear()
    assert dwarfcache.code_tag(("coredump.rules",)) != tag
    (package / "rules.py").unlink()
    dwarfcache.code_tag.cache_clear()
    assert dwarfcache.code_tag(("coredump.rules",)) == f"v{coredump.__version__}"
    dwarfcache.code_tag.cache_clear()
