"""The schema from its first version to the current one, keeping the data: a database
written at version 1 is migrated by the first command that opens it."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

pytest.register_assert_rewrite("tests.historydb")
pytest_plugins = ("tests.historydb",)  # pg_server, db_url

from tests.cli import command  # noqa: E402
from tests.cores import ROOT  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _engine(url):
    from sqlalchemy import create_engine

    from coredump.store.history.url import driver_url

    return create_engine(driver_url(url))


def _version_1_database(url, now):
    """What coredump's schema version 1 wrote: jobs, and crashes without branch or expected."""
    from sqlalchemy import text

    from coredump.store.history.engine import open_engine
    from coredump.store.history.migrations import current_version, migrate

    engine = open_engine(url)
    assert migrate(engine, url, upto=1) == 1
    with engine.begin() as conn:
        assert current_version(conn) == 1
        for n, branch in enumerate(("main", "feature/x")):
            conn.execute(text(
                'INSERT INTO jobs (job_key, provider, repository, "commit", branch, job_url, location, recorded, '
                "started) VALUES (:key, 'github', 'acme/server', :commit, :branch, :url, :loc, :now, :now)"),
                {"key": f"k{n}", "commit": f"abc{n}", "branch": branch, "url": f"https://ci/{n}",
                 "loc": f"/ci/job{n}", "now": now - 86400 * (3 - n)})
            job_id = conn.execute(text("SELECT id FROM jobs WHERE job_key = :key"), {"key": f"k{n}"}).scalar()
            conn.execute(text(
                "INSERT INTO crashes (job_id, crash_id, fingerprint, signature, time, location, report) "
                "VALUES (:job, 'c1', 'fp-old', 'SIGSEGV in legacy', :t, :loc, 'c1/report.html')"),
                {"job": job_id, "t": now - 86400 * (3 - n), "loc": f"/ci/job{n}"})
    engine.dispose()


def test_version_1_is_migrated_keeping_its_data(db_url):
    from sqlalchemy import text

    from coredump.store.history.schema import SCHEMA_VERSION

    now = time.time()
    _version_1_database(db_url, now)
    r = subprocess.run(command("top", "--since", "7d", "--branch", "main", "--format", "json", "--db", db_url),
                       env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)["signatures"]
    assert (row["fingerprint"], row["crashes"], row["branches"]) == ("fp-old", 1, {"main": 1})
    engine = _engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM coredump_schema")).scalar() == SCHEMA_VERSION
        moved = conn.execute(text('SELECT branch, "commit", repository, expected FROM crashes ORDER BY id')).all()
    engine.dispose()
    assert [tuple(m) for m in moved] == [("main", "abc0", "acme/server", None),
                                         ("feature/x", "abc1", "acme/server", None)]
    h = subprocess.run(command("history", "SIGSEGV in legacy", "--format", "json", "--db", db_url), env=ENV,
                       capture_output=True, text=True, timeout=120)
    first = {f["branch"]: f["commit"] for f in json.loads(h.stdout)["first_on_branch"]}
    assert first == {"main": "abc0", "feature/x": "abc1"}
