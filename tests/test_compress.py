import hashlib
import os
import subprocess
import sys

import pytest

from coredump.capture.compress import compress_file, decompress_file, verify_compressed
from coredump.errors import StorageError
from coredump.store.hashing import hash_file


def test_round_trip(tmp_path, make_core):
    core = make_core("O0", "threads")
    result = compress_file(str(core), str(tmp_path / "core.zst"))
    assert result.size == core.stat().st_size
    assert result.sha256 == hashlib.sha256(core.read_bytes()).hexdigest() == hash_file(str(core))
    assert 0 < result.compressed_size == (tmp_path / "core.zst").stat().st_size < result.size
    assert verify_compressed(result.dst, result.sha256, result.size)
    decompress_file(result.dst, str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == core.read_bytes()


def test_zstd_tool_reads_it(tmp_path, make_core):
    zstd = pytest.importorskip("shutil").which("zstd")
    if zstd is None:
        pytest.skip("the zstd tool is not installed")
    core = make_core("O0", "segv")
    compress_file(str(core), str(tmp_path / "core.zst"))
    out = subprocess.run([zstd, "-dc", str(tmp_path / "core.zst")], capture_output=True, check=True).stdout
    assert out == core.read_bytes()


def test_verify_rejects_a_damaged_copy(tmp_path, make_core):
    core = make_core("O0", "segv")
    result = compress_file(str(core), str(tmp_path / "core.zst"))
    assert not verify_compressed(result.dst, "0" * 64, result.size)
    assert not verify_compressed(result.dst, result.sha256, result.size + 1)
    data = bytearray((tmp_path / "core.zst").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "core.zst").write_bytes(bytes(data))
    assert not verify_compressed(result.dst, result.sha256, result.size)
    (tmp_path / "core.zst").write_bytes(bytes(data[:20]))
    assert not verify_compressed(result.dst, result.sha256, result.size)


def test_failure_leaves_no_partial_file(tmp_path, make_core):
    with pytest.raises(StorageError):
        compress_file(str(make_core("O0", "segv")), str(tmp_path / "missing-dir" / "core.zst"))
    with pytest.raises(StorageError):
        compress_file(str(tmp_path / "no-such-core"), str(tmp_path / "core.zst"))
    assert not (tmp_path / "core.zst").exists()


def test_memory_stays_bounded_on_a_big_core(tmp_path, make_core):
    """A 230 MB core is streamed: the compressing process never holds it. Peak RSS is
    VmHWM (per address space): ru_maxrss keeps the forking parent's peak across execve."""
    core = make_core("O0", "bigheap")
    size = core.stat().st_size
    code = ("import sys\n"
            "from coredump.capture.compress import compress_file, verify_compressed\n"
            "r = compress_file(sys.argv[1], sys.argv[2])\n"
            "assert verify_compressed(r.dst, r.sha256, r.size)\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
            "print(int(hwm.split()[1]) * 1024)\n")
    out = subprocess.run([sys.executable, "-c", code, str(core), str(tmp_path / "core.zst")], check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()}).stdout
    assert int(out) < size / 2, (int(out), size)


def test_the_compressed_file_is_hashed_too(tmp_path, make_core):
    core = make_core("O0", "segv")
    result = compress_file(str(core), str(tmp_path / "c.zst"))
    data = (tmp_path / "c.zst").read_bytes()
    assert result.compressed_sha256 == hashlib.sha256(data).hexdigest()
    assert result.compressed_size == len(data)
    assert result.sha256 == hashlib.sha256(core.read_bytes()).hexdigest()
