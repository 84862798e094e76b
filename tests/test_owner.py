"""Which process dumped a core, from its notes, and whether it was the step's."""

import os
import resource
import subprocess

from coredump.capture.owner import CoreIds, StepTree, proc_stat, read_core_ids
from tests.cores import BUILD


def cores_on():
    resource.setrlimit(resource.RLIMIT_CORE, (resource.getrlimit(resource.RLIMIT_CORE)[1],) * 2)


def test_ids_of_a_real_core(tmp_path, make_core):
    """The kernel's pr_pid, pr_ppid, pr_pgrp, pr_sid and pr_fname of a process we started."""
    make_core("O0", "segv")  # builds the samples; skips where no core can be made
    proc = subprocess.Popen([str(BUILD / "O0" / "segv")], cwd=tmp_path, preexec_fn=cores_on,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.wait()
    ids = read_core_ids(str(tmp_path / "core"))
    assert ids == CoreIds(proc.pid, os.getpid(), os.getpgrp(), os.getsid(0), "segv")


def test_not_a_core(tmp_path):
    (tmp_path / "x").write_bytes(b"\x7fELF" + b"\0" * 10)
    assert read_core_ids(str(tmp_path / "x")) is None
    assert read_core_ids(str(tmp_path / "missing")) is None


def test_proc_stat_of_this_process():
    st = proc_stat(os.getpid())
    assert (st.ppid, st.pgrp, st.session) == (os.getppid(), os.getpgrp(), os.getsid(0))
    assert proc_stat(0) is None


def test_step_tree_takes_what_it_cannot_rule_out():
    tree = StepTree(step_pid=os.getpid() + 1)
    me = os.getpid()
    assert tree.foreign(None) is None
    assert tree.foreign(CoreIds(tree.step_pid, 1, 5, 5, "x")) is None  # the step itself
    assert tree.foreign(CoreIds(123456, me, 5, 5, "x")) is None  # reparented to the wrapper
    assert tree.foreign(CoreIds(123456, 1, os.getpgrp(), os.getsid(0), "x")) is None  # our group
    assert tree.foreign(CoreIds(123456, 1, 1, 1, "x")) is None  # pid 1: maybe a container's


def test_step_tree_rejects_an_older_live_session():
    """A session whose leader is alive and older than the wrapper is not the step's."""
    leader = subprocess.Popen(["cat"], stdin=subprocess.PIPE, start_new_session=True)
    try:
        started = proc_stat(leader.pid).starttime
        tree = StepTree(step_pid=0)
        tree.starttime = started + 1  # as if this process were the wrapper started just now
        why = tree.foreign(CoreIds(leader.pid + 1, leader.pid, leader.pid, leader.pid, "crasher"))
        assert why == (f"dumped by pid {leader.pid + 1} (crasher) in session {leader.pid} (cat), "
                       "which existed before this step started")
        tree.starttime = started  # same tick: cannot tell, so the step's
        assert tree.foreign(CoreIds(leader.pid + 1, leader.pid, leader.pid, leader.pid, "crasher")) is None
    finally:
        leader.communicate(b"")


def _open_for_writing(fifo, proc, deadline):
    """The write end of `fifo`, once `proc`'s step has opened it for reading (open(2):
    O_NONBLOCK|O_WRONLY fails with ENXIO until a reader exists)."""
    import errno
    import time

    while time.monotonic() < deadline:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or proc.poll() is not None:
                raise
        os.sched_yield()
    raise AssertionError(f"nobody opened {fifo} for reading")


def test_two_jobs_sharing_a_core_directory_each_keep_their_own(tmp_path, make_core):
    """Job A starts, then job B (a later session) crashes into the shared directory while A
    runs. A must leave B's core alone; B then collects it (#13 item 5)."""
    import json
    import time

    from tests.cli import command
    from tests.cores import ROOT

    make_core("O0", "segv")  # builds the samples; skips where no core can be made
    shared, job_a, job_b = tmp_path / "shared", tmp_path / "a", tmp_path / "b"
    for d in (shared, job_a, job_b):
        d.mkdir()
    fifo_a, fifo_b = tmp_path / "a.fifo", tmp_path / "b.fifo"
    os.mkfifo(fifo_a)
    os.mkfifo(fifo_b)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def job(cwd, *step):
        # Each CI job is its own session, as a runner starts it.
        return subprocess.Popen(command("run", "--core-dir", str(shared), "--", *step), cwd=cwd, env=env,
                                start_new_session=True, stderr=subprocess.PIPE, text=True, preexec_fn=cores_on)

    deadline = time.monotonic() + 120
    a = job(job_a, "cat", str(fifo_a))
    b = None
    try:
        wa = _open_for_writing(fifo_a, a, deadline)  # A's step is running
        b = job(job_b, "sh", "-c", f'cd "{shared}" && "{BUILD / "O0" / "segv"}"; cat "{fifo_b}"')
        wb = _open_for_writing(fifo_b, b, deadline)  # B crashed, its core is written, B's step goes on
        assert (shared / "core").exists()
        os.close(wa)
        _, a_err = a.communicate(timeout=120)
        assert a.returncode == 0, a_err
        assert (shared / "core").exists(), a_err
        assert "not this step's" in a_err and "left in place" in a_err
        assert not (job_a / "coredump-artifacts").exists()
        os.close(wb)
        _, b_err = b.communicate(timeout=120)
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    crashes = json.loads((job_b / "coredump-artifacts" / "summary.json").read_text())["crashes"]
    assert [c["signal"] for c in crashes] == ["SIGSEGV"], b_err
    assert not (shared / "core").exists()


def test_a_shared_directory_needs_proof():
    tree = StepTree(step_pid=os.getpid() + 1)
    assert tree.foreign(None, shared=True) == "no process ids readable in its notes"
    assert tree.foreign(CoreIds(tree.step_pid, 1, 5, 5, "x"), shared=True) is None
    assert tree.foreign(CoreIds(123456, 1, os.getpgrp(), os.getsid(0), "x"), shared=True) is None
    why = tree.foreign(CoreIds(123456, 1, 1, 1, "x"), shared=True)
    assert why.startswith("dumped by pid 123456 (x) of session 1, which is not a process of this step")
