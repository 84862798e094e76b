"""A found core is read through one descriptor: a symlink swapped in, a core still being
written and a truncated core, each on a real kernel core with a real concurrent actor."""

import os
import subprocess
import sys
import threading
import time

from coredump.capture.compress import decompress_file
from coredump.capture.harvest import HarvestOptions, harvest
from coredump.capture.opened import Look, look_at, unlink_if_same
from coredump.capture.store_core import process_core
from coredump.store.artifacts import ArtifactDir

DEADLINE = 60.0


def _fd_open_on(ino: int) -> bool:
    """Whether this process has a descriptor open on inode `ino` (proc(5) /proc/self/fd)."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.stat(f"/proc/self/fd/{fd}").st_ino == ino:
                return True
        except OSError:
            continue
    return False


def _swap_when_opened(core, target, done: threading.Event, swapped: threading.Event) -> None:
    """Replace `core` by a symlink to `target` as soon as the harvest has the core open."""
    ino = core.stat().st_ino
    deadline = time.monotonic() + DEADLINE
    while not done.is_set() and time.monotonic() < deadline:
        if _fd_open_on(ino):
            link = core.with_name("core.link")
            os.symlink(target, link)
            os.replace(link, core)
            swapped.set()
            return
        os.sched_yield()


def test_a_symlink_swapped_in_after_the_core_was_found_is_never_read(tmp_path, make_core):
    job = tmp_path / "job"
    job.mkdir()
    core = job / "core"
    core.write_bytes(make_core("O0", "segv").read_bytes())
    original = core.read_bytes()
    secret = tmp_path / "secret"
    secret.write_bytes(b"MY_TOKEN=hunter2\n" * 1000)
    done, swapped = threading.Event(), threading.Event()
    swapper = threading.Thread(target=_swap_when_opened, args=(core, secret, done, swapped))
    swapper.start()
    lines = []
    try:
        result = harvest(HarvestOptions(output=str(tmp_path / "out"), paths=(str(job),)), echo=lines.append)
    finally:
        done.set()
        swapper.join()
    assert swapped.is_set(), "the swapper never saw the core open"
    (record,) = result.records
    assert record.stored and record.signal == "SIGSEGV"
    decompress_file(str(tmp_path / "out" / record.core), str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == original  # the core found, not the secret
    crash_json = (tmp_path / "out" / record.crash_json).read_text()
    assert "/proc/self/fd" not in crash_json and str(core) in crash_json
    # The path no longer names the inode stored: the symlink and its target stay.
    assert os.path.islink(core) and secret.read_bytes().startswith(b"MY_TOKEN")
    assert any("was stored but not removed" in line for line in lines), lines


def test_a_path_swapped_before_the_open_is_refused(tmp_path, make_core):
    core = tmp_path / "core"
    core.write_bytes(make_core("O0", "segv").read_bytes())
    found = look_at(str(core))
    other = tmp_path / "other"
    other.write_bytes(core.read_bytes())
    os.replace(other, core)  # same bytes, another inode: not the file that was found
    lines = []
    record = process_core(str(core), ArtifactDir(str(tmp_path / "out")), HarvestOptions(), lines.append, found=found)
    assert record is None
    assert any("was replaced after it was found" in line for line in lines), lines
    assert core.exists() and not (tmp_path / "out").exists()


_WRITER = r"""
import os, sys
data = open(sys.argv[1], "rb").read()
half = len(data) // 2
with open(sys.argv[2], "wb") as f:
    f.write(data[:half]); f.flush()
    print("half", flush=True)
    sys.stdin.readline()          # go on when the test says so
    for i in range(half, len(data), 65536):
        f.write(data[i:i + 65536]); f.flush()
