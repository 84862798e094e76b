"""Upload, ls and fetch against a real moto S3 server over HTTP (tests/s3server.py)."""

import hashlib
import json
import os
import re
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from coredump.cli.store import fetch, ls, upload
from coredump.errors import StorageError
from coredump.store.s3 import MULTIPART_THRESHOLD, default_job_id, upload_artifacts

pytest.register_assert_rewrite("tests.s3server")
pytest_plugins = ("tests.s3server",)  # the moto_server and s3env fixtures

from tests.s3server import make_artifact_dir, record_digests, tree  # noqa: E402

JOB = "20240501T123456Z-ci-runner-7"


def run(command, *args):
    return CliRunner().invoke(command, [str(a) for a in args])


def error_line(result):
    """The one ``Error:`` line the CLI must print on failure."""
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def test_upload_prints_urls_that_open_in_a_browser(s3env, tmp_path):
    art = make_artifact_dir(tmp_path / "art")
    result = run(upload, art, s3env.url("nightly"))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    job = re.fullmatch(rf"Uploaded {re.escape(str(art))} to {s3env.url('nightly')}/({JOB}-[0-9a-f]{{8}})/", lines[0])
    assert job, lines[0]
    assert lines[1] == f"{s3env.endpoint}/{s3env.bucket}/nightly/{job[1]}/index.html"
    assert f"{s3env.endpoint}/{s3env.bucket}/nightly/{job[1]}/c1/report.html" in lines
    presigned = run(upload, art, s3env.url("nightly"), "--job", "j2", "--presign", 600).stdout.splitlines()
    for url, name in ((presigned[1], "index.html"), (presigned[2], "c1/report.html")):
        with urllib.request.urlopen(url) as response:  # what a browser gets from the bucket
            assert response.headers["Content-Type"].startswith("text/html")
            assert response.read() == (art / name).read_bytes()


def test_upload_stores_every_file_with_its_content_type(s3env, tmp_path):
    art = make_artifact_dir(tmp_path / "art")
    urls = upload_artifacts(art, s3env.url("p"), job="j1")
    client = s3env.client()
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=s3env.bucket)["Contents"]}
    assert keys == {f"p/j1/{rel}" for rel in tree(art)} | {"p/j1/.coredump-job.json"}
    types = {rel: client.head_object(Bucket=s3env.bucket, Key=f"p/j1/{rel}")["ContentType"]
             for rel in tree(art)}
    assert types["index.html"].startswith("text/html") and types["c2/report.html"].startswith("text/html")
    assert types["summary.json"] == "application/json" and types["c1/crash.json"] == "application/json"
    assert types["c1/core.zst"] == "application/zstd" and types["junit.xml"] == "application/xml"
    assert [u.rsplit("/j1/", 1)[1] for u in urls] == ["index.html", "c1/report.html", "c2/report.html",
                                                      "summary.json"]


def test_large_core_goes_up_in_parts(s3env, tmp_path):
    core = os.urandom(MULTIPART_THRESHOLD + 1024 * 1024)  # 9 MiB: two 8 MiB parts
    art = make_artifact_dir(tmp_path / "art", crashes=(("c1", "aa11"),), core_bytes=core)
    seen = []
    upload_artifacts(art, s3env.url("p"), job="j1", progress=lambda done, total: seen.append((done, total)))
    client = s3env.client()
    head = client.head_object(Bucket=s3env.bucket, Key="p/j1/c1/core.zst")
    assert head["ETag"].strip('"').endswith("-2")  # a multipart ETag is md5-of-md5s "-<parts>"
    assert "-" not in client.head_object(Bucket=s3env.bucket, Key="p/j1/index.html")["ETag"]
    assert client.get_object(Bucket=s3env.bucket, Key="p/j1/c1/core.zst")["Body"].read() == core
    total = sum(len(data) for data in tree(art).values())
    assert seen[-1] == (total, total)


