"""``coredump run`` on real processes, through the command line in a subprocess."""

import json
import os
import pty
import re
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from coredump.capture.core_pattern import read_core_pattern
from coredump.capture.owner import proc_stat
from coredump.capture.run import exit_status
from coredump.capture.watch import reuses_names
from tests.cli import command
from tests.cores import ROOT

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def coredump_run(cwd, *args, **kw):
    return subprocess.run(command("run", *args), cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=120, **kw)


def summary(cwd, output="coredump-artifacts"):
    return json.loads((cwd / output / "summary.json").read_text())


def _named_by_pid():
    try:
        pattern = read_core_pattern()
    except OSError:
        return False
    return reuses_names(pattern) or pattern.uses_pid


# With core_pattern ``core`` the wrapper moves each core to core.PID as it is written
# (capture/watch.py); with core_uses_pid the kernel names it so.
NAMED_BY_PID = _named_by_pid()


def core_of(directory, crash):
    """Where the core of `crash` (its summary record) was found."""
    pid = crash["id"].rsplit("-", 1)[1]
    return str(directory / (f"core.{pid}" if NAMED_BY_PID else "core"))


def cores_in(directory):
    return sorted(p.relative_to(directory) for p in directory.rglob("core*") if p.is_file()
                  and "coredump-artifacts" not in p.parts)


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_exit_status_is_the_steps(tmp_path, code):
    r = coredump_run(tmp_path, "--", "sh", "-c", f"exit {code}")
    assert r.returncode == code
    assert r.stderr == ""
    assert list(tmp_path.iterdir()) == []  # nothing written without a crash


def test_exit_status_convention():
    statuses = (0, 1 << 8, 255 << 8, signal.SIGSEGV, signal.SIGKILL)
    assert [exit_status(s) for s in statuses] == [0, 1, 255, 139, 137]


def test_command_not_found(tmp_path):
    r = coredump_run(tmp_path, "--", "./no-such-program")
    assert r.returncode == 127 and "cannot run ./no-such-program" in r.stderr


def test_streams_pass_through(tmp_path):
    r = coredump_run(tmp_path, "--", "sh", "-c", "cat; echo to-err >&2", input="hello\n")
    assert (r.stdout, r.stderr) == ("hello\n", "to-err\n")


def test_tty_stays_a_tty(tmp_path):
    primary, secondary = pty.openpty()
    step = "import sys; print('tty' if sys.stdout.isatty() else 'notty')"
    proc = subprocess.Popen(command("run", "--", sys.executable, "-c", step), cwd=tmp_path, env=ENV,
                            stdout=secondary, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    os.close(secondary)
    assert proc.wait(timeout=60) == 0
    assert os.read(primary, 100).strip() == b"tty"
    os.close(primary)


def _soft_core_limit_zero():
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))


def test_rlimit_core_raised_for_the_step(tmp_path):
    hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
    if hard == 0:
        pytest.skip("the hard RLIMIT_CORE is 0 here")
    step = "import resource; print(*resource.getrlimit(resource.RLIMIT_CORE))"
    r = coredump_run(tmp_path, "--", sys.executable, "-c", step, preexec_fn=_soft_core_limit_zero)
    soft, new_hard = map(int, r.stdout.split())
    assert soft == new_hard and soft != 0


def test_segv(tmp_path, samples):
    r = coredump_run(tmp_path, "--", str(samples / "segv"))
    assert r.returncode == 128 + signal.SIGSEGV
    s = summary(tmp_path)
    assert s["exit_status"] == 139 and s["command"] == [str(samples / "segv")]
    (crash,) = s["crashes"]
    assert crash["signal"] == "SIGSEGV" and crash["stored"] and not crash["kept"]
    assert crash["id"].startswith("segv-") and crash["id"] in r.stderr
    assert (tmp_path / "coredump-artifacts" / crash["core"]).stat().st_size > 0
    crash_json = json.loads((tmp_path / "coredump-artifacts" / crash["crash_json"]).read_text())
    assert crash_json["signal"]["number"] == 11
    assert cores_in(tmp_path) == []  # removed once its copy was verified
    exe = tmp_path / "coredump-artifacts" / next(f for f in crash["files"] if f.endswith("/segv"))
    assert exe.read_bytes() == (samples / "segv").read_bytes()


