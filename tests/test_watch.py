"""Plain ``core`` never overwrites a crash of the step: ``coredump run`` watches where cores
land (inotify) and keeps each one under ``core.PID``; real kernel cores of c_samples/."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from coredump.capture import watch
from coredump.capture.core_pattern import parse_core_pattern, read_core_pattern
from coredump.capture.owner import read_core_ids
from coredump.capture.watch import CoreWatcher, reuses_names
from tests.cli import command
from tests.cores import ROOT

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def samples(samples):
    """conftest's samples, where core_pattern gives two crashes one name (else nothing to watch)."""
    pattern = read_core_pattern()
    if not reuses_names(pattern):
        pytest.skip(f"core_pattern {pattern.raw!r} with core_uses_pid="
                    f"{Path('/proc/sys/kernel/core_uses_pid').read_text().strip()} names each crash apart: "
                    "no crash can overwrite another's core here")
    return samples


def coredump_run(cwd, *args):
    return subprocess.run(command("run", *args), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


def crashes(cwd):
    return json.loads((cwd / "coredump-artifacts" / "summary.json").read_text())["crashes"]


def left_behind(directory):
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("core*")
                  if "coredump-artifacts" not in p.parts)


def test_three_crashes_in_one_directory_are_all_kept(tmp_path, samples):
    step = "; ".join(str(samples / p) for p in ("segv", "fpe", "abort_assert"))
    r = coredump_run(tmp_path, "--", "sh", "-c", step)
    assert r.returncode == 128 + signal.SIGABRT, r.stderr
    got = crashes(tmp_path)
    assert sorted(c["signal"] for c in got) == ["SIGABRT", "SIGFPE", "SIGSEGV"], r.stderr
    assert all(c["stored"] for c in got) and len({c["source"] for c in got}) == 3
    for c in got:
        pid = c["id"].rsplit("-", 1)[1]
        assert c["source"] == str(tmp_path / f"core.{pid}")
        assert f"core of pid {pid} " in r.stderr and f" core.{pid}, so that a later crash" in r.stderr
    assert left_behind(tmp_path) == []  # every core stored, then removed


# Until the wrapper ($PPID of the step's shell) watches directory $1: its inotify descriptor's
# fdinfo lists each watch by inode, in hex (proc(5), "inotify wd:"). Bounded, not timed.
WAIT_WATCHED = ('watched() { hex=$(printf "ino:%x " "$(stat -c %i "$1")"); i=0; '
                'until grep -qs "$hex" /proc/$PPID/fdinfo/*; do i=$((i+1)); [ $i -lt 200000 ] || return 1; done; }')


def test_crashes_in_directories_the_step_makes(tmp_path, samples):
    """A directory made while the step runs is watched from its creation. (A crash in it
    before the wrapper has seen the directory, followed by another one there, is not
    covered: the step here waits until the directory is watched.)"""
    step = (f"{WAIT_WATCHED}; mkdir -p a/b && watched a/b && cd a/b && {samples / 'segv'}; {samples / 'fpe'}; "
            f"cd .. && {samples / 'segv'}; exit 0")
    r = coredump_run(tmp_path, "--", "sh", "-c", step)
    assert r.returncode == 0, r.stderr
    got = crashes(tmp_path)
    assert sorted((Path(c["source"]).parent.name, c["signal"]) for c in got) == [
        ("a", "SIGSEGV"), ("b", "SIGFPE"), ("b", "SIGSEGV")], r.stderr


def test_a_file_named_core_that_is_not_a_core_is_left_alone(tmp_path, samples):
    r = coredump_run(tmp_path, "--", "sh", "-c", "echo data > core; cat core; ls")
    assert (r.returncode, r.stdout, r.stderr) == (0, "data\ncore\n", "")
    assert left_behind(tmp_path) == ["core"] and (tmp_path / "core").read_text() == "data\n"


@pytest.mark.parametrize("raw,uses_pid,reuses", [
    ("core", False, True), ("core", True, False), ("core.%e.%p", False, False), ("/cores/core.%e", False, True),
    ("core.%%p", False, True), ("/cores/%P", False, False), ("core.%t", False, True),
    ("|/usr/lib/systemd/systemd-coredump %P", False, False), ("", False, False),
])
def test_which_patterns_reuse_names(raw, uses_pid, reuses):
    assert reuses_names(parse_core_pattern(raw, uses_pid)) == reuses


def test_watch_limit_is_said_and_the_watched_part_still_works(tmp_path, monkeypatch, samples):
    """Past the bound on watches (here 2; the kernel's fs.inotify.max_user_watches gives
    ENOSPC the same way) one warning says what is not covered."""
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    monkeypatch.setattr(watch, "MAX_WATCHES", 2)
    said = []
    watcher = CoreWatcher([str(tmp_path)], parse_core_pattern("core"), echo=said.append)
    watcher.close()
    assert len(said) == 1 and "a second crash in a directory not watched may overwrite" in said[0]


def _write_as_the_kernel_does(path, data):
    """fs/coredump.c do_coredump for a file pattern: unlink the old name, then create it
    O_CREAT|O_EXCL, mode 0600, and write (here from a separate process, as the kernel
    writes on behalf of the crashing one)."""
    script = ("import os, sys\n"
              "try:\n    os.unlink(sys.argv[1])\nexcept FileNotFoundError:\n    pass\n"
              "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)\n"
              "os.write(fd, sys.stdin.buffer.read())\nos.close(fd)\n")
    subprocess.run([sys.executable, "-c", script, str(path)], input=data, check=True, timeout=60)


def test_absolute_pattern_directory_and_a_core_unlinked_by_the_next(tmp_path, make_core):
    """core_pattern /DIR/core: DIR is watched. The first core is held from its creation;
    the next "crash" unlinks it before the watcher has seen it closed: it is copied back
    out of the descriptor as core.PID, and the second one is renamed core.PID."""
    first, second = make_core("O0", "segv").read_bytes(), make_core("O0", "fpe").read_bytes()
    cores = tmp_path / "cores"
    cores.mkdir()
    said = []
    watcher = CoreWatcher([], parse_core_pattern(f"{cores}/core"), echo=said.append)
    try:
        fd = os.open(cores / "core", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        watcher.process()  # IN_CREATE: held while it is being written
        os.write(fd, first)
        os.close(fd)
        _write_as_the_kernel_does(cores / "core", second)
        watcher.process()
        moved = watcher.finish()
    finally:
        watcher.close()
    pids = [read_core_ids(p).pid for p in moved]
    assert sorted(Path(p).name for p in moved) == sorted(f"core.{pid}" for pid in pids) == sorted(
        p.name for p in cores.iterdir())
    by_pid = {read_core_ids(p).pid: Path(p).read_bytes() for p in moved}
    assert sorted(by_pid.values()) == sorted([first, second])
    assert any("kept (a later crash unlinked it)" in line for line in said)
    assert all(os.stat(p).st_mode & 0o777 == 0o600 for p in moved)


def test_the_step_keeps_its_scheduling(tmp_path, samples):
    """The watching wrapper may run real-time (where allowed); the step it spawned does not."""
    probe = "import os; print(os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0))"
    direct = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    wrapped = coredump_run(tmp_path, "--", sys.executable, "-c", probe)
    assert wrapped.stdout == direct.stdout and wrapped.returncode == 0