def test_default_job_id_is_start_time_host_and_a_random_part():
    summary = {"started": "2024-05-01T12:34:56Z", "host": "ci-runner-7"}
    first, second = default_job_id(summary), default_job_id(summary)
    assert re.fullmatch(rf"{JOB}-[0-9a-f]{{8}}", first) and first != second
    assert default_job_id({"started": 1714566896, "host": "a b"})[:-9] == "20240501T123456Z-a-b"


def test_upload_refuses_a_job_that_exists(s3env, tmp_path):
    art = make_artifact_dir(tmp_path / "art")
    assert run(upload, art, s3env.url("p"), "--job", "j1").exit_code == 0
    assert "already holds a job" in error_line(run(upload, art, s3env.url("p"), "--job", "j1"))
    assert run(upload, art, s3env.url("p"), "--job", "second").exit_code == 0


def test_uploads_of_one_directory_get_a_job_each(s3env, tmp_path):
    art = make_artifact_dir(tmp_path / "art")
    assert run(upload, art, s3env.url("p")).exit_code == 0
    assert run(upload, art, s3env.url("p")).exit_code == 0
    jobs = [job["job"] for job in json.loads(run(ls, s3env.url("p"), "--format", "json").stdout)]
    assert len(jobs) == 2 and all(job.startswith(JOB + "-") for job in jobs)


def test_a_job_claimed_by_an_unfinished_upload_is_refused(s3env, tmp_path):
    """An upload that failed (or still runs) holds its claim but no summary.json yet."""
    art = make_artifact_dir(tmp_path / "art")
    s3env.client().put_object(Bucket=s3env.bucket, Key="p/j1/.coredump-job.json", Body=b"{}")
    assert "is claimed by another upload" in error_line(run(upload, art, s3env.url("p"), "--job", "j1"))


@pytest.mark.parametrize("setup, message", [
    (lambda d: d.mkdir(), "has no summary.json"),
    (lambda d: None, "is not a directory"),
])
def test_upload_of_a_non_artifact_directory_is_one_error(s3env, tmp_path, setup, message):
    setup(tmp_path / "x")
    assert message in error_line(run(upload, tmp_path / "x", s3env.url("p")))


def test_upload_to_a_missing_bucket_is_one_error(s3env, tmp_path):
    art = make_artifact_dir(tmp_path / "art")
    line = error_line(run(upload, art, f"s3://{s3env.bucket}-missing/p"))
    assert "NoSuchBucket" in line
    assert tree(art) == tree(art)  # still readable, nothing removed
    assert (art / "summary.json").is_file()


def test_ls_lists_jobs_and_crashes(s3env, tmp_path):
    upload_artifacts(make_artifact_dir(tmp_path / "a"), s3env.url("p"), job="j1")
    upload_artifacts(make_artifact_dir(tmp_path / "b", crashes=(("c9", "cc33"),),
                                       started="2024-06-01T00:00:00Z"), s3env.url("p"), job="j2")
    result = run(ls, s3env.url("p"))
    assert result.exit_code == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["STARTED", "JOB/CRASH", "SIGNAL", "SIGNATURE", "EXECUTABLE"]
    assert len(lines) == 3
    assert lines[0].split()[:5] == ["2024-05-01T12:34:56+00:00", "j1/c1", "SIGSEGV", "SIGSEGV", "in"]
    assert lines[0].endswith("/opt/prog0") and "store_value_0" in lines[0]
    assert lines[2].split()[1] == "j2/c9"


def test_ls_finds_jobs_at_any_depth(s3env, tmp_path):
    """Jobs uploaded to s3://b/ci/myproj/… are found by ls s3://b/ci (#16)."""
    upload_artifacts(make_artifact_dir(tmp_path / "a"), s3env.url("ci", "myproj"), job="j1")
    upload_artifacts(make_artifact_dir(tmp_path / "b"), s3env.url("ci", "other", "nightly"), job="j2")
    jobs = json.loads(run(ls, s3env.url("ci"), "--format", "json").stdout)
    assert sorted(job["job"] for job in jobs) == ["myproj/j1", "other/nightly/j2"]
    want = [s3env.url("ci", "myproj", "j1"), s3env.url("ci", "other", "nightly", "j2")]
    assert sorted(job["url"] for job in jobs) == want


