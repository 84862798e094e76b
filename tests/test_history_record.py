"""`coredump record`: jobs and crashes of artifact directories and S3 prefixes into real
SQLite files and a real PostgreSQL server; idempotent; hostile and malformed input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

pytest.register_assert_rewrite("tests.historydb")
pytest_plugins = ("tests.historydb", "tests.s3server")  # pg_server, db_url; moto_server, s3env

from tests.cli import command  # noqa: E402
from tests.cores import ROOT  # noqa: E402
from tests.historydb import write_job  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
NOW = time.time()
SEGV = {"id": "c1", "signature": "SIGSEGV in store_value < fill_list", "fingerprint": "fp-segv"}
ABRT = {"id": "c2", "signature": "SIGABRT in check_balance < withdraw", "fingerprint": "fp-abrt",
        "expected": "death test"}


def coredump(*args, env=None, **kw):
    return subprocess.run(command(*args), env={**ENV, **(env or {})}, capture_output=True, text=True,
                          timeout=120, **kw)


def rows(url, table):
    from sqlalchemy import create_engine, text

    from coredump.store.history.url import driver_url

    engine = create_engine(driver_url(url))
    with engine.connect() as conn:
        found = [dict(r._mapping) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY id"))]
    engine.dispose()
    return found


def test_record_stores_ci_metadata_and_crashes(db_url, tmp_path):
    job = write_job(tmp_path / "a", NOW - 3600, [SEGV, ABRT], branch="main", commit="1234abcd")
    r = coredump("record", "--db", db_url, str(job))
    assert r.returncode == 0, r.stderr
    assert "1 new, 2 new crashes" in r.stdout
    (stored,) = rows(db_url, "jobs")
    assert (stored["provider"], stored["branch"], stored["commit"]) == ("github", "main", "1234abcd")
    assert stored["job_url"].startswith("https://github.com/acme/server/actions/runs/")
    assert stored["location"] == str(job)
    crashes = {c["crash_id"]: c for c in rows(db_url, "crashes")}
    assert crashes["c1"]["signature"] == SEGV["signature"] and crashes["c1"]["fingerprint"] == "fp-segv"
    assert crashes["c1"]["classification"] == "null-deref" and crashes["c1"]["executable"] == "/ci/build/server"
    assert crashes["c1"]["build_id"] == "9f3c01" and json.loads(crashes["c1"]["build_ids"]) == ["9f3c01", "abcdef12"]
    assert crashes["c1"]["report"] == "c1/report.html" and crashes["c1"]["branch"] == "main"
    assert crashes["c2"]["expected"] == "death test" and crashes["c1"]["expected"] is None
    assert abs(crashes["c1"]["time"] - (NOW - 3600 + 60)) < 2


def test_recording_twice_changes_nothing(db_url, tmp_path):
    write_job(tmp_path / "jobs" / "a", NOW - 7200, [SEGV])
    write_job(tmp_path / "jobs" / "b", NOW - 3600, [SEGV, ABRT])
    assert coredump("record", "--db", db_url, str(tmp_path / "jobs")).returncode == 0
    before = (rows(db_url, "jobs"), rows(db_url, "crashes"))
    again = coredump("record", "--db", db_url, str(tmp_path / "jobs"), str(tmp_path / "jobs" / "a"))
    assert again.returncode == 0 and "3 jobs (0 new, 0 new crashes)" in again.stdout
    assert (rows(db_url, "jobs"), rows(db_url, "crashes")) == before
    assert len(before[0]) == 2 and len(before[1]) == 3


def test_malformed_summary_is_skipped_and_named(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    write_job(tmp_path / "jobs" / "a", NOW, [SEGV])
    bad = tmp_path / "jobs" / "b"
    bad.mkdir(parents=True)
    (bad / "summary.json").write_text('{"schema": "coredump.summary/1", "crashes": ')
    odd = write_job(tmp_path / "jobs" / "c", NOW, [], summary={"schema": "coredump.summary/1", "crashes": 7})
    write_job(tmp_path / "jobs" / "d", NOW, [ABRT])
    r = coredump("record", "--db", url, str(tmp_path / "jobs"))
    assert r.returncode == 1
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert str(bad / "summary.json") in warnings[0] and str(odd / "summary.json") in warnings[1]
    assert r.stderr.splitlines()[-1].startswith("Error: 2 jobs skipped")
    assert "Traceback" not in r.stderr
    assert sorted(c["crash_id"] for c in rows(url, "crashes")) == ["c1", "c2"]


def test_hostile_summary_is_bounded_and_confined(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"classification": "leaked", "reason": "leaked"}))
    job = write_job(tmp_path / "a", NOW, [SEGV])
    summary = json.loads((job / "summary.json").read_text())
    entry = summary["crashes"][0]
    entry["signature"] = "SIGSEGV in \x1b]0;pwned\x07f" + "x" * 100_000
    entry["crash_json"] = "../secret.json"
    summary["ci"]["job_url"] = "javascript:alert(1)"
    summary["ci"]["branch"] = "main\r\n::error::forged"
    summary["crashes"].append(dict(entry, id="c3", crash_json="c1/../../secret.json"))
    os.symlink(secret, job / "link.json")
    summary["crashes"].append(dict(entry, id="c4", crash_json="link.json"))
    (job / "summary.json").write_text(json.dumps(summary))
    assert coredump("record", "--db", url, str(job)).returncode == 0
    (stored,) = rows(url, "jobs")
    assert stored["job_url"] is None and stored["branch"] == "main::error::forged"
    for crash in rows(url, "crashes"):
        assert crash["classification"] is None and crash["reason"] is None  # secret.json never read
        assert "\x1b" not in crash["signature"] and "\x07" not in crash["signature"]
        assert len(crash["signature"]) <= 2048


def test_record_s3_prefix(s3env, tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    client = s3env.client()
    for name, crashes in (("job-1", [SEGV]), ("job-2", [SEGV, ABRT])):
        root = write_job(tmp_path / name, NOW - 600, crashes)
        for path in root.rglob("*"):
            if path.is_file():
                client.put_object(Bucket=s3env.bucket, Key=f"ci/{name}/{path.relative_to(root)}",
                                  Body=path.read_bytes())
    client.put_object(Bucket=s3env.bucket, Key="ci/job-3/summary.json", Body=b"not json")
    r = coredump("record", "--db", url, s3env.url("ci"), env=s3env.env)
    assert r.returncode == 1 and "s3://" in r.stderr and "job-3/summary.json" in r.stderr
    crashes = rows(url, "crashes")
    assert sorted((c["location"], c["crash_id"]) for c in crashes) == [
        (s3env.url("ci", "job-1"), "c1"), (s3env.url("ci", "job-2"), "c1"), (s3env.url("ci", "job-2"), "c2")]
    assert {c["classification"] for c in crashes} == {"null-deref"}  # read from each crash.json in S3


def test_upload_records_the_s3_location_of_a_job_run_recorded(s3env, tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    job = write_job(tmp_path / "a", NOW, [SEGV])
    assert coredump("record", "--db", url, str(job)).returncode == 0
    r = coredump("upload", str(job), s3env.url("ci"), "--job", "j1", env={**s3env.env, "COREDUMP_DB": url})
    assert r.returncode == 0, r.stderr
    (stored,) = rows(url, "crashes")
    assert stored["location"] == s3env.url("ci", "j1") and len(rows(url, "jobs")) == 1


def test_schema_newer_than_the_tool_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    job = write_job(tmp_path / "a", NOW, [SEGV])
    assert coredump("record", "--db", url, str(job)).returncode == 0
    import sqlite3

    with sqlite3.connect(tmp_path / "h.db") as conn:
        conn.execute("UPDATE coredump_schema SET version = 99")
    for args in (("record", str(job)), ("top",), ("history", "fp-segv")):
        r = coredump(*args, "--db", url)
        assert r.returncode != 0 and r.stderr.count("\n") == 1, r.stderr
        assert r.stderr.startswith("Error: ") and "schema version 99" in r.stderr


def test_bad_credentials_and_unreachable_server_are_one_error_line(pg_server, tmp_path):
    job = write_job(tmp_path / "a", NOW, [SEGV])
    for url in (f"postgresql://nobody@/postgres?host={pg_server}", "postgresql://ci:secret@127.0.0.1:9/crashes"):
        for args in (("record", str(job)), ("top",), ("history", "fp-segv")):  # the write and the read path
            r = coredump(*args, "--db", url)
            assert r.returncode == 1 and r.stderr.count("\n") == 1 and r.stderr.startswith("Error: database "), \
                r.stderr
            assert "secret" not in r.stderr and "Traceback" not in r.stderr


def test_without_sqlalchemy_the_error_names_the_extra(tmp_path):
    """A real environment without SQLAlchemy: the interpreter without site-packages, and a
    folder holding every installed package but sqlalchemy and psycopg."""
    import sqlalchemy

    site = os.path.dirname(os.path.dirname(sqlalchemy.__file__))
    shadow = tmp_path / "site"
    shadow.mkdir()
    for name in os.listdir(site):
        if not name.lower().startswith(("sqlalchemy", "psycopg")):
            os.symlink(os.path.join(site, name), shadow / name)
    job = write_job(tmp_path / "a", NOW, [SEGV])
    env = {**ENV, "PYTHONPATH": f"{ROOT}{os.pathsep}{shadow}"}
    r = subprocess.run([sys.executable, "-S", *command("record", "--db", f"sqlite:///{tmp_path}/h.db",
                                                       str(job))[1:]], env=env, capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr == (
        "Error: the crash database needs sqlalchemy, which is not installed: pip install 'coredump[db]'\n")


def test_default_database_is_under_xdg_data_home(tmp_path):
    job = write_job(tmp_path / "a", NOW, [SEGV])
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "COREDUMP_DB": ""}
    assert coredump("record", str(job), env=env).returncode == 0
    assert (tmp_path / "data" / "coredump" / "history.db").is_file()
    r = coredump("history", "fp-segv", env=env)
    assert r.returncode == 0 and "1 crash" in r.stdout
