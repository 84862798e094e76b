"""coredump.dwarf.sections: the DWARFInfo over lazy sections holds what pyelftools'
get_dwarf_info reads, compressed or not, and decompresses only the sections a lookup reads."""

import shutil
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from coredump.dwarf.dwarfinfo import dwarf_info
from coredump.dwarf.index import DwarfIndex
from coredump.dwarf.sections import DWARF_SECTIONS
from coredump.elf.compressed import CompressedSectionError
from coredump.elf.image import ElfImage
from tests import cores

KINDS = ("none", "zlib", "zstd", "zlib-gnu")  # objcopy --compress-debug-sections=KIND


def _image(tmp_path, kind, name="O0/segv"):
    cores.build_samples()
    plain = cores.BUILD / name
    if kind == "none":
        # A copy of its own: what another test of this process read from the sample (a memo
        # keyed by the file) must not answer for the sections under test.
        dst = tmp_path / plain.name
        shutil.copyfile(plain, dst)
        return ElfImage(str(dst))
    objcopy = shutil.which("objcopy")
    if objcopy is None:
        pytest.skip("objcopy (binutils) is not installed: it makes the compressed files")
    dst = tmp_path / plain.name
    proc = subprocess.run([objcopy, f"--compress-debug-sections={kind}", str(plain), str(dst)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"this objcopy cannot compress with {kind}: {proc.stderr.strip()}")
    return ElfImage(str(dst))


def _contents(section):
    return None if section is None or section.size == 0 else (section.size, bytes(section.stream.getbuffer()))


@pytest.mark.parametrize("kind", KINDS)
def test_same_sections_as_pyelftools(tmp_path, kind):
    image = _image(tmp_path, kind)
    plain = ELFFile(open(cores.BUILD / "O0" / "segv", "rb")).get_dwarf_info(relocate_dwarf_sections=False,
                                                                            follow_links=False)
    ours = dwarf_info(image)
    for param in DWARF_SECTIONS:
        assert _contents(getattr(ours, param)) == _contents(getattr(plain, param)), param
    assert _contents(ours.debug_info_sec)


@pytest.mark.parametrize("kind", ["none", "zlib", "zstd"])
def test_a_lookup_decompresses_only_what_it_reads(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("COREDUMP_CACHE", "0")  # an earlier test's entries would answer for the DWARF
    image = _image(tmp_path, kind, "O2/segv")
    index = DwarfIndex(image)
    main = next(s for s in image.elf.get_section_by_name(".symtab").iter_symbols() if s.name == "main")
    frames = index.find_frames(main["st_value"])
    assert frames and frames[-1].function == "main"
    made = {name for param, name in DWARF_SECTIONS.items()
            if getattr(index.dwarfinfo, param) is not None and getattr(index.dwarfinfo, param)._stream is not None}
    assert ".debug_info" in made and ".debug_line" in made
    assert not made & {".debug_loclists", ".debug_loc", ".debug_frame", ".eh_frame"}


def test_a_bad_compressed_section_fails_its_reader_only(tmp_path):
    image = _image(tmp_path, "zlib")
    at, size = image.get_section_info(".debug_info")[1:3]
    path = tmp_path / "broken"
    data = bytearray(open(image.path, "rb").read())
    data[at + 24:at + size] = bytes(size - 24)  # the zlib stream after the Elf64_Chdr is gone
    path.write_bytes(bytes(data))
    broken = ElfImage(str(path))
    with pytest.raises(CompressedSectionError):
        dwarf_info(broken).debug_info_sec.stream.read(100)
    main = next(s for s in image.elf.get_section_by_name(".symtab").iter_symbols() if s.name == "main")
    assert DwarfIndex(image).find_frames(main["st_value"])  # the same lookup in the sound file
    assert DwarfIndex(broken).find_frames(main["st_value"]) == []