print("done", flush=True)
"""


def test_a_core_still_being_written_is_stored_once_it_settles(tmp_path, make_core):
    """A real writer process appends to a core while harvest looks at it: harvest waits,
    then stores every byte, and removes the original only then."""
    real = make_core("O0", "segv")
    job = tmp_path / "job"
    job.mkdir()
    core = job / "core"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(real), str(core)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "half\n"
        lines = []

        def echo(line):
            lines.append(line)
            if "may still be being written" in line and writer.poll() is None:
                writer.stdin.write("go\n")
                writer.stdin.flush()

        opts = HarvestOptions(output=str(tmp_path / "out"), paths=(str(job),), settle_quiet=DEADLINE,
                              settle_timeout=DEADLINE)
        result = harvest(opts, echo=echo)
        assert writer.wait(timeout=DEADLINE) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert any("may still be being written (it is shorter than its program headers say" in line
               for line in lines), lines
    (record,) = result.records
    decompress_file(str(tmp_path / "out" / record.core), str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == real.read_bytes()
    assert record.signal == "SIGSEGV" and not record.kept and not core.exists()


def test_a_truncated_core_is_stored_and_kept_with_a_warning(tmp_path, make_core):
    real = make_core("O0", "segv").read_bytes()
    core = tmp_path / "job" / "core"
    core.parent.mkdir()
    core.write_bytes(real[:len(real) * 6 // 10])
    os.utime(core, (time.time() - 3600,) * 2)  # written long ago: settled
    lines = []
    result = harvest(HarvestOptions(output=str(tmp_path / "out"), paths=(str(core.parent),)), echo=lines.append)
    (record,) = result.records
    assert result.ok and record.stored and record.kept and core.exists()
    assert "truncated" in record.note and f"it stays at {core}" in record.note
    decompress_file(str(tmp_path / "out" / record.core), str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == core.read_bytes()


def test_unlink_if_same_removes_only_the_inode_stored(tmp_path):
    f = tmp_path / "core"
    f.write_bytes(b"x")
    look = look_at(str(f))
    f.write_bytes(b"xy")
    assert unlink_if_same(str(f), look) == "it changed after it was stored" and f.exists()
    assert unlink_if_same(str(f), look_at(str(f))) is None and not f.exists()
    assert unlink_if_same(str(f), Look(0, 0, 0, 0)) is None  # already gone: nothing to do


def test_a_core_that_does_not_settle_in_time_is_stored_and_kept(tmp_path, make_core):
    """Shorter than its program headers and just written: with no time left to wait, it is
    stored as it was and stays in place, said in the note."""
    real = make_core("O0", "segv").read_bytes()
    core = tmp_path / "job" / "core"
    core.parent.mkdir()
    core.write_bytes(real[:len(real) // 2])
    opts = HarvestOptions(output=str(tmp_path / "out"), paths=(str(core.parent),), settle_timeout=0.0)
    result = harvest(opts, echo=lambda line: None)
    (record,) = result.records
    assert record.stored and record.kept and core.exists()
    assert "it is still being written after 0 s: stored as it was" in record.note


def test_a_fresh_complete_core_settles_at_once(tmp_path, make_core):
    """`coredump run` harvests a core the kernel finished a moment ago: as long as its
    program headers, it is not waited for (the run wrapper's latency)."""
    from coredump.capture.opened import open_found, settle

    core = tmp_path / "core"
    core.write_bytes(make_core("O0", "segv").read_bytes())
    lines = []
    with open_found(str(core), look_at(str(core))) as opened:
        look, why = settle(opened, quiet=DEADLINE, timeout=DEADLINE, echo=lines.append)
    assert why is None and lines == [] and look == look_at(str(core))


def test_a_core_the_kernel_is_still_dumping_is_waited_for(tmp_path, make_core):
    """harvest starts while the kernel writes a 220 MB core (bigheap): /proc/PID/status says
    CoreDumping: 1 until the last byte, so harvest waits even with no quiet time asked."""
    from coredump.capture.opened import phdr_extent
    from tests.cores import BUILD, _raise_core_limit

    make_core("O0", "segv")  # builds the samples; skips where no core can be made
    job = tmp_path / "job"
    job.mkdir()
    proc = subprocess.Popen([str(BUILD / "O0" / "bigheap")], cwd=job, preexec_fn=_raise_core_limit,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + DEADLINE
        while not (job / "core").exists():  # the kernel creates it once the dump starts
            assert proc.poll() is None or (job / "core").exists(), "bigheap ended without a core"
            assert time.monotonic() < deadline
            os.sched_yield()
        lines = []
        opts = HarvestOptions(output=str(tmp_path / "out"), paths=(str(job),), settle_quiet=0.0,
                              settle_timeout=DEADLINE)
        result = harvest(opts, echo=lines.append)
    finally:
        proc.wait(timeout=DEADLINE)
    (record,) = result.records
    assert any(f"(pid {proc.pid} is dumping it)" in line for line in lines), lines
    assert record.note is None and not record.kept and not (job / "core").exists()
    decompress_file(str(tmp_path / "out" / record.core), str(tmp_path / "back"))
    assert os.path.getsize(tmp_path / "back") == phdr_extent(str(tmp_path / "back"))
