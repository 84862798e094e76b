"""AddressSpace: bisect over PT_LOAD ranges, file fallback past p_filesz, faults never zeros."""

import struct

import pytest

from coredump.elf.memory import PF_R, PF_X, AddressSpace, Segment
from coredump.elf.notes import FileMapping
from coredump.errors import MemoryFault

DATA = bytes(range(256)) * 64  # 16 KiB of "core file"


def space(open_file=None, truncated_at=None):
    segs = [
        # 0x1000 bytes dumped at file offset 0, 0x1000 more not dumped (p_memsz > p_filesz).
        Segment(0x400000, 0x2000, 0, 0x1000, PF_R | PF_X, 0x1000),
        Segment(0x7f0000, 0x1000, 0x1000, 0x1000, PF_R,
                0x1000 if truncated_at is None else truncated_at),
        Segment(0x7f1000, 0x1000, 0x2000, 0x1000, PF_R, 0x1000),
    ]
    files = [FileMapping(0x400000, 0x402000, 0x3000, "/lib/libx.so")]
    return AddressSpace(DATA, list(reversed(segs)), files, open_file)


def test_read_inside_a_segment():
    assert space().read(0x400010, 4) == DATA[0x10:0x14]


def test_read_across_adjacent_segments():
    assert space().read(0x7f0ffe, 4) == DATA[0x1ffe:0x2002]


def test_word_and_cstring():
    mem = space()
    assert mem.read_word(0x400008) == struct.unpack_from("<Q", DATA, 8)[0]
    assert mem.read_cstring(0x400001) == DATA[1:256]


def test_unmapped_address_faults_with_its_address():
    with pytest.raises(MemoryFault) as exc:
        space().read(0x500000, 1)
    assert exc.value.address == 0x500000


def test_past_filesz_without_file_faults_not_zeros():
    with pytest.raises(MemoryFault) as exc:
        space().read(0x401000, 8)
    assert exc.value.address == 0x401000


def test_past_filesz_reads_the_mapped_file_at_its_offset():
    backing = bytes(reversed(range(256))) * 128
    mem = space(lambda name: backing if name == "/lib/libx.so" else None)
    # 0x401000 is 0x1000 into the mapping, whose file offset is 0x3000.
    assert mem.read(0x401000, 16) == backing[0x4000:0x4010]
    # A read spanning dumped and not-dumped pages stitches both.
    assert mem.read(0x400ff8, 16) == DATA[0xff8:0x1000] + backing[0x4000:0x4008]


def test_truncated_core_faults_in_missing_part():
    mem = space(truncated_at=0x800)
    assert mem.read(0x7f0000, 4) == DATA[0x1000:0x1004]
    with pytest.raises(MemoryFault):
        mem.read(0x7f0800, 4)


def test_is_executable():
    mem = space()
    assert mem.is_executable(0x400000)
    assert not mem.is_executable(0x7f0000)
    assert not mem.is_executable(0x10)
