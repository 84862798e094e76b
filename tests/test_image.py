"""ElfImage's struct-read headers agree with pyelftools on real binaries."""

import pytest
from elftools.elf.elffile import ELFFile

from coredump.elf.image import ElfImage
from tests.cores import BUILD, build_samples

BINARIES = ["O0/segv", "stripped/cxx_throw", "static/segv", "O2/libcrash.so"]


@pytest.mark.parametrize("name", BINARIES)
def test_headers_match_pyelftools(name):
    build_samples()
    path = str(BUILD / name)
    image = ElfImage(path)
    with open(path, "rb") as f:
        elf = ELFFile(f)
        sections = {}
        for sec in elf.iter_sections():
            sections.setdefault(sec.name, (sec["sh_addr"], sec["sh_offset"], sec["sh_size"], sec["sh_type"]))
        loads = [(s.header.p_vaddr, s.header.p_memsz, s.header.p_offset, s.header.p_filesz, s.header.p_flags)
                 for s in elf.iter_segments() if s.header.p_type == "PT_LOAD"]
        build_id = next(n["n_desc"] for s in elf.iter_sections() if s.name == ".note.gnu.build-id"
                        for n in s.iter_notes())
    assert image._sections == sections
    assert image.load_segments == loads
    assert image.build_id == build_id


def test_truncated_section_headers(tmp_path):
    build_samples()
    data = (BUILD / "O0" / "segv").read_bytes()
    shoff = int.from_bytes(data[0x28:0x30], "little")
    path = tmp_path / "cut"
    path.write_bytes(data[:shoff + 64 * 3])  # the section-name table's header is gone
    image = ElfImage(str(path))
    assert image.get_section_info(".text") is None and image.load_segments