def test_ls_lists_local_artifact_directories(tmp_path):
    make_artifact_dir(tmp_path / "jobs" / "a" / "coredump-artifacts")
    make_artifact_dir(tmp_path / "jobs" / "b" / "coredump-artifacts", crashes=(("c9", "cc33"),))
    (tmp_path / "jobs" / "c").mkdir()
    (tmp_path / "jobs" / "c" / "summary.json").write_text("{not json")
    result = run(ls, str(tmp_path / "jobs"))
    assert result.exit_code == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert header.split()[:2] == ["STARTED", "JOB/CRASH"]
    assert sorted(line.split()[1] for line in lines) == ["a/coredump-artifacts/c1", "a/coredump-artifacts/c2",
                                                         "b/coredump-artifacts/c9"]
    assert "summary.json: not read" in result.stderr
    missing = run(ls, str(tmp_path / "nowhere"))
    assert missing.exit_code == 1 and "neither s3://BUCKET/PREFIX nor a directory" in missing.stderr


def test_ls_json_and_a_job_url(s3env, tmp_path):
    upload_artifacts(make_artifact_dir(tmp_path / "a"), s3env.url("p"), job="j1")
    s3env.client().put_object(Bucket=s3env.bucket, Key="p/partial/index.html", Body=b"")  # no summary yet
    jobs = json.loads(run(ls, s3env.url("p"), "--format", "json").stdout)
    assert [job["job"] for job in jobs] == ["j1"]
    assert jobs[0]["host"] == "ci-runner-7" and jobs[0]["exit_status"] == 2
    assert jobs[0]["crashes"][1] == {"id": "c2", "signature": "SIGSEGV in store_value_1", "signal": "SIGSEGV",
                                     "executable": "/opt/prog1", "url": s3env.url("p", "j1", "c2")}
    one = json.loads(run(ls, s3env.url("p", "j1"), "--format", "json").stdout)
    assert [job["job"] for job in one] == ["j1"]


def test_fetch_job_restores_the_directory(s3env, tmp_path):
    art = make_artifact_dir(tmp_path / "art")
    upload_artifacts(art, s3env.url("p"), job="j1")
    result = run(fetch, s3env.url("p", "j1"), tmp_path / "dest")
    assert result.exit_code == 0, result.stderr
    assert tree(tmp_path / "dest") == tree(art)
    assert result.stdout.startswith(f"Fetched {len(tree(art))} files")


def test_fetch_one_crash_brings_its_binaries_only(s3env, tmp_path):
    art = make_artifact_dir(tmp_path / "art")
    upload_artifacts(art, s3env.url("p"), job="j1")
    assert run(fetch, s3env.url("p", "j1", "c2"), tmp_path / "dest").exit_code == 0
    got = tree(tmp_path / "dest")
    assert set(got) == {"summary.json", "c2/crash.json", "c2/report.html", "c2/core.zst", "files/bb22/prog1"}
    assert got["c2/core.zst"] == (art / "c2" / "core.zst").read_bytes()
    assert [c["id"] for c in json.loads(got["summary.json"])["crashes"]] == ["c2"]


def test_fetch_of_nothing_is_one_error(s3env, tmp_path):
    assert "no coredump job or crash" in error_line(run(fetch, s3env.url("p", "nope"), tmp_path / "d"))


HOSTILE_KEYS = ["../../etc/x", "/abs", "c1/../../../x", "c1/core.zst\0.sh", "\x1b]0;owned\x07", "a\\..\\b"]


