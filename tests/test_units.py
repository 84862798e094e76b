"""Our .debug_aranges reader (coredump.dwarf.units.read_aranges) against pyelftools' on the
sample binaries and libc's debug file, and on truncated tables."""

from __future__ import annotations

import pytest

from coredump.dwarf.units import read_aranges
from coredump.elf.image import open_image
from tests import cores
from tests.test_dies import _binaries, _libc_debug_file


def _compare(path) -> int:
    image = open_image(str(path))
    dwarfinfo = image.elf.get_dwarf_info(relocate_dwarf_sections=False, follow_links=False)
    if dwarfinfo.debug_aranges_sec is None:
        return 0
    ours, listed = read_aranges(dwarfinfo.debug_aranges_sec.stream.getbuffer())
    entries = dwarfinfo.get_aranges().entries
    theirs = sorted((e.begin_addr, e.begin_addr + e.length, e.info_offset) for e in entries if e.length)
    assert ours == theirs, path
    assert listed == {e.info_offset for e in entries}
    return len(ours)


def test_aranges_match_pyelftools():
    cores.build_samples()
    total = sum(_compare(p) for p in _binaries())
    libc = _libc_debug_file()
    if libc is not None:
        total += _compare(libc)
    assert total > 100


def test_truncated_aranges_raise_value_error():
    path = cores.BUILD / "O0" / "segv"
    image = open_image(str(path))
    data = bytes(image.elf.get_dwarf_info().debug_aranges_sec.stream.getbuffer())
    for cut in range(1, len(data)):
        try:
            read_aranges(data[:cut])
        except ValueError:
            continue
        pytest.fail(f"a table cut at {cut} of {len(data)} bytes read as whole")
