"""The struct-only program header reader against pyelftools on a real core."""

import pytest
from elftools.elf.elffile import ELFFile

from coredump.elf.phdrs import read_phdrs
from coredump.errors import CoreFormatError
from tests.cores import BUILD


def test_phdrs_match_pyelftools(make_core):
    core = make_core("O0", "threads")
    with open(core, "rb") as f:
        ehdr, ours = read_phdrs(f, str(core))
        theirs = [s.header for s in ELFFile(f).iter_segments()]
    assert ehdr[:4] == b"\x7fELF" and len(ours) == len(theirs) > 2
    for a, b in zip(ours, theirs):
        assert (a.p_offset, a.p_vaddr, a.p_filesz, a.p_memsz) == (b.p_offset, b.p_vaddr, b.p_filesz, b.p_memsz)


def test_rejects_what_is_not_a_core(make_core, tmp_path):
    make_core("O0", "segv")  # builds the samples
    exe = BUILD / "O0" / "segv"
    with open(exe, "rb") as f, pytest.raises(CoreFormatError, match="not a core"):
        read_phdrs(f, str(exe))
    (tmp_path / "short").write_bytes(b"\x7fELF\2\1")
    with open(tmp_path / "short", "rb") as f, pytest.raises(CoreFormatError, match="64-bit little-endian"):
        read_phdrs(f, "short")