def test_fetch_writes_no_hostile_key_and_names_each_one(s3env, tmp_path):
    """Keys summary.json does not record never become paths: the job still fetches, and the
    warning shows each key escaped (NUL and ESC visible, not acted on by the terminal)."""
    art = make_artifact_dir(tmp_path / "art")
    upload_artifacts(art, s3env.url("p"), job="j1")
    client = s3env.client()
    for rel in HOSTILE_KEYS:
        client.put_object(Bucket=s3env.bucket, Key=f"p/j1/{rel}", Body=b"owned")
    listed = {o["Key"] for o in client.list_objects_v2(Bucket=s3env.bucket, Prefix="p/j1/")["Contents"]}
    assert {f"p/j1/{rel}" for rel in HOSTILE_KEYS} <= listed  # the store kept every one as named
    dest = tmp_path / "deep" / "er" / "dest"
    outside = {k: v for k, v in tree(tmp_path).items() if not k.startswith("deep/")}
    result = run(fetch, s3env.url("p", "j1"), dest)
    assert result.exit_code == 0, result.stderr
    assert tree(dest) == tree(art)
    assert {k: v for k, v in tree(tmp_path).items() if not k.startswith("deep/")} == outside
    assert not (tmp_path / "deep" / "etc").exists() and not (tmp_path / "x").exists()
    warning, = result.stderr.splitlines()
    assert warning.startswith("warning: not fetched, summary.json does not record them: ")
    assert "../../etc/x (parent directory component '..')" in warning and "/abs (absolute path)" in warning
    assert "c1/core.zst\\x00.sh (NUL or backslash in name)" in warning and "\\x1b]0;owned\\x07" in warning
    assert "\0" not in warning and "\x1b" not in warning


def test_an_empty_folder_key_leaves_the_job_fetchable(s3env, tmp_path):
    art = make_artifact_dir(tmp_path / "art")
    upload_artifacts(art, s3env.url("p"), job="j1")
    s3env.client().put_object(Bucket=s3env.bucket, Key="p/j1/notes/", Body=b"")  # the S3 console's "Create folder"
    for url, dest in ((s3env.url("p", "j1"), tmp_path / "job"), (s3env.url("p", "j1", "c1"), tmp_path / "c1")):
        result = run(fetch, url, dest)
        assert result.exit_code == 0 and result.stderr == "", result.stderr
        assert not (dest / "notes").exists()
    assert tree(tmp_path / "job") == tree(art)
    assert tree(tmp_path / "c1")["c1/core.zst"] == (art / "c1" / "core.zst").read_bytes()


@pytest.mark.parametrize("name", ["../outside", "/tmp/outside", "c1/x\0y", "c1//x"])
def test_fetch_refuses_a_summary_that_names_a_path_outside_dest(s3env, tmp_path, name):
    """summary.json is hostile too: a name it records that would leave DEST stops the fetch."""
    art = make_artifact_dir(tmp_path / "art")
    upload_artifacts(art, s3env.url("p"), job="j1")
    client = s3env.client()
    summary = json.loads((art / "summary.json").read_text())
    summary["digests"][name] = {"size": 5, "sha256": hashlib.sha256(b"owned").hexdigest()}
    client.put_object(Bucket=s3env.bucket, Key=f"p/j1/{name}", Body=b"owned")
    client.put_object(Bucket=s3env.bucket, Key="p/j1/summary.json", Body=json.dumps(summary).encode())
    line = error_line(run(fetch, s3env.url("p", "j1"), tmp_path / "dest"))
    assert "refused 1 name(s) in p/j1/summary.json that would write outside the destination" in line
    assert repr(f"p/j1/{name}") in line
    assert not (tmp_path / "dest").exists() and not (tmp_path / "outside").exists()


def test_fetch_leaves_unrecorded_objects_in_the_bucket(s3env, tmp_path):
    """A library planted under files/ after the upload would be loaded by gdb: it stays out."""
    art = make_artifact_dir(tmp_path / "art")
    upload_artifacts(art, s3env.url("p"), job="j1")
    s3env.client().put_object(Bucket=s3env.bucket, Key="p/j1/files/aa11/libevil.so", Body=b"\x7fELF")
    result = run(fetch, s3env.url("p", "j1", "c1"), tmp_path / "dest")
    assert result.exit_code == 0, result.stderr
    assert "files/aa11/libevil.so" in result.stderr and not (tmp_path / "dest" / "files/aa11/libevil.so").exists()


