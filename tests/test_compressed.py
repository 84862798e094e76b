"""Compressed sections (coredump/elf/compressed.py): SHF_COMPRESSED zlib and zstd and GNU
.zdebug_*, made by binutils' objcopy from real builds; a program whose own functions have
only a compressed .debug_frame, unwound by it and checked against gdb; and hostile headers."""

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
