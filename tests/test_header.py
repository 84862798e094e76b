"""coredump.elf.header reads the Elf64_Ehdr as pyelftools does, overflow counts included."""

import pytest
from elftools.elf.elffile import ELFFile

from coredump.elf.header import ehdr_of, read_ehdr
from tests import corewriter as cw
from tests.cores import BUILD, build_samples

BINARIES = ["O0/segv", "stripped/cxx_throw", "static/segv", "O2/libcrash.so"]


def _both(path):
    with open(path, "rb") as f:
        data = f.read()
        return read_ehdr(data), ehdr_of(ELFFile(f))


@pytest.mark.parametrize("name", BINARIES)
def test_same_fields_as_pyelftools(name):
    build_samples()
    ours, theirs = _both(str(BUILD / name))
    assert ours == theirs


def test_same_fields_on_the_libraries_this_process_maps():
    with open("/proc/self/maps") as maps:
        libs = sorted({line.split()[-1] for line in maps if ".so" in line and line.split()[-1].startswith("/")})
    assert libs
    for path in libs:
        ours, theirs = _both(path)
        assert ours == theirs, path


def test_pn_xnum_count_from_section_0(tmp_path):
    desc = cw.simple_process()
    desc.pn_xnum = True
    path = tmp_path / "core"
    cw.write_core(path, desc)
    ours, theirs = _both(str(path))
    assert ours == theirs and ours.e_type == "ET_CORE" and 0 < ours.e_phnum < 0xFFFF


def test_other_classes_are_left_to_pyelftools():
    assert read_ehdr(b"\x7fELF\x01\x01" + bytes(58)) is None  # ELFCLASS32
    assert read_ehdr(b"\x7fELF\x02\x02" + bytes(58)) is None  # big-endian
    assert read_ehdr(b"\x7fELF\x02\x01") is None  # shorter than Elf64_Ehdr
