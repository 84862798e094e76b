"""demangle() against c++filt (the oracle only) on names from real binaries."""

import shutil
import subprocess
from pathlib import Path

import pytest

from coredump.demangle import demangle
from coredump.elf.image import ElfImage
from tests import cores


@pytest.mark.parametrize("mangled, shown", [
    ("_ZN5store11load_configERKNS_6ConfigE", "store::load_config(store::Config const&)"),
    ("_ZNSt13runtime_errorC1EPKc", "std::runtime_error::runtime_error(char const*)"),
    ("_Z7cxxfunci", "cxxfunc(int)"),
    ("_ZN3foo3barE.cold", "foo::bar [clone .cold]"),
    ("_ZN3std2rt10lang_start17h0123456789abcdefE", "std::rt::lang_start"),
    ("_ZN4core3ptr42drop_in_place$LT$alloc..string..String$GT$17h0123456789abcdefE",
     "core::ptr::drop_in_place<alloc::string::String>"),
])
def test_known_names(mangled, shown):
    assert demangle(mangled) == shown


@pytest.mark.parametrize("name", ["main", "", "_Z", "_ZN3fooE3", "_Zfoo", "store_value"])
def test_not_mangled_or_malformed_gives_none(name):
    assert demangle(name) is None


def _names():
    cores.build_samples()
    names = set()
    paths = [cores.BUILD / "O0" / "cxx_throw", cores.BUILD / "O2" / "cxx_throw"]
    for path in paths + [p for p in ("/usr/lib/x86_64-linux-gnu/libstdc++.so.6",) if Path(p).exists()]:
        elf = ElfImage(str(path)).elf
        for sec in (".symtab", ".dynsym"):
            table = elf.get_section_by_name(sec)
            if table is not None and hasattr(table, "iter_symbols"):
                names.update(s.name.split("@")[0] for s in table.iter_symbols() if s.name.startswith("_Z"))
    return sorted(names)


def test_matches_cxxfilt_on_real_symbols():
    cxxfilt = shutil.which("c++filt")
    if cxxfilt is None:
        pytest.skip("c++filt (binutils) is not installed: it is the oracle")
    names = _names()
    assert len(names) > 20
    shown = subprocess.run([cxxfilt], input="\n".join(names), capture_output=True, text=True,
                           check=True).stdout.splitlines()
    wrong = [(n, want, demangle(n)) for n, want in zip(names, shown) if (demangle(n) or n) != want]
    assert not wrong[:10], f"{len(wrong)} of {len(names)} differ from c++filt"
