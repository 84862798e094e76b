"""Processes of the step that still run when it exits: named in the log, and a core they
write while the wrapper is harvesting is harvested too (real processes, synchronised on a
FIFO and on process states, no sleeps)."""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from coredump.capture.leftover import Leftover, describe_leftovers
from tests.cli import command
from tests.cores import BUILD, ROOT, build_samples, core_skip_reason

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _state(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return "gone"
    return stat[stat.rindex(")") + 2]


def _until(condition, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        os.sched_yield()


def _release(fifo):
    with open(fifo, "w") as f:  # opens once the leftover has it open for reading
        f.write("go\n")


def test_leftover_process_is_named(tmp_path):
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    r = subprocess.run(command("run", "--", "sh", "-c", 'sh -c "read x < go" >/dev/null 2>&1 </dev/null & exit 0'),
                       cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    try:
        assert r.returncode == 0
        m = re.search(r"the step has exited, but 1 of its processes still run \(pid (\d+) sh\)", r.stderr)
        assert m, r.stderr
        assert _state(m[1]) not in ("gone", "Z")
    finally:
        _release(fifo)
    assert not (tmp_path / "coredump-artifacts").exists()


def test_another_jobs_process_is_not_named(tmp_path):
    """A job of the same session that started before the wrapper (the other recipe of
    ``make -j2``, another pytest-xdist worker) starts a process while the step runs, which
    outlives the step: not the step's, so not named (it was: same session, started after
    the wrapper)."""
    for name in ("started", "spawned", "hold"):
        os.mkfifo(tmp_path / name)
    other = subprocess.Popen(["sh", "-c", "read x < started; cat hold >/dev/null & echo up > spawned; wait"],
                             cwd=tmp_path, stdin=subprocess.DEVNULL)
    try:
        r = subprocess.run(command("run", "--", "sh", "-c", "echo go > started; read x < spawned"),
                           cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and r.stderr == "", r.stderr
    finally:
        _release(tmp_path / "hold")
        other.wait(timeout=60)
    assert other.returncode == 0


def test_leftover_core_written_during_the_harvest_is_harvested(tmp_path):
    """The step crashes a program in a/ and leaves a shell behind in g/ that crashes once
    told to. The wrapper is stopped (SIGSTOP) right after it said which processes remain,
    i.e. after its search for cores; the leftover then crashes, and the wrapper goes on:
    its harvest must take the late core too."""
    reason = core_skip_reason()
    if reason:
        pytest.skip(reason)
    build_samples()
    segv = BUILD / "O0" / "segv"
    for d in ("a", "g"):
        (tmp_path / d).mkdir()
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    step = f"(cd a && exec {segv}); cd g && (read x < ../go; exec {segv}) >/dev/null 2>&1 </dev/null & exit 0"
    proc = subprocess.Popen(command("run", "--", "sh", "-c", step), cwd=tmp_path, env=ENV,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        lines = []
        while "still run" not in (line := proc.stderr.readline()):
            assert line, "".join(lines)
            lines.append(line)
        os.kill(proc.pid, signal.SIGSTOP)
        leftover = re.search(r"\(pid (\d+) ", line)[1]
        _until(lambda: _state(proc.pid) == "T", "the wrapper never stopped")
        _release(fifo)
        _until(lambda: _state(leftover) in ("gone", "Z"), "the leftover never crashed")
        os.kill(proc.pid, signal.SIGCONT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "1 more core(s) written while collecting, by the step's remaining processes" in err, err
    crashes = json.loads((tmp_path / "coredump-artifacts" / "summary.json").read_text())["crashes"]
    assert sorted(Path(c["source"]).parent.name for c in crashes) == ["a", "g"]
    assert {c["signal"] for c in crashes} == {"SIGSEGV"} and all(c["stored"] for c in crashes)


def test_description_is_bounded_and_escaped():
    procs = [Leftover(100 + i, 1, "x\x1b[31m" if i == 0 else "sleep") for i in range(7)]
    text = describe_leftovers(procs)
    assert "7 of its processes" in text and "pid 100 x\\x1b[31m" in text and "\x1b" not in text
    assert "pid 104 sleep" in text and "pid 105" not in text and "and 2 more" in text
