"""Symbol tables read with struct against the same tables read through pyelftools."""

import os
import shutil
import subprocess
import sys

import pytest

from coredump.elf.image import ElfImage
from coredump.symbols import symtab
from tests import cores


def _both(path, monkeypatch):
    image = ElfImage(path)
    fast = symtab.SymbolTable.__new__(symtab.SymbolTable)
    fast._read(image)
    with monkeypatch.context() as m:
        m.setattr(symtab, "_read_elf64le",
                  lambda image, name, best: [symtab.SymbolTable._consider(best, s) for s in _symbols(image, name)])
        slow = symtab.SymbolTable.__new__(symtab.SymbolTable)
        slow._read(image)
    return fast, slow


def _symbols(image, name):
    """pyelftools' symbols of section `name`: none unless it is a symbol table with contents."""
    sec = image.elf.get_section_by_name(name)
    if sec is None or sec["sh_type"] == "SHT_NOBITS" or not hasattr(sec, "iter_symbols"):
        return ()
    return sec.iter_symbols()


def _loaded_libraries():
    """Shared libraries mapped into this Python (libc, libm, ...), from /proc/self/maps."""
    found = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if ".so" in os.path.basename(path) and os.path.isfile(path):
                    found.add(os.path.realpath(path))
    except OSError:
        pass
    return sorted(found)


def _paths():
    cores.build_samples()
    out = [str(cores.BUILD / v / p) for v in ("O0", "O2", "static") for p in ("segv", "cxx_throw")]
    out.append(str(cores.BUILD / "O2" / "libcrash.so"))
    out += _loaded_libraries()
    if shutil.which("g++"):
        done = subprocess.run(["g++", "-print-file-name=libstdc++.so.6"], capture_output=True, text=True)
        if done.returncode == 0 and os.path.isfile(done.stdout.strip()):
            out.append(os.path.realpath(done.stdout.strip()))
    out.append(os.path.realpath(sys.executable))
    return out


def test_struct_reader_matches_pyelftools(monkeypatch):
    checked = 0
    for path in _paths():
        fast, slow = _both(path, monkeypatch)
        assert (fast.source, fast._addrs, fast._entries) == (slow.source, slow._addrs, slow._entries), path
        checked += bool(fast._entries)
    assert checked >= 5


def test_ifunc_symbols_stay_out_as_before(monkeypatch):
    """pyelftools names STT_GNU_IFUNC "STT_LOOS", so tables have never held ifunc
    resolvers; the struct reader keeps it that way (a change would be a separate one)."""
    libc = next((p for p in _paths() if os.path.basename(p).startswith("libc.so")), None)
    if libc is None:
        pytest.skip("no libc found")
    image = ElfImage(libc)
    sec = image.elf.get_section_by_name(".dynsym")
    ifuncs = {s["st_value"] for s in sec.iter_symbols() if s["st_info"]["type"] == "STT_LOOS"}
    if not ifuncs:
        pytest.skip("this libc has no ifunc symbols")
    fast, _ = _both(libc, monkeypatch)
    only_ifunc = ifuncs - {a for s in sec.iter_symbols() if s["st_info"]["type"] in ("STT_FUNC", "STT_NOTYPE")
                           for a in [s["st_value"]]}
    assert only_ifunc and not only_ifunc & set(fast._addrs)


def _pyelftools_symbol(image, name):
    """The defined symbol `name` as pyelftools' symbol tables give it (the oracle)."""
    for section in (".dynsym", ".symtab"):
        sec = image.elf.get_section_by_name(section)
        if not hasattr(sec, "get_symbol_by_name"):  # absent, or SHT_NOBITS (stripped into a debug file)
            continue
        for sym in sec.get_symbol_by_name(name) or ():
            if sym["st_shndx"] != "SHN_UNDEF" and sym["st_value"]:
                return sym["st_value"]
    return None


@pytest.mark.parametrize("name", ["__abort_msg", "malloc", "abort", "environ", "no_such_symbol_here"])
def test_find_symbol_agrees_with_pyelftools_in_libraries(name):
    for path in sorted(_loaded_libraries()):
        image = ElfImage(path)
        table = symtab.SymbolTable(image)
        assert table.find_symbol(name) == _pyelftools_symbol(image, name), (path, name)
        assert image.section_link(".dynsym") == image.elf.get_section(
            image.elf.get_section_by_name(".dynsym")["sh_link"]).name


