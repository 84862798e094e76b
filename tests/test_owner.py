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
