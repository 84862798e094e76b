"""Property-based fuzzing: whatever the bytes, ``analyze`` in every format ends with a result or
one ``CoreDumpError``, never another exception, a hang or runaway memory.

Inputs are cores described to tests/corewriter.py and byte-level mutations (bit flips, fields set
to edge values, truncation at every note and segment boundary and at random lengths, inserted and
deleted bytes) of real kernel cores from c_samples/. CI runs a short campaign with a fixed seed;
``COREDUMP_FUZZ_EXAMPLES=5000 python -m pytest tests/test_fuzz.py`` (``make fuzz``) runs a long
random one (two property tests × 5000 examples).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coredump.errors import CoreDumpError
from tests import corewriter as W
from tests.test_corewriter_cores import analyze_everything

LONG_CAMPAIGN = "COREDUMP_FUZZ_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("COREDUMP_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=not LONG_CAMPAIGN,  # CI: a fixed seed, the same inputs every run
    deadline=None,  # time is bounded per example by analyze_everything's SIGALRM guard instead
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    database=None if not LONG_CAMPAIGN else settings.default.database,
)
SAMPLE_CORES = [("O0", "segv"), ("O2", "threads"), ("O2", "abort_assert"), ("O0", "cxx_throw")]
# The committed qemu-aarch64 core (tests/data/aarch64/README.md): runs where qemu is absent.
AARCH64_CORE = Path(__file__).resolve().parent / "data" / "aarch64" / "segv-static.core.zst"
# elf_prstatus.pr_reg (offset 112): the words fuzzed, frame pointer, pc and sp last. x86_64:
# struct user_regs_struct rbp, rip, rsp; aarch64: struct user_pt_regs x29, pc, sp.
PR_REG_WORDS = {62: (4, 16, 19), 183: (29, 32, 31)}  # e_machine EM_X86_64, EM_AARCH64

# -- the layout of a real core, read independently of coredump.elf ------------------------------


def core_layout(data: bytes):
    """(boundaries, fields, stack) of an ELF core: file offsets where a note or segment starts or
    ends; (offset, size) of every header field and of the note fields the analysis relies on;
    and (file offset, address) of the first thread's stack pointer, where unwinding reads."""
    fields = [(0x12, 2), (0x20, 8), (0x28, 8), (0x36, 2), (0x38, 2), (0x3A, 2), (0x3C, 2)]
    (e_phoff,) = struct.unpack_from("<Q", data, 0x20)
    (e_phnum,) = struct.unpack_from("<H", data, 0x38)
    (e_machine,) = struct.unpack_from("<H", data, 0x12)
    bounds = {e_phoff, e_phoff + 56 * e_phnum}
    loads, sps = [], []
    for i in range(e_phnum):
        ph = e_phoff + 56 * i
        fields += [(ph, 4), (ph + 4, 4), (ph + 8, 8), (ph + 16, 8), (ph + 32, 8), (ph + 40, 8)]
        p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIQQQQ", data, ph)
        bounds |= {p_offset, p_offset + p_filesz}
        if p_type == 1:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 4:
            regs = PR_REG_WORDS.get(e_machine, PR_REG_WORDS[62])
            _note_layout(data, p_offset, p_offset + p_filesz, bounds, fields, sps, regs)
    stack = next(((off + sps[0] - va, sps[0]) for va, off, size in loads if sps and va <= sps[0] < va + size),
                 (bounds and max(bounds), 0))
    fields = [(o, n) for o, n in fields if o + n <= len(data)]
    return sorted(b for b in bounds if 0 < b < len(data)), fields, stack