def test_fetch_of_a_job_missing_a_recorded_file_is_one_error(s3env, tmp_path):
    upload_artifacts(make_artifact_dir(tmp_path / "art"), s3env.url("p"), job="j1")
    s3env.client().delete_object(Bucket=s3env.bucket, Key="p/j1/c2/report.html")
    line = error_line(run(fetch, s3env.url("p", "j1"), tmp_path / "dest"))
    assert "p/j1/c2/report.html: summary.json records it but the bucket has no such object" in line
    assert not (tmp_path / "dest").exists()


def test_fetch_refuses_a_symlink_planted_in_dest(s3env, tmp_path):
    upload_artifacts(make_artifact_dir(tmp_path / "art"), s3env.url("p"), job="j1")
    outside, dest = tmp_path / "outside", tmp_path / "dest"
    outside.mkdir()
    dest.mkdir()
    (dest / "files").symlink_to(outside)
    line = error_line(run(fetch, s3env.url("p", "j1"), dest))
    assert "'p/j1/files/aa11/prog0'" in line and "is a symlink" in line
    assert list(outside.iterdir()) == []


@pytest.fixture
def harvested_job(s3env, tmp_path, make_core):
    """A job stored by a real harvest of a real kernel core, uploaded to the moto bucket."""
    import shutil

    from coredump.capture.harvest import HarvestOptions, harvest

    job = tmp_path / "job"
    job.mkdir()
    shutil.copyfile(make_core("O0", "segv"), job / "core")
    art = tmp_path / "art"
    harvest(HarvestOptions(output=str(art), paths=(str(job),)), echo=lambda line: None, cores=[str(job / "core")])
    summary = json.loads((art / "summary.json").read_text())
    upload_artifacts(art, s3env.url("p"), job="j1")
    return art, summary["crashes"][0]


def files_in(path):
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


@pytest.mark.parametrize("tamper, message", [
    (lambda data: bytes([data[0] ^ 1]) + data[1:], "sha256 differs from the one summary.json records"),
    (lambda data: data + b"x", "bytes but summary.json records"),
], ids=["same size", "longer"])
def test_fetch_refuses_an_object_changed_after_upload(s3env, tmp_path, harvested_job, tamper, message):
    art, crash = harvested_job
    key = f"p/j1/{crash['core']}"
    client = s3env.client()
    data = client.get_object(Bucket=s3env.bucket, Key=key)["Body"].read()
    assert len(data) == crash["size"]
    client.put_object(Bucket=s3env.bucket, Key=key, Body=tamper(data))
    for url in (s3env.url("p", "j1"), s3env.url("p", "j1", crash["id"])):
        line = error_line(run(fetch, url, tmp_path / "dest"))
        assert key in line and message in line
        assert files_in(tmp_path / "dest") == []


def test_fetch_refuses_a_changed_bundled_file(s3env, tmp_path, harvested_job):
    art, crash = harvested_job
    rel = next(r for r in crash["file_digests"] if r.endswith("/segv"))
    client = s3env.client()
    data = (art / rel).read_bytes()
    client.put_object(Bucket=s3env.bucket, Key=f"p/j1/{rel}", Body=data[:-1] + bytes([data[-1] ^ 1]))
    line = error_line(run(fetch, s3env.url("p", "j1", crash["id"]), tmp_path / "dest"))
    assert f"p/j1/{rel}" in line and "sha256 differs" in line
    assert files_in(tmp_path / "dest") == []


def test_fetch_of_an_untouched_harvested_job_passes_the_checks(s3env, tmp_path, harvested_job):
    art, crash = harvested_job
    result = run(fetch, s3env.url("p", "j1"), tmp_path / "dest")
    assert result.exit_code == 0 and result.stderr == "", result.stderr
    assert tree(tmp_path / "dest") == tree(art)  # every file recorded, so every file fetched


