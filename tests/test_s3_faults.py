"""Retries and failures of the S3 store, through a fault-injecting proxy in front of moto."""

import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.register_assert_rewrite("tests.s3server")
pytest_plugins = ("tests.s3server",)  # the moto_server, s3env and fault_proxy fixtures

from coredump.cli.store import fetch, upload  # noqa: E402
from coredump.store.s3 import CLAIM, MULTIPART_THRESHOLD, upload_artifacts  # noqa: E402
from tests.s3server import make_artifact_dir, tree  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def stored(s3env, prefix):
    """The objects under prefix, without the job's claim (which the artifact directory lacks)."""
    client = s3env.client()
    listing = client.list_objects_v2(Bucket=s3env.bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"][len(prefix):]: client.get_object(Bucket=s3env.bucket, Key=o["Key"])["Body"].read()
            for o in listing if not o["Key"].endswith(f"/{CLAIM}")}


@pytest.mark.parametrize("mode", ["503", "reset", "drop"])
def test_upload_retries_throttling_and_connection_failures(s3env, fault_proxy, tmp_path, mode):
    art = make_artifact_dir(tmp_path / "art")
    fault_proxy.inject(mode, 3)
    result = CliRunner().invoke(upload, [str(art), s3env.url("p"), "--job", "j1"])
    assert result.exit_code == 0, result.stderr
    assert fault_proxy.count(f"fault:{mode}") == 3
    first = fault_proxy.log[0][1:3]
    assert [entry[1:3] for entry in fault_proxy.log[:4]] == [first] * 4  # the same request, again
    assert fault_proxy.log[3][3] == "pass"
    assert stored(s3env, "p/j1/") == tree(art)


def test_multipart_upload_retries_a_failed_part(s3env, fault_proxy, tmp_path):
    core = os.urandom(MULTIPART_THRESHOLD + 1024 * 1024)
    art = make_artifact_dir(tmp_path / "art", crashes=(("c1", "aa11"),), core_bytes=core)
    fault_proxy.inject("503", 2, match=lambda method, target: method == "PUT" and "partNumber=" in target)
    upload_artifacts(art, s3env.url("p"), job="j1")
    assert fault_proxy.count("fault:503") == 2
    head = s3env.client().head_object(Bucket=s3env.bucket, Key="p/j1/c1/core.zst")
    assert head["ETag"].strip('"').endswith("-2")
    assert stored(s3env, "p/j1/")["c1/core.zst"] == core


def test_fetch_retries_failed_downloads(s3env, fault_proxy, tmp_path):
    art = make_artifact_dir(tmp_path / "art")
    upload_artifacts(art, s3env.url("p"), job="j1")
    fault_proxy.inject("reset", 3, match=lambda method, target: method == "GET" and "core.zst" in target)
    result = CliRunner().invoke(fetch, [s3env.url("p", "j1"), str(tmp_path / "dest")])
    assert result.exit_code == 0, result.stderr
    assert fault_proxy.count("fault:reset") == 3
    assert tree(tmp_path / "dest") == tree(art)


def test_persistent_failure_is_one_error_and_keeps_the_directory(s3env, fault_proxy, tmp_path):
    art = make_artifact_dir(tmp_path / "art")
    before = tree(art)
    fault_proxy.inject("503", math.inf, match=lambda method, target: method == "PUT")
    env = dict(os.environ, **s3env.env, AWS_MAX_ATTEMPTS="2", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "coredump.cli.store", "upload", str(art), s3env.url("p")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: upload to "), proc.stderr
    assert "SlowDown" in lines[0] and "max retries" in lines[0]
    tries = Counter(target for _, method, target, _ in fault_proxy.log if method == "PUT")
    assert max(tries.values()) == 2  # AWS_MAX_ATTEMPTS counts the first try
    assert tree(art) == before
    assert stored(s3env, "p/") == {}


def test_persistent_download_failure_leaves_no_partial_files(s3env, fault_proxy, tmp_path, monkeypatch):
    art = make_artifact_dir(tmp_path / "art")
    upload_artifacts(art, s3env.url("p"), job="j1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    cores = lambda method, target: method == "GET" and "core.zst" in target  # noqa: E731
    fault_proxy.inject("drop", math.inf, match=cores)
    result = CliRunner().invoke(fetch, [s3env.url("p", "j1"), str(tmp_path / "dest")])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: download of s3://"), result.stderr
    assert "core.zst" in lines[0]
    names = [p.name for p in (tmp_path / "dest").rglob("*")]
    assert "core.zst" not in names and not any(name.endswith(".part") for name in names)


def cli_store(s3env, *args, timeout=120):
    """``python -m coredump.cli.store ARGS`` in a process of its own; (result, seconds)."""
    import time

    env = dict(os.environ, **s3env.env, PYTHONPATH=str(ROOT))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "coredump.cli.store", *map(str, args)],
                          env=env, capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - start


def test_an_endpoint_that_never_answers_fails_the_upload_at_its_deadline(s3env, fault_proxy, tmp_path):
    art = make_artifact_dir(tmp_path / "art")
    before = tree(art)
    fault_proxy.inject("hang", math.inf)
    proc, seconds = cli_store(s3env, "upload", art, s3env.url("p"), "--job", "j1", "--timeout", 2)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"Error: upload to {s3env.url('p', 'j1')} did not finish within its 2 s deadline; "
                               "last error: Read timeout on endpoint URL"), lines[0]
    assert seconds < 15  # 2 s of budget plus interpreter start-up; 302 s before the deadline existed
    assert fault_proxy.count("fault:hang") == 1  # no retry started after the deadline
    assert tree(art) == before
    assert stored(s3env, "p/") == {}