def _note_layout(data, pos, end, bounds, fields, sps, regs):
    while pos + 12 <= end:
        namesz, descsz, n_type = struct.unpack_from("<III", data, pos)
        desc = pos + 12 + ((namesz + 3) & ~3)
        fields += [(pos, 4), (pos + 4, 4), (pos + 8, 4)]
        bounds |= {pos, desc, desc + descsz}
        if n_type == 1 and desc + 112 + 8 * (max(regs) + 1) <= len(data):  # NT_PRSTATUS: pr_cursig, fp, pc, sp
            fields += [(desc + 12, 2)] + [(desc + 112 + 8 * k, 8) for k in regs]
            sps.append(struct.unpack_from("<Q", data, desc + 112 + 8 * regs[-1])[0])
        elif n_type == 0x46494C45:  # NT_FILE: count, page_size, the first entries
            fields += [(desc, 8), (desc + 8, 8)] + [(desc + 16 + 8 * k, 8) for k in range(9)]
        elif n_type == 6:  # NT_AUXV values
            fields += [(desc + 16 * k + 8, 8) for k in range(min(8, descsz // 16))]
        elif n_type == 0x53494749:  # NT_SIGINFO si_signo, si_code, si_addr
            fields += [(desc, 4), (desc + 8, 4), (desc + 16, 8)]
        pos = desc + ((descsz + 3) & ~3)


EDGE_VALUES = [0, 1, 3, 7, 0x7F, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, 1 << 32, 0x7FFF_FFFF_FFFF_FFFF,
               1 << 63, (1 << 64) - 1, 0x1000, 0x400000, 0x7FFF_FFFF_F000]


@pytest.fixture(scope="module")
def real_cores(make_core):
    out = []
    for variant, program in SAMPLE_CORES:
        data = make_core(variant, program).read_bytes()
        out.append((f"{variant}-{program}", data) + core_layout(data))
    import zstandard

    data = zstandard.ZstdDecompressor().decompress(AARCH64_CORE.read_bytes(), max_output_size=64 << 20)
    out.append(("aarch64-static-segv", data) + core_layout(data))
    return out


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory(prefix="coredump-fuzz-") as d:
        yield Path(d)


def check_bytes(scratch: Path, data: bytes, name: str = "core"):
    path = scratch / name
    path.write_bytes(data)
    result = analyze_everything(path)
    if not isinstance(result, CoreDumpError):
        # analysis.py turns an exception in the walk or in explain into a warning, so a user
        # still gets the rest: for the fuzzer it is a bug.
        bugs = [w for w in result.warnings if "unwinding failed" in w or "explaining the crash failed" in w]
        assert not bugs, bugs
    return result


# -- byte-level mutations of real cores ----------------------------------------------------------


MUTATIONS = ["field"] * 4 + ["stack_word"] * 3 + ["flip"] * 2 + ["cut_at_boundary", "truncate", "insert", "delete"]


@st.composite
def mutations(draw, cores):
    """(name, mutated bytes) of one real core."""
    name, data, bounds, fields, (sp_off, sp) = draw(st.sampled_from(cores))
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(MUTATIONS))
        if kind == "field":
            off, size = draw(st.sampled_from(fields))
            value = draw(st.one_of(st.sampled_from(EDGE_VALUES), st.integers(0, (1 << 64) - 1)))
            out[off:off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        elif kind == "stack_word":
            # A word near the stack pointer: saved frame pointers and return addresses live
            # here; point it at the stack itself (loops), at an edge value, or anywhere.
            slot = sp_off + 8 * draw(st.integers(-8, 256))
            value = draw(st.one_of(st.integers(-8, 256).map(lambda k: sp + 8 * k), st.sampled_from(EDGE_VALUES),
                                   st.integers(0, (1 << 64) - 1)))
            if 0 <= slot <= len(out) - 8:
                out[slot:slot + 8] = (value & ((1 << 64) - 1)).to_bytes(8, "little")
        elif kind == "flip":
            # Past the ELF magic, inside the headers and notes (memory contents are stack_word's).
            pos = draw(st.integers(4, max(4, min(len(out), bounds[-1] if bounds else 64) - 1)))
            if pos < len(out):
                out[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut_at_boundary" and bounds:
            del out[max(64, draw(st.sampled_from(bounds)) + draw(st.integers(-2, 2))):]
        elif kind == "truncate":
            del out[draw(st.integers(64, max(64, len(out)))):]
        elif kind == "insert":
            pos = draw(st.integers(64, max(64, len(out))))
            out[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete" and out:
            pos = draw(st.integers(64, max(64, len(out) - 1)))
            del out[pos:pos + draw(st.integers(1, 64))]
    return name, bytes(out)


def test_mutated_real_cores(real_cores, scratch):
    @FUZZ
    @given(mutations(real_cores))
    def run(case):
        check_bytes(scratch, case[1])

    run()


def test_aarch64_core_is_among_the_mutated(real_cores):
    """The aarch64 core's stack words are found (its pr_reg layout, not x86_64's): the
    stack_word mutation then hits saved x29/x30 pairs as it hits rbp/return addresses."""
    name, data, bounds, fields, (sp_off, sp) = real_cores[-1]
    assert name.startswith("aarch64") and struct.unpack_from("<H", data, 0x12)[0] == 183
    assert 0 < sp_off < len(data) and sp >> 32 == 0x55  # qemu-user's guest stack


def test_truncation_at_every_boundary(real_cores, scratch):
    """Cut the real cores at every note and segment boundary (and one byte either side); the
    multi-threaded core (tens of MB of stacks) only within its notes and first segments."""
    for name, data, bounds, _, _ in real_cores[:2]:
        limit = len(data) if len(data) < 4 << 20 else 1 << 20
        for cut in sorted({c + d for c in bounds for d in (-1, 0, 1) if c + d < limit}):
            result = check_bytes(scratch, data[:cut])
            if not isinstance(result, CoreDumpError) and result.threads:
                assert result.core.truncated, (name, cut)


def test_cli_never_prints_a_traceback(real_cores, scratch):
    @settings(FUZZ, max_examples=4 if not LONG_CAMPAIGN else 50)
    @given(mutations(real_cores))
    def run(case):
        path = scratch / "cli-core"
        path.write_bytes(case[1])
        for fmt in ("text", "json"):
            out = subprocess.run([sys.executable, "-m", "coredump.cli.main", "analyze", "--format", fmt, str(path)],
                                 capture_output=True, text=True, timeout=60)
            assert "Traceback" not in out.stderr and "internal error" not in out.stderr, out.stderr
            if out.returncode:
                assert out.stderr.startswith("Error: ") and len(out.stderr.strip().splitlines()) == 1, out.stderr

    run()


# -- cores described to the writer ---------------------------------------------------------------

ADDRESSES = st.one_of(
    st.sampled_from([0, 8, 0xFFF, W.CODE_BASE, W.CODE_BASE + W.PAGE + 4, W.STACK_BASE, W.STACK_BASE + 0x100,
                     W.STACK_BASE + W.STACK_SIZE - 8, 0x8000_0000_0000_0000, (1 << 64) - 8, (1 << 64) - 1]),
    st.integers(0, (1 << 64) - 1),
    st.integers(W.STACK_BASE, W.STACK_BASE + W.STACK_SIZE),
)


@st.composite
def stacks(draw):
    """A stack page: a frame-pointer chain (maybe looping), or words that point anywhere."""
    if draw(st.booleans()):
        frames = draw(st.lists(st.tuples(st.integers(0, 200), ADDRESSES), min_size=1, max_size=12))
        loop_to = draw(st.one_of(st.none(), st.integers(0, len(frames) - 1)))
        return W.fp_stack(frames, loop_to)[0]
    words = draw(st.lists(ADDRESSES, max_size=64))
    stack = bytearray(W.STACK_SIZE)
    start = draw(st.integers(0, W.STACK_SIZE // 8 - len(words))) * 8
    for i, w in enumerate(words):
        struct.pack_into("<Q", stack, start + 8 * i, w)
    return bytes(stack)


@st.composite
def notes(draw):
    n_type = draw(st.sampled_from([1, 3, 6, 0x53494749, 0x46494C45, 2, 0x202, 0]))
    desc = draw(st.binary(max_size=400))
    name = draw(st.sampled_from([b"CORE\0", b"LINUX\0", b"", b"GNU\0", b"CORE"]))
    descsz = draw(st.one_of(st.none(), st.sampled_from([0, 1, 0xFFFF_FFFF]), st.integers(0, 1 << 20)))
    return W.Note(name, n_type, desc, descsz=descsz, align=draw(st.sampled_from([4, 4, 4, 1, 8])))


@st.composite
def descriptions(draw):
    regs = {name: draw(ADDRESSES) for name in draw(st.sets(st.sampled_from(["rip", "rsp", "rbp"])))}
    desc = W.simple_process(regs, stack=draw(stacks()), signo=draw(st.sampled_from([0, 4, 6, 7, 8, 11, 31, 64, 200])),
                            si_addr=draw(ADDRESSES), nthreads=draw(st.integers(1, 4)))
    if draw(st.booleans()):
        desc.siginfo = None
    if draw(st.booleans()):
        desc.loads.reverse()
    for ld in draw(st.lists(st.builds(W.Load, ADDRESSES, st.binary(max_size=64),
                                      st.one_of(st.none(), st.integers(0, 1 << 40)),
                                      st.sampled_from([W.PF_R, W.PF_R | W.PF_X, 0]),
                                      st.one_of(st.none(), st.integers(0, 1 << 40))), max_size=3)):
        desc.loads.append(ld)
    for ld in desc.loads:
        if draw(st.integers(0, 9)) == 0:
            ld.filesz = draw(st.integers(0, 1 << 63))
    desc.files += draw(st.lists(st.builds(W.FileEntry, ADDRESSES, ADDRESSES, st.integers(0, 1 << 50),
                                          st.sampled_from(["/lib/libc.so.6", "", "x" * 300, "[vdso]"])),
                                max_size=4))
    desc.file_count = draw(st.one_of(st.none(), st.sampled_from([0, 1 << 40]), st.integers(0, 10)))
    desc.auxv += draw(st.lists(st.tuples(st.sampled_from([3, 9, 31, 33, 6, 0]), ADDRESSES), max_size=4))
    desc.extra_notes = draw(st.lists(notes(), max_size=4))
    desc.pn_xnum = draw(st.booleans())
    if draw(st.integers(0, 3)) == 0:
        desc.truncate = draw(st.integers(0, len(W.build_core(desc))))
    return desc


def test_writer_descriptions(scratch):
    @FUZZ
    @given(descriptions())
    def run(desc):
        check_bytes(scratch, W.build_core(desc))

    run()


# -- large crafted cores: each ends within the analysis' budget, with a warning ----------------


def deep_stack(size: int):
    """A stack of `size` bytes that is one frame-pointer chain from its bottom to its top
    (System V psABI §3.2.2: [rbp] the caller's rbp, [rbp+8] the return address), 16 bytes a
    frame: ~size/16 frames. Returns (stack bytes, rbp of the innermost frame)."""
    stack = bytearray(size)
    ret = W.CODE_BASE + W.PAGE + 0x20
    for off in range(0x100, size - 32, 16):
        struct.pack_into("<QQ", stack, off, W.STACK_BASE + off + 16, ret)
    return bytes(stack), W.STACK_BASE + 0x100


def deep_threads(nthreads: int, stack_size: int):
    """`nthreads` threads that all stand on one deep stack."""
    stack, rbp = deep_stack(stack_size)
    desc = W.simple_process(stack=stack, nthreads=nthreads)
    for t in desc.threads:
        t.regs.update(rbp=rbp, rsp=rbp)
    return desc


def many_files(count: int):
    """NT_FILE with `count` more entries, one page each, all mapped executable (a PT_LOAD
    with PF_X and no file bytes): each looks like an ELF file whose header was not dumped."""
    desc = W.simple_process()
    base = 0x10000000
    desc.files += [W.FileEntry(base + i * W.PAGE, base + (i + 1) * W.PAGE, 0, f"/l/{i}") for i in range(count)]
    desc.loads.append(W.Load(base, b"", memsz=count * W.PAGE, flags=W.PF_R | W.PF_X))
    return desc


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # RFC 8878 §3.1.1 Magic_Number


def zstd_rle_frame(prefix: bytes, zeros: int) -> bytes:
    """One zstd frame (RFC 8878 §3.1.1) without Frame_Content_Size: `prefix` in Raw_Blocks,
    then `zeros` zero bytes in RLE_Blocks of 128 KiB, 4 bytes each (Block_Header §3.1.1.2:
    Last_Block bit 0, Block_Type bits 1-2, Block_Size bits 3-23)."""
    block = 1 << 17
    out = bytearray(ZSTD_MAGIC + bytes([0x00, (17 - 10) << 3]))  # FHD 0; Window_Descriptor 2**17
    blocks = [(0, prefix[i:i + block]) for i in range(0, len(prefix), block)]
    blocks += [(1, min(block, zeros - i)) for i in range(0, zeros, block)]
    for n, (block_type, body) in enumerate(blocks):
        size = len(body) if block_type == 0 else body
        out += ((n == len(blocks) - 1) | block_type << 1 | size << 3).to_bytes(3, "little")
        out += body if block_type == 0 else b"\0"
    return bytes(out)


def analyze_cli(path: Path, *args: str, env=None):
    """`coredump analyze --format json` in a child: (exit status, stdout, stderr); a hang
    guard only, no timing is asserted (``make bench`` measures)."""
    out = subprocess.run([sys.executable, "-m", "coredump.cli", "analyze", "--format", "json", *args, str(path)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr, out.stderr[-2000:]
    return out.returncode, out.stdout, out.stderr


LARGE_CASES = {
    # name: (description, the warnings that say which limits cut in)
    "1M NT_FILE entries": (lambda: many_files(1_000_000), ("NT_FILE lists 1000001 mapped files; only the first",)),
    "40,000 NT_PRSTATUS notes": (lambda: deep_threads(40_000, 1 << 20),
                                 ("7232 threads past the first 32768 ignored", "threads show frame 0 only")),
    "1,000 deep threads": (lambda: deep_threads(1_000, 4 << 20), ("threads show frame 0 only",)),
}


@pytest.mark.parametrize("case", sorted(LARGE_CASES))
def test_large_crafted_cores_end_within_the_budget(scratch, case):
    import json

    build, warnings = LARGE_CASES[case]
    path = scratch / "large-core"
    W.write_core(path, build())
    status, stdout, stderr = analyze_cli(path)
    assert status == 0, stderr
    crash = json.loads(stdout)
    for warning in warnings:
        assert any(warning in w for w in crash["warnings"]), crash["warnings"][:10]
    assert crash["threads"][crash["crashing_thread"]]["frames"]


def test_zstd_bomb_stops_at_the_core_end_and_names_the_users_file(scratch, tmp_path):
    """A core followed by 8 GiB of zeros in RLE blocks (a 256 KiB file): decompression stops
    where the core's program headers say it ends (or at --max-core-size); the one error line
    names the user's file, not the temporary copy, which is gone."""
    core = W.build_core(W.simple_process())
    bomb = scratch / "bomb.core.zst"
    bomb.write_bytes(zstd_rle_frame(core, 8 << 30))
    assert len(bomb.read_bytes()) < 300 << 10
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    for args in ((), ("--max-core-size", "1M")):
        status, stdout, stderr = analyze_cli(bomb, *args, env={**os.environ, "TMPDIR": str(tmpdir)})
        assert status == 1 and stderr.startswith(f"Error: {bomb} is zstd-compressed") and str(tmpdir) not in stderr
        assert "decompresses to more than" in stderr and len(stderr.strip().splitlines()) == 1, stderr
        assert not list(tmpdir.iterdir())  # the partial copy is gone


def test_harvest_analyses_have_the_same_budget(tmp_path):
    """`harvest` (and `run`, which harvests) analyze through the same budget: the 1,000 deep
    threads end with frame 0 and the warning in crash.json, and the core is stored."""
    import json

    from tests.cli import command

    job = tmp_path / "job"
    job.mkdir()
    W.write_core(job / "core", deep_threads(1_000, 4 << 20))
    out = subprocess.run(command("harvest", "--path", str(job), "-o", str(tmp_path / "out")), capture_output=True,
                         text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    [entry] = summary["crashes"]
    crash = json.loads((tmp_path / "out" / entry["crash_json"]).read_text())
    assert any("threads show frame 0 only" in w for w in crash["warnings"]), crash["warnings"][:10]
    assert (tmp_path / "out" / entry["core"]).is_file()