def test_abort(tmp_path, samples):
    r = coredump_run(tmp_path, "--", str(samples / "abort_assert"))
    assert r.returncode == 128 + signal.SIGABRT
    assert [c["signal"] for c in summary(tmp_path)["crashes"]] == ["SIGABRT"]


def test_sigkill_leaves_no_core(tmp_path, samples):
    r = coredump_run(tmp_path, "--", "sh", "-c", "kill -KILL $$")
    assert r.returncode == 137
    assert not (tmp_path / "coredump-artifacts").exists()


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT])
def test_signal_forwarded_to_a_step_that_traps_it(tmp_path, signo):
    step = ("import signal, sys\n"
            f"signal.signal({int(signo)}, lambda *a: sys.exit(100 + {int(signo)}))\n"
            "print('ready', flush=True)\n"
            "while True: signal.pause()\n")
    proc = subprocess.Popen(command("run", "--", sys.executable, "-c", step), cwd=tmp_path, env=ENV,
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signo)
    assert proc.wait(timeout=60) == 100 + signo
    proc.stdout.close()


def test_sigterm_kills_a_step_that_does_not_trap_it(tmp_path):
    proc = subprocess.Popen(command("run", "--", "sh", "-c", "echo ready; exec cat"), cwd=tmp_path, env=ENV,
                            stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    proc.stdout.close()
    proc.stdin.close()


def test_grandchild_crash_in_a_subdirectory(tmp_path, samples):
    r = coredump_run(tmp_path, "--", "sh", "-c", f"mkdir -p a/b && cd a/b && {samples / 'segv'}; exit 3")
    assert r.returncode == 3
    (crash,) = summary(tmp_path)["crashes"]
    assert crash["source"] == core_of(tmp_path / "a" / "b", crash)
    assert crash["signal"] == "SIGSEGV" and crash["stored"]


def test_several_crashes_in_one_step(tmp_path, samples):
    script = " ; ".join(f"(mkdir {p} && cd {p} && exec {samples / p})" for p in ("segv", "fpe", "uselib"))
    r = coredump_run(tmp_path, "--", "sh", "-c", script)
    assert r.returncode == 128 + signal.SIGSEGV  # the last command's status, as sh reports it
    crashes = summary(tmp_path)["crashes"]
    assert sorted(c["signal"] for c in crashes) == ["SIGFPE", "SIGSEGV", "SIGSEGV"]
    assert len({c["id"] for c in crashes}) == 3
    # the C library is shared by the three: stored once; so is its separate debug file,
    # bundled beside it where the machine has one (libc6-dbg)
    libc = [f for c in crashes for f in c["files"] if os.path.basename(f) == "libc.so.6"]
    assert len(libc) == 3 and len(set(libc)) == 1
    debug = [f for c in crashes for f in c["files"] if os.path.basename(f) == "libc.so.6.debug"]
    assert len(debug) in (0, 3) and len(set(debug)) <= 1
    assert not [f for c in crashes for f in c["files"] if "/libc.so" in f and f not in libc + debug]
    assert any(f.endswith("/libcrash.so") for c in crashes for f in c["files"])


def test_stale_core_is_ignored(tmp_path, samples, make_core):
    stale = tmp_path / "old" / "core"
    stale.parent.mkdir()
    stale.write_bytes(make_core("O0", "segv").read_bytes())
    os.utime(stale, (1_000_000_000, 1_000_000_000))
    r = coredump_run(tmp_path, "--", "true")
    assert r.returncode == 0 and not (tmp_path / "coredump-artifacts").exists()
    r = coredump_run(tmp_path, "--", "sh", "-c", f"mkdir new && cd new && exec {samples / 'fpe'}")
    (crash,) = summary(tmp_path)["crashes"]
    assert crash["source"] == core_of(tmp_path / "new", crash)
    assert stale.exists()


def test_unwritable_output_keeps_core_and_status(tmp_path, samples):
    (tmp_path / "blocker").write_text("a file where a directory should be")
    r = coredump_run(tmp_path, "--output", "blocker/artifacts", "--", str(samples / "segv"))
    assert r.returncode == 139
    assert "blocker/artifacts" in r.stderr and "stays at" in r.stderr
    (kept,) = cores_in(tmp_path)
    assert re.fullmatch(r"core(\.\d+)?" if NAMED_BY_PID else "core", str(kept))


def test_core_larger_than_max_core_size(tmp_path, samples):
    r = coredump_run(tmp_path, "--max-core-size", "4K", "--", str(samples / "segv"))
    assert r.returncode == 139
    (crash,) = summary(tmp_path)["crashes"]
    assert not crash["stored"] and crash["core"] is None and crash["kept"]
    assert "--max-core-size" in crash["note"]
    assert crash["crash_json"] is not None  # still analyzed
    assert os.path.exists(core_of(tmp_path, crash))


def test_keep_cores_and_no_binaries(tmp_path, samples):
    r = coredump_run(tmp_path, "--keep-cores", "--no-binaries", "-o", "out", "--", str(samples / "segv"))
    assert r.returncode == 139
    (crash,) = summary(tmp_path, "out")["crashes"]
    assert crash["stored"] and crash["kept"] and crash["files"] == []
    assert os.path.exists(core_of(tmp_path, crash)) and not (tmp_path / "out" / "files").exists()


def _signal_masks(argv, **kw):
    out = subprocess.run([*argv, "grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"], capture_output=True,
                         text=True, timeout=60, **kw)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.parametrize("ignored", [(), (signal.SIGHUP,)], ids=["plain", "nohup"])
def test_step_signals_are_as_without_the_wrapper(tmp_path, ignored):
    """The step's ignored and blocked signals are those it would have without the wrapper: not
    glibc posix_spawn's 32/33, not Python's SIGPIPE/SIGXFSZ, and nohup's SIGHUP kept ignored.
    (Whatever started this test, e.g. make, may itself have left 32/33 ignored.)"""
    def preexec():
        for signo in ignored:
            signal.signal(signo, signal.SIG_IGN)

    direct = _signal_masks([], preexec_fn=preexec, cwd=tmp_path)
    wrapped = _signal_masks(command("run", "--"), preexec_fn=preexec, cwd=tmp_path, env=ENV)
    assert wrapped == direct
    sig_ign = int(wrapped[wrapped.index("SigIgn:") + 1], 16)
    assert not sig_ign & (1 << (signal.SIGPIPE - 1)) and bool(sig_ign & (1 << (signal.SIGHUP - 1))) == bool(ignored)
    assert wrapped[wrapped.index("SigBlk:") + 1] == "0" * 16


def test_not_executable_is_126(tmp_path):
    (tmp_path / "script").write_text("#!/bin/sh\n")
    r = coredump_run(tmp_path, "--", "./script")
    assert r.returncode == 126 and "cannot run ./script" in r.stderr


def _cores_on():
    resource.setrlimit(resource.RLIMIT_CORE, (resource.getrlimit(resource.RLIMIT_CORE)[1],) * 2)


def _next_tick_after(pid):
    """Return once the clock (in the clock ticks of /proc/PID/stat's starttime) is past
    the start of `pid`, so a process started now is visibly younger."""
    started = proc_stat(pid).starttime
    ticks = os.sysconf("SC_CLK_TCK")
    while float(Path("/proc/uptime").read_text().split()[0]) * ticks <= started + 1:
        os.sched_yield()


def test_core_of_another_session_is_left_in_place(tmp_path, samples):
    """Another job (here a shell in its own session, started before the step) dumps a core
    into the tree while the step runs: it is not the step's, so it stays untouched."""
    (tmp_path / "other").mkdir()
    other = subprocess.Popen(["sh", "-c", f"read x; (cd other && exec {samples / 'segv'}); echo crashed $?; read y"],
                             cwd=tmp_path, start_new_session=True, preexec_fn=_cores_on, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    _next_tick_after(other.pid)  # the other session is older than the wrapper, as /proc tells
    step = subprocess.Popen(command("run", "--", "sh", "-c", "echo ready; read x; mkdir mine && cd mine && "
                                    f"{samples / 'fpe'}; exit 0"),
                            cwd=tmp_path, env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert step.stdout.readline() == "ready\n"
        other.stdin.write("go\n")
        other.stdin.flush()
        assert other.stdout.readline() == "crashed 139\n"
        foreign = tmp_path / "other" / "core"
        before = foreign.read_bytes()
        out, err = step.communicate("go\n", timeout=120)
    finally:
        other.communicate("done\n", timeout=60)
    assert step.returncode == 0
    assert foreign.read_bytes() == before  # untouched
    assert f"{foreign}: not this step's (dumped by pid" in err and "left in place" in err
    assert "existed before this step started" in err
    (crash,) = summary(tmp_path)["crashes"]  # the step's own crash is stored
    assert crash["source"] == core_of(tmp_path / "mine", crash) and crash["signal"] == "SIGFPE"


def test_core_of_a_step_process_in_a_new_session_is_the_steps(tmp_path, samples):
    """A step's descendant may start its own session (setsid): its leader is younger than
    the step, so its core is taken as the step's."""
    crash = f"setsid -w sh -c '{samples / 'segv'}; true'"  # a grandchild, in its own session
    r = coredump_run(tmp_path, "--", "sh", "-c", f"({crash}); exit 0")
    assert r.returncode == 0
    (crash,) = summary(tmp_path)["crashes"]
    assert crash["signal"] == "SIGSEGV" and cores_in(tmp_path) == []


def test_missing_core_dir_is_a_warning(tmp_path):
    r = coredump_run(tmp_path, "--core-dir", "no-such-dir", "--", "sh", "-c", "exit 3")
    assert r.returncode == 3
    assert r.stderr == ("coredump: warning: --core-dir no-such-dir: no such directory; "
                        "no core was searched there\n")


def test_core_dir_made_by_the_step_is_searched(tmp_path, samples):
    """A --core-dir outside the working tree that the step itself creates (and crashes in) is
    searched after the step: the crash is found there, and no "no such directory" warning."""
    job = tmp_path / "job"
    job.mkdir()
    r = coredump_run(job, "--core-dir", "../cores", "--", "sh", "-c",
                     f"mkdir ../cores && cd ../cores && exec {samples / 'segv'}")
    assert r.returncode == 139 and "no such directory" not in r.stderr, r.stderr
    crash = summary(job)["crashes"][0]
    assert crash["source"].startswith(str(tmp_path / "cores")), crash


@pytest.mark.parametrize("how", ["path", "PATH"])
def test_script_without_shebang_runs_through_sh(tmp_path, how):
    """execvp(3): a file the kernel refuses as an executable format (ENOEXEC) is run by
    /bin/sh with its path and arguments, as sh, env, timeout and nohup do."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "noshebang"
    script.write_text('echo "$0:$1:$2"\nexit 7\n')
    script.chmod(0o755)
    env = {**ENV, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    name = str(script) if how == "path" else "noshebang"
    r = subprocess.run(command("run", "--", name, "a b", "c"), cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    direct = subprocess.run(["env", name, "a b", "c"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert (r.returncode, r.stdout) == (direct.returncode, direct.stdout) == (7, f"{script}:a b:c\n")
    assert r.stderr == ""