def test_each_attempt_has_a_short_read_timeout(s3env, fault_proxy, tmp_path):
    """Without --timeout one attempt waits READ_TIMEOUT (20 s), not botocore's 60 s."""
    from coredump.store.s3deadline import READ_TIMEOUT

    fault_proxy.inject("hang", math.inf)
    s3env.env["AWS_MAX_ATTEMPTS"] = "1"
    proc, seconds = cli_store(s3env, "upload", make_artifact_dir(tmp_path / "art"), s3env.url("p"))
    assert proc.returncode == 1 and "Read timeout on endpoint URL" in proc.stderr, proc.stderr
    assert READ_TIMEOUT <= seconds < READ_TIMEOUT + 15


def test_a_part_that_never_answers_aborts_the_multipart_upload(s3env, fault_proxy, tmp_path):
    from coredump.errors import StorageError

    core = os.urandom(MULTIPART_THRESHOLD + 1024 * 1024)
    art = make_artifact_dir(tmp_path / "art", crashes=(("c1", "aa11"),), core_bytes=core)
    fault_proxy.inject("hang", math.inf, match=lambda method, target: "partNumber=2" in target)
    with pytest.raises(StorageError, match="did not finish within its 3 s deadline; last error: Read timeout"):
        upload_artifacts(art, s3env.url("p"), job="j1", timeout=3)
    # The abort is sent after the deadline: an open multipart upload is billed until removed.
    assert any(method == "DELETE" and "uploadId=" in target for _, method, target, _ in fault_proxy.log)
    assert s3env.client().list_multipart_uploads(Bucket=s3env.bucket).get("Uploads", []) == []
    assert "c1/core.zst" not in stored(s3env, "p/j1/") and "summary.json" not in stored(s3env, "p/j1/")


def test_a_fetch_from_an_endpoint_that_never_answers_stops_at_its_deadline(s3env, fault_proxy, tmp_path):
    upload_artifacts(make_artifact_dir(tmp_path / "art"), s3env.url("p"), job="j1")
    fault_proxy.inject("hang", math.inf, match=lambda method, target: method == "GET" and "core.zst" in target)
    proc, seconds = cli_store(s3env, "fetch", s3env.url("p", "j1"), tmp_path / "dest", "--timeout", 2)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "did not finish within its 2 s deadline" in lines[0], proc.stderr
    assert seconds < 15
    assert files_in(tmp_path / "dest") == []


def files_in(path):
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def concurrent_uploads(s3env, fault_proxy, arts, *extra):
    """Upload each directory in a process of its own; every summary.json PUT waits until all
    of them have asked whether their job exists, so the uploads truly overlap."""
    summary_head = lambda entry: entry[1] == "HEAD" and entry[2].split("?")[0].endswith("/summary.json")  # noqa: E731
    fault_proxy.hold(lambda method, target: method == "PUT" and target.split("?")[0].endswith("/summary.json"))
    env = dict(os.environ, **s3env.env, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-m", "coredump.cli.store", "upload", str(art), s3env.url("p"),
                               *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for art in arts]
    try:
        fault_proxy.wait_for(lambda log: sum(map(summary_head, log)) == len(arts))
    finally:
        fault_proxy.release()
    return [(proc.wait(timeout=120), *proc.communicate()) for proc in procs]


def two_jobs_of_one_second(tmp_path):
    """Two matrix jobs on one host, started in the same second: equal default job ids before."""
    return [make_artifact_dir(tmp_path / name) for name in ("a", "b")]


def test_concurrent_uploads_get_distinct_job_ids(s3env, fault_proxy, tmp_path):
    arts = two_jobs_of_one_second(tmp_path)
    results = concurrent_uploads(s3env, fault_proxy, arts)
    assert [status for status, _, _ in results] == [0, 0], results
    jobs = [out.splitlines()[0].rstrip("/").rsplit("/", 1)[1] for _, out, _ in results]
    assert jobs[0] != jobs[1]
    for art, job in zip(arts, jobs):
        assert stored(s3env, f"p/{job}/") == tree(art)  # each job holds its own files only


def test_concurrent_uploads_to_one_named_job_let_one_win(s3env, fault_proxy, tmp_path):
    arts = two_jobs_of_one_second(tmp_path)
    results = concurrent_uploads(s3env, fault_proxy, arts, "--job", "j1")
    assert sorted(status for status, _, _ in results) == [0, 1], results
    winner = next(art for art, (status, _, _) in zip(arts, results) if status == 0)
    loser = next(err for status, _, err in results if status == 1)
    assert loser.strip() == f"Error: {s3env.url('p', 'j1')} is claimed by another upload (finished or still " \
                            "running); choose another with --job"
    assert stored(s3env, "p/j1/") == tree(winner)