def test_find_symbol_in_a_static_program_uses_symtab():
    cores.build_samples()
    image = ElfImage(str(cores.BUILD / "static" / "abort_assert"))
    table = symtab.SymbolTable(image)
    assert image.get_section_info(".dynsym") is None and image.section_link(".symtab") == ".strtab"
    assert table.find_symbol("__abort_msg") == _pyelftools_symbol(image, "__abort_msg") is not None


def test_function_range_is_nm_size():
    """[start, start + st_size) of the symbol starting at the address, as `nm -S` lists it."""
    exe = cores.BUILD / "O2" / "segv"
    cores.build_samples()
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) is not installed: the oracle for symbol sizes")
    out = subprocess.run([nm, "-S", str(exe)], capture_output=True, text=True, check=True).stdout
    sizes = {f[3]: (int(f[0], 16), int(f[1], 16)) for f in map(str.split, out.splitlines())
             if len(f) == 4 and f[2] in "tT"}
    table = symtab.SymbolTable(ElfImage(str(exe)))
    start, size = sizes["build"]
    assert table.function_range(start) == (start, start + size)
    assert table.function_range(start + 1) is None  # not a symbol's start


def test_a_cache_entry_of_another_shape_is_read_again(tmp_path, monkeypatch):
    from coredump.symbols import cache

    cores.build_samples()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    image = ElfImage(str(cores.BUILD / "O0" / "segv"))
    kind = f"symtab.{symtab._FORMAT}.{len(image.data)}"
    cache.put(image.build_id, kind, "garbage")
    table = symtab.SymbolTable(image)
    assert len(table) > 5 and table.lookup(table._addrs[0])[0]


def test_a_size_0_symbol_ends_with_its_code_section():
    """gdb's minimal-symbol rule, bounded by the section that holds the symbol (issue #15
    item 5: a pc past every function was named after the last symbol before it): crti.o's
    _fini (st_size 0) covers the rest of .fini and not the padding after it; past _init's
    .init, the PLT has no name; the linker's _end (in .bss) covers no code."""
    cores.build_samples()
    image = ElfImage(str(cores.BUILD / "O0" / "segv"))
    table = symtab.SymbolTable(image)
    fini, _, fini_size, _ = image.get_section_info(".fini")
    init, _, init_size, _ = image.get_section_info(".init")
    plt = image.get_section_info(".plt")[0]
    assert table.lookup(fini + 1) == ("_fini", 1)
    assert table.lookup(fini + fini_size) is None
    assert table.lookup(init + init_size - 1) == ("_init", init_size - 1)
    assert table.lookup(plt) is None
    end = table.find_symbol("_end")
    assert end and table.lookup(end) is None and table.lookup(end + 0x1000) is None
    assert table.function_range(fini) == (fini, fini + fini_size)


def test_names_are_remembered_per_image(monkeypatch):
    """find_symbol_entry answers each (image, name) once: two files defining one name keep
    their own addresses, a name one file lacks stays None there, and a second lookup scans
    no table again."""
    cores.build_samples()
    o0, o2 = ElfImage(str(cores.BUILD / "O0" / "segv")), ElfImage(str(cores.BUILD / "O2" / "segv"))
    scans = []
    real_scan = symtab._scan_elf64le
    monkeypatch.setattr(symtab, "_scan_elf64le", lambda *a: scans.append(a[-1]) or real_scan(*a))
    fresh = {(img, name): symtab._find_symbol_entry(img, name)
             for img in (o0, o2) for name in ("main", "store_value", "no_such_symbol")}
    assert fresh[(o0, "main")] and fresh[(o2, "main")] and fresh[(o0, "main")] != fresh[(o2, "main")]
    assert fresh[(o0, "no_such_symbol")] is None
    scans.clear()
    for _ in range(3):
        for (img, name), want in fresh.items():
            assert symtab.find_symbol_entry(img, name) == want
    assert sorted(set(scans)) == ["main", "no_such_symbol", "store_value"]
    assert len(scans) <= 2 * len(fresh)  # .dynsym then .symtab, once per (image, name)