@pytest.mark.parametrize("name", ["{id}/crash.json", "{id}/report.html", "index.html", "junit.xml"])
def test_fetch_refuses_a_changed_page_or_analysis(s3env, tmp_path, harvested_job, name):
    """harvest (store/artifacts.py, report/render.py) records every file it writes, so a page
    edited in the bucket (a phishing link in report.html) is caught like a changed core."""
    art, crash = harvested_job
    rel = name.format(id=crash["id"])
    client = s3env.client()
    data = (art / rel).read_bytes()
    client.put_object(Bucket=s3env.bucket, Key=f"p/j1/{rel}", Body=data[:-2] + bytes([data[-2] ^ 1]) + data[-1:])
    urls = [s3env.url("p", "j1")] + ([s3env.url("p", "j1", crash["id"])] if "{id}" in name else [])
    for url in urls:
        line = error_line(run(fetch, url, tmp_path / "dest"))
        assert f"p/j1/{rel}" in line and "sha256 differs from the one summary.json records" in line
        assert not (tmp_path / "dest").exists()  # nothing half-written: no file, no directory


def test_library_errors_are_storage_errors(s3env, tmp_path):
    with pytest.raises(StorageError, match="not an S3 URL"):
        upload_artifacts(make_artifact_dir(tmp_path / "a"), "http://example.com/x")


def test_real_core_round_trip_brings_the_binaries_gdb_needs(s3env, tmp_path, make_core):
    """A real kernel core and the files its NT_FILE names, by build-id, up and back down."""
    import shutil

    import zstandard

    from coredump.elf.core import open_core
    from coredump.elf.image import ElfImage
    from coredump.elf.modules import find_modules

    core_path = make_core("O0", "uselib")
    modules = [m for m in find_modules(open_core(str(core_path))) if m.build_id and os.path.isfile(m.path)]
    assert len(modules) >= 3  # the executable, libcrash.so, libc
    art = make_artifact_dir(tmp_path / "art", crashes=(("c1", "00"),),
                            core_bytes=zstandard.ZstdCompressor().compress(core_path.read_bytes()))
    shutil.rmtree(art / "files")
    (art / "c1" / "crash.json").write_text(json.dumps(
        {"modules": [{"path": m.path, "build_id": m.build_id} for m in modules]}))
    for m in modules:
        (art / "files" / m.build_id).mkdir(parents=True, exist_ok=True)
        shutil.copy(m.path, art / "files" / m.build_id / os.path.basename(m.path))
    summary = json.loads((art / "summary.json").read_text())
    summary["crashes"][0]["files"] = [f"files/{m.build_id}/{os.path.basename(m.path)}" for m in modules]
    record_digests(art, summary)
    upload_artifacts(art, s3env.url("p"), job="j1")
    assert run(fetch, s3env.url("p", "j1", "c1"), tmp_path / "dest").exit_code == 0
    dest = tmp_path / "dest"
    compressed = (dest / "c1" / "core.zst").read_bytes()
    restored = zstandard.ZstdDecompressor().decompressobj().decompress(compressed)
    assert restored == core_path.read_bytes()
    for m in modules:
        assert ElfImage(str(dest / "files" / m.build_id / os.path.basename(m.path))).build_id == m.build_id


