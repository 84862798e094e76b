"""`coredump run --upload s3://…`: a real crash, stored and uploaded in one step to a real S3
server (moto on 127.0.0.1), then fetched elsewhere and analyzed the same; an upload that
fails keeps the local directory and the step's own exit status."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.bundles import build_uselib
from tests.cores import BUILD, build_samples, core_skip_reason

pytest_plugins = ("tests.s3server",)

ENTRY = "from coredump.cli.entry import main; main()"


def coredump(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-c", ENTRY, *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


@pytest.fixture
def crash_step():
    reason = core_skip_reason()
    if reason:
        pytest.skip(reason)
    build_samples()
    return [str(BUILD / "O0" / "segv")]


def test_run_uploads_and_the_fetched_crash_analyzes_the_same(s3env, tmp_path, crash_step):
    """A crash in a shared library built for this test (rpath $ORIGIN); the build directory
    is deleted between the upload and the fetch."""
    exe, _lib = build_uselib(tmp_path / "build")
    work = tmp_path / "job"
    work.mkdir()
    out = coredump("run", "--upload", s3env.url("ci"), "--", exe, cwd=work)
    assert out.returncode == 139, out.stderr  # the step's own status: SIGSEGV
    assert "uploaded" in out.stderr and "Traceback" not in out.stderr
    local = json.loads((work / "coredump-artifacts" / "summary.json").read_text())
    crash_id = local["crashes"][0]["id"]
    before = json.loads((work / "coredump-artifacts" / crash_id / "crash.json").read_text())
    shutil.rmtree(tmp_path / "build")
    shutil.rmtree(work)

    listed = coredump("ls", "--format", "json", s3env.url("ci"), cwd=tmp_path)
    jobs = json.loads(listed.stdout)
    assert len(jobs) == 1 and jobs[0]["crashes"][0]["id"] == crash_id

    dest = tmp_path / "support"
    got = coredump("fetch", f"{jobs[0]['url']}/{crash_id}", dest, cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    analyzed = coredump("analyze", "--format", "json", dest / crash_id, cwd=tmp_path)
    assert analyzed.returncode == 0, analyzed.stderr
    after = json.loads(analyzed.stdout)
    frames = lambda c: [(f["function"], f["file"], f["line"]) for f in c["threads"][0]["frames"]]  # noqa: E731
    assert frames(after) == frames(before)
    function, file, line = frames(after)[0]
    assert (function, os.path.basename(file), line) == ("lib_parse", "libcrash.c", 8)
    assert after["signature"] == before["signature"]
    assert all(m["status"] == "ok" for m in after["modules"])


def test_failed_upload_keeps_directory_and_status(s3env, tmp_path, crash_step):
    work = tmp_path / "job"
    work.mkdir()
    out = coredump("run", "--upload", "s3://no-such-bucket-coredump/ci", "--", *crash_step, cwd=work,
                   env={"AWS_MAX_ATTEMPTS": "1"})
    assert out.returncode == 139  # the wrapper's own failure never changes the step's status
    assert "coredump: error: upload failed" in out.stderr and "Traceback" not in out.stderr
    summary = json.loads((work / "coredump-artifacts" / "summary.json").read_text())
    crash = summary["crashes"][0]
    assert (work / "coredump-artifacts" / crash["core"]).is_file()


def test_an_upload_that_hangs_ends_at_its_deadline_and_keeps_everything(s3env, fault_proxy, tmp_path, crash_step):
    import math
    import time

    fault_proxy.inject("hang", math.inf)
    work = tmp_path / "job"
    work.mkdir()
    start = time.monotonic()
    out = coredump("run", "--upload-timeout", "2", "--upload", s3env.url("ci"), "--", *crash_step, cwd=work)
    seconds = time.monotonic() - start
    assert out.returncode == 139  # the step's own status, whatever the upload did
    errors = [line for line in out.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("coredump: error: upload failed"), out.stderr
    assert "did not finish within its 2 s deadline" in errors[0] and "Traceback" not in out.stderr
    assert seconds < 60  # analysis and start-up included; the upload alone held 302 s before
    summary = json.loads((work / "coredump-artifacts" / "summary.json").read_text())
    assert (work / "coredump-artifacts" / summary["crashes"][0]["core"]).is_file()
