"""Compressed sections (coredump/elf/compressed.py): SHF_COMPRESSED zlib and zstd and GNU
.zdebug_*, made by binutils' objcopy from real builds; a program whose own functions have
only a compressed .debug_frame, unwound by it and checked against gdb; and hostile headers."""

import os
import shutil
import struct
import subprocess
import zlib

import pytest

from coredump.analysis import AnalyzeOptions, analyze_core
from coredump.elf.compressed import (
    MAX_DECOMPRESSED,
    SHF_COMPRESSED,
    CompressedSectionError,
    decompress_chdr,
    inflating_stream,
    section_contents,
)
from coredump.elf.image import ElfImage
from coredump.model import Trust
from tests import cores
from tests.gdb_oracle import run_gdb

# objcopy --compress-debug-sections=TYPE: gABI SHF_COMPRESSED with zlib or zstd, GNU .zdebug_*.
KINDS = ("zlib", "zstd", "zlib-gnu")


def _objcopy():
    found = shutil.which("objcopy")
    if found is None:
        pytest.skip("objcopy (binutils) is not installed: it makes the compressed files")
    return found


def _compressed(src, dst, kind):
    proc = subprocess.run([_objcopy(), f"--compress-debug-sections={kind}", str(src), str(dst)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"this objcopy cannot compress with {kind}: {proc.stderr.strip()}")
    return dst


@pytest.mark.parametrize("kind", KINDS)
def test_contents_are_the_uncompressed_section(tmp_path, kind):
    cores.build_samples()
    plain = cores.BUILD / "O0" / "segv"
    packed = ElfImage(str(_compressed(plain, tmp_path / "segv", kind)))
    original = ElfImage(str(plain))
    for name in (".debug_info", ".debug_line", ".debug_abbrev"):
        if kind == "zlib-gnu":
            assert packed.section_bytes(name) is None and packed.section_bytes(".z" + name[1:]) is not None
        else:
            assert packed.section_flags(name) & SHF_COMPRESSED
        assert bytes(section_contents(packed, name)) == bytes(original.section_bytes(name))
    assert not original.section_flags(".debug_info") & SHF_COMPRESSED
    assert section_contents(original, ".debug_line") == original.section_bytes(".debug_line")


@pytest.fixture(scope="module")
def debug_frame_only(tmp_path_factory):
    """segv.c at -O2 without unwind tables: its functions' CFI is in .debug_frame only (gcc
    emits .eh_frame for crt's code alone)."""
    reason = cores.core_skip_reason()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("debug-frame-only")
    exe = out / "segv"
    subprocess.run(["gcc", "-O2", "-g", "-fomit-frame-pointer", "-fno-asynchronous-unwind-tables",
                    "-fno-unwind-tables", "-o", str(exe), str(cores.SAMPLES / "segv.c")], check=True)
    return exe


@pytest.mark.parametrize("kind", KINDS)
def test_a_compressed_debug_frame_unwinds_as_gdb_does(gdb, tmp_path, debug_frame_only, kind):
    exe = _compressed(debug_frame_only, tmp_path / "segv", kind)
    rc, core = cores.run_crash([str(exe)], tmp_path)
    assert core is not None, rc
    crash = analyze_core(str(core), AnalyzeOptions(exe=str(exe)))
    ours = crash.threads[crash.crashing_thread].frames
    theirs = run_gdb(str(exe), str(core), gdb).crashing.physical_frames()
    physical = [f for f in ours if not f.tailcall]
    assert [(f.function, f.pc) for f in physical] == [(t.function, t.pc or t.frame_pc) for t in theirs]
    # The program's frames were found by their CFI (.debug_frame), not by scanning the stack.
    program = physical[:[f.function for f in physical].index("main") + 1]
    assert program[0].function == "store_value" and len(program) >= 3
    assert all(f.trust == Trust.CFI for f in program[1:])


def _zlib_chdr(data: bytes, ch_size=None, ch_type=1) -> bytes:
    """An Elf64_Chdr (gABI: ch_type, ch_reserved, ch_size, ch_addralign) and zlib data."""
    return struct.pack("<IIQQ", ch_type, 0, len(data) if ch_size is None else ch_size, 1) + zlib.compress(data)


@pytest.mark.parametrize("raw, why", [
    (b"\1\0\0\0", "shorter than its Elf64_Chdr"),
    (_zlib_chdr(b"x" * 100, ch_size=MAX_DECOMPRESSED + 1), "claims"),
    (_zlib_chdr(b"x" * 100, ch_size=50), "not the 50"),
    (_zlib_chdr(b"x" * 100, ch_size=200), "not the 200"),
    (_zlib_chdr(b"x" * 100, ch_type=7), "unknown ch_type"),
    (struct.pack("<IIQQ", 1, 0, 100, 1) + b"not zlib at all", "zlib"),
    (struct.pack("<IIQQ", 2, 0, 100, 1) + b"not zstd at all", "zstd"),
])
def test_hostile_headers_are_refused(raw, why):
    with pytest.raises(CompressedSectionError, match=why):
        decompress_chdr(raw)


def test_a_bomb_is_cut_at_its_claimed_size():
    """A section claiming 1000 bytes whose data inflates to 64 MiB is refused after reading
    1001 bytes, not inflated whole."""
    raw = _zlib_chdr(b"\0" * (64 << 20), ch_size=1000)
    with pytest.raises(CompressedSectionError, match="decompresses to 1001 bytes"):
        decompress_chdr(raw)


def _zstd_chdr(data: bytes) -> bytes:
    import zstandard

    return struct.pack("<IIQQ", 2, 0, len(data), 1) + zstandard.ZstdCompressor().compress(data)


def _contents_sample() -> bytes:
    """4 MiB of real file bytes (the interpreter and its libraries: code, tables, strings)."""
    data = b""
    with open("/proc/self/maps") as maps:
        paths = sorted({line.split()[-1] for line in maps if line.split()[-1].startswith("/")})
    for path in paths:
        with open(path, "rb") as f:
            data += f.read(4 << 20)
        if len(data) >= 4 << 20:
            break
    return data[:4 << 20]


@pytest.mark.parametrize("kind", ["zlib", "zstd", "zlib-gnu"])
def test_a_stream_inflates_only_as_far_as_it_is_read(kind):
    data = _contents_sample()
    raw = {"zlib": lambda: _zlib_chdr(data), "zstd": lambda: _zstd_chdr(data),
           "zlib-gnu": lambda: b"ZLIB" + struct.pack(">Q", len(data)) + zlib.compress(data)}[kind]()
    stream = inflating_stream(raw, gnu=kind == "zlib-gnu")
    assert stream.size == len(data)
    assert stream.window(100, 200) == data[100:200]
    assert len(stream._buf) < len(data) // 4  # the first step's worth, not the section
    stream.seek(len(data) // 2)
    assert stream.read(1000) == data[len(data) // 2:len(data) // 2 + 1000] and stream.tell() == len(data) // 2 + 1000
    assert bytes(stream.getbuffer()) == data
    stream.seek(-10, os.SEEK_END)
    assert stream.read() == data[-10:]


@pytest.mark.parametrize("raw, why", [
    (_zlib_chdr(b"x" * 100, ch_size=200), "not the 200"),
    (_zlib_chdr(b"\0" * (64 << 20), ch_size=1000), "more than the 1000"),
    (struct.pack("<IIQQ", 1, 0, 100, 1) + b"not zlib at all", "zlib"),
    (struct.pack("<IIQQ", 2, 0, 100, 1) + b"not zstd at all", "zstd"),
])
def test_a_hostile_stream_fails_where_it_is_read(raw, why):
    with pytest.raises(CompressedSectionError, match=why):
        inflating_stream(raw, gnu=False).getbuffer()