def test_progress_bar_on_a_terminal_only(s3env, tmp_path):
    import pty
    import subprocess
    import sys
    from pathlib import Path

    art = make_artifact_dir(tmp_path / "art")
    env = dict(os.environ, **s3env.env, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    command = [sys.executable, "-m", "coredump.cli.store", "upload", str(art), s3env.url("p")]
    master, slave = pty.openpty()
    with os.fdopen(master, "rb", buffering=0) as terminal:
        proc = subprocess.Popen(command + ["--job", "tty"], env=env, stderr=slave, stdout=subprocess.PIPE)
        os.close(slave)
        drawn = b""
        while True:
            try:
                chunk = terminal.read(4096)
            except OSError:  # EIO once the child has closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
        assert proc.wait(timeout=60) == 0
    assert b"uploading" in drawn and b"100%" in drawn
    piped = subprocess.run(command + ["--job", "pipe"], env=env, capture_output=True, timeout=60)
    assert piped.returncode == 0 and piped.stderr == b""


def test_ls_sanitizes_crash_data(s3env, tmp_path):
    """summary.json of an uploaded job is hostile: its signature, executable and crash id
    must not end the line, forge a GitHub ``::error::`` or drive the terminal."""
    art = make_artifact_dir(tmp_path / "a")
    summary = json.loads((art / "summary.json").read_text())
    forged = "SIGSEGV\r\n::error file=x.c,line=1::forged\x1b]0;title\x07\x9b31m"
    summary["crashes"][0].update(signature=forged, executable="/opt/p\x1b[2J\nx", id="c1\r::error::id")
    summary["started"] = "2024\x1b[1m"
    (art / "summary.json").write_text(json.dumps(summary))
    upload_artifacts(art, s3env.url("p"), job="j1")
    result = run(ls, s3env.url("p"))
    assert result.exit_code == 0, result.stderr
    assert "forged" in result.stdout and len(result.stdout.splitlines()) == 3  # the header, two crashes
    assert not any(line.startswith("::") for line in result.stdout.splitlines())
    assert not set(result.stdout) & set("\x1b\x07\r\x9b")


@pytest.mark.parametrize("name", ["upload", "ls", "fetch"])
def test_store_commands_into_a_closed_pipe_end_quietly(s3env, tmp_path, name):
    """``coredump upload … | head -1`` ended in "internal error: BrokenPipeError"."""
    from tests.cli import command
    from tests.closedpipe import run_into_closed_pipe

    art = make_artifact_dir(tmp_path / "art")
    if name != "upload":
        upload_artifacts(art, s3env.url("p"), job="j1")
    args = {"upload": [art, s3env.url("p"), "--job", "j1"], "ls": [s3env.url("p")],
            "fetch": [s3env.url("p", "j1"), tmp_path / "dest"]}[name]
    env = dict(os.environ, **s3env.env, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    proc = run_into_closed_pipe(command(name, *map(str, args)), env=env)
    assert (proc.returncode, proc.stderr) == (1, "")
    if name == "fetch":
        assert tree(tmp_path / "dest") == tree(art)
    assert stored_keys(s3env, "p/j1/") >= {f"p/j1/{rel}" for rel in tree(art)}  # the work was done first


def stored_keys(s3env, prefix):
    listing = s3env.client().list_objects_v2(Bucket=s3env.bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"] for o in listing}


def test_a_local_claim_file_never_replaces_the_jobs_claim(s3env, tmp_path):
    art = make_artifact_dir(tmp_path / "art")
    (art / ".coredump-job.json").write_text('{"token": "forged"}')
    assert run(upload, art, s3env.url("p"), "--job", "j1").exit_code == 0
    claim = s3env.client().get_object(Bucket=s3env.bucket, Key="p/j1/.coredump-job.json")["Body"].read()
    assert b"forged" not in claim and len(json.loads(claim)["token"]) == 32


def test_a_summary_that_records_itself_still_fetches(s3env, tmp_path):
    """summary.json cannot hold its own sha256; a (hostile) entry for it is not a file to fetch."""
    art = make_artifact_dir(tmp_path / "art")
    summary = json.loads((art / "summary.json").read_text())
    summary["digests"]["summary.json"] = {"size": 1, "sha256": "0" * 64}
    (art / "summary.json").write_text(json.dumps(summary))
    upload_artifacts(art, s3env.url("p"), job="j1")
    result = run(fetch, s3env.url("p", "j1"), tmp_path / "dest")
    assert result.exit_code == 0, result.stderr
    assert tree(tmp_path / "dest") == tree(art)
