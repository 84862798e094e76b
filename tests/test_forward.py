"""Signals and the ``run`` wrapper, on real processes: a signal the kernel delivered to the
whole process group is not forwarded a second time; one sent to the wrapper alone is; a
stop signal during the harvest still ends with the step's exit status."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli import command
from tests.cores import BUILD, ROOT, build_samples, core_skip_reason

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

# A step that shuts down gracefully on SIGTERM and counts the deliveries: it says "term" for
# each, and once told "go" on stdin, prints how many it got and exits with that number.
COUNTING_STEP = """\
import signal, sys
count = 0
def on_term(signo, frame):
    global count
    count += 1
    print("term", flush=True)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
sys.stdin.readline()
print("count", count, flush=True)
sys.exit(count)
"""

# The kernel functions a process sleeps in while it waits for a signal or a descriptor.
_WAITING = ("do_sigtimedwait", "do_select", "core_sys_select", "do_sys_poll", "poll_schedule_timeout", "ep_poll")


def _pending(pid, signo):
    status = Path(f"/proc/{pid}/status").read_text()
    masks = [int(line.split()[1], 16) for line in status.splitlines() if line.startswith(("SigPnd:", "ShdPnd:"))]
    return any(m >> (signo - 1) & 1 for m in masks)


def _wait_until_taken(pid, signo, timeout=60.0):
    """Until the process `pid` has dequeued `signo` and sleeps waiting for the next one:
    whatever it did with the signal (forwarded it or not) is done."""
    deadline = time.monotonic() + timeout
    while True:
        waiting = Path(f"/proc/{pid}/wchan").read_text().startswith(_WAITING)
        if _state(pid) == "S" and waiting and not _pending(pid, signo):
            return
        assert time.monotonic() < deadline, f"pid {pid} never took signal {signo}"
        os.sched_yield()


def _start_counting_step(tmp_path):
    proc = subprocess.Popen(command("run", "--", sys.executable, "-c", COUNTING_STEP), cwd=tmp_path, env=ENV,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, process_group=0)
    assert proc.stdout.readline() == "ready\n"
    return proc


def _state(pid):
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def _group_kill(proc):
    """`kill -TERM -PGID`, with the wrapper stopped until the step has taken its copy: a
    forwarded second copy then cannot merge with a first one still pending in the step."""
    os.kill(proc.pid, signal.SIGSTOP)
    deadline = time.monotonic() + 60
    while _state(proc.pid) != "T":
        assert time.monotonic() < deadline
        os.sched_yield()
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.stdout.readline() == "term\n"
    os.kill(proc.pid, signal.SIGCONT)
    _wait_until_taken(proc.pid, signal.SIGTERM)


def test_group_signal_reaches_the_step_once(tmp_path):
    """`kill -TERM -PGID` once: the step, in the wrapper's group, has it from the kernel; the
    wrapper must not forward its own copy. The wrapper is stopped meanwhile, so the step has
    taken its copy before the wrapper takes its own (a second kill() then cannot merge with a
    first still pending)."""
    proc = _start_counting_step(tmp_path)
    _group_kill(proc)
    out, _ = proc.communicate("go\n", timeout=60)
    assert out == "count 1\n" and proc.returncode == 1


def _kill_wrapper_alone(proc):
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.stdout.readline() == "term\n"
    _wait_until_taken(proc.pid, signal.SIGTERM)


def test_signal_to_the_wrapper_alone_is_forwarded_once(tmp_path):
    proc = _start_counting_step(tmp_path)
    _kill_wrapper_alone(proc)
    out, _ = proc.communicate("go\n", timeout=60)
    assert out == "count 1\n" and proc.returncode == 1


def test_group_signal_twice_is_two_deliveries(tmp_path):
    """The witness that tells a group signal from one sent to the wrapper alone starts afresh
    after each: a second group signal is again not forwarded, a later one to the wrapper is."""
    proc = _start_counting_step(tmp_path)
    _group_kill(proc)
    _group_kill(proc)
    _kill_wrapper_alone(proc)
    out, _ = proc.communicate("go\n", timeout=60)
    assert out == "count 3\n" and proc.returncode == 3


def test_sigterm_during_harvest_keeps_the_steps_status(tmp_path):
    """The step crashes; while the wrapper uploads its artifacts (to an S3 endpoint that
    accepts the connection and never answers) it gets SIGTERM: it stops, says so, and exits
    with the step's status, the stored crash intact."""
    reason = core_skip_reason()
    if reason:
        pytest.skip(reason)
    build_samples()
    server = socket.create_server(("127.0.0.1", 0))
    env = {**ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.getsockname()[1]}",
           "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    proc = subprocess.Popen(command("run", "--upload", "s3://bucket/ci", "--", str(BUILD / "O0" / "segv")),
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        server.settimeout(120)
        conn, _ = server.accept()  # the harvest has stored the crash and is uploading it
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        conn.close()
    finally:
        server.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGSEGV, err
    assert "SIGTERM while collecting cores: stopped" in err and "Traceback" not in err
    assert (tmp_path / "coredump-artifacts" / "summary.json").exists()
