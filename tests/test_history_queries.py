"""`coredump top` and `coredump history` over a recorded history, on SQLite and PostgreSQL:
counts, first and last seen, branches, trend, expected crashes, the first commit on each
branch, and --limit."""

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
from tests.historydb import write_job  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
DAY = 86400
NOW = time.time()
RISING = {"id": "c1", "signature": "SIGSEGV in parse_header", "fingerprint": "fp-rising"}
OLD = {"id": "c2", "signature": "SIGABRT in check_balance", "fingerprint": "fp-old", "expected": "death test"}


def coredump(*args):
    r = subprocess.run(command(*args), env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture
def recorded(db_url, tmp_path):
    """fp-old: expected, once a day on main for 40 days; fp-rising: once 6 days ago on main,
    then on 4 of the last 3 days' jobs of main and feature/x."""
    jobs = tmp_path / "jobs"
    for day in range(40, 0, -1):
        # an hour inside the 7-day window: NOW is taken at import, the query runs minutes later
        write_job(jobs / f"old{day}", NOW - day * DAY + 3600, [OLD], commit=f"m{day}")
    write_job(jobs / "r0", NOW - 6 * DAY, [RISING], commit="first-main")
    for n, (day, branch) in enumerate([(3, "feature/x"), (2, "main"), (1, "feature/x"), (0.5, "main")]):
        write_job(jobs / f"r{n + 1}", NOW - day * DAY, [RISING], branch=branch, commit=f"r{n + 1}")
    coredump("record", "--db", db_url, str(jobs))
    return db_url


def test_top(recorded):
    top = json.loads(coredump("top", "--since", "7d", "--format", "json", "--db", recorded))
    assert top["crashes"] == 7 + 5 and top["jobs"] == 12  # fp-old on days 7..1
    old, rising = top["signatures"]
    assert (old["fingerprint"], old["crashes"], old["expected"], old["trend"]) == ("fp-old", 7, 7, "steady")
    assert old["first_seen"] < NOW - 39 * DAY  # over all the history, not the window
    assert (rising["fingerprint"], rising["crashes"], rising["jobs"]) == ("fp-rising", 5, 5)
    assert rising["branches"] == {"main": 3, "feature/x": 2}
    assert list(rising["branches"]) == ["main", "feature/x"] and rising["trend"] == "new"
    assert len(rising["per_day"]) == 7 and sum(rising["per_day"]) == 5
    text = coredump("top", "--since", "7d", "--db", recorded)
    assert "[expected]" in text and "SIGSEGV in parse_header" in text
    on = json.loads(coredump("top", "--since", "7d", "--branch", "feature/x", "--format", "json", "--db", recorded))
    assert [(s["fingerprint"], s["crashes"]) for s in on["signatures"]] == [("fp-rising", 2)]
    assert on["signatures"][0]["first_seen"] > NOW - 3.5 * DAY  # first seen on that branch
    longer = json.loads(coredump("top", "--since", "60d", "--limit", "1", "--format", "json", "--db", recorded))
    assert [s["fingerprint"] for s in longer["signatures"]] == ["fp-old"]


def test_history(recorded):
    h = json.loads(coredump("history", "fp-rising", "--format", "json", "--db", recorded))
    assert h["count"] == 5 and h["fingerprints"] == ["fp-rising"]
    assert [(f["branch"], f["commit"]) for f in h["first_on_branch"]] == [("main", "first-main"), ("feature/x", "r1")]
    assert [o["commit"] for o in h["occurrences"]] == ["first-main", "r1", "r2", "r3", "r4"]
    o = h["occurrences"][-1]
    assert o["job_url"].startswith("https://github.com/acme/server/actions/runs/") and o["location"].endswith("/r4")
    by_signature = json.loads(coredump("history", "SIGABRT in check_balance", "--limit", "3", "--format", "json",
                                       "--db", recorded))
    assert by_signature["count"] == 40 and [o["commit"] for o in by_signature["occurrences"]] == ["m3", "m2", "m1"]
    assert by_signature["first_on_branch"][0]["commit"] == "m40"
    text = coredump("history", "fp-rising", "--db", recorded)
    assert "main  commit first-main" in text and "feature/x  commit r1" in text


def test_read_commands_import_no_sqlalchemy(recorded):
    """top and history read through the driver's own connection (sqlite3, psycopg): the
    SQLAlchemy import alone cost more than top's query over 100,000 crashes (issue #19)."""
    for args in (("top", "--since", "30d"), ("history", "fp-rising")):
        r = subprocess.run([command()[0], "-X", "importtime", *command(*args, "--db", recorded)[1:]], env=ENV,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "SIGSEGV in parse_header" in r.stdout, r.stderr[-2000:]
        imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if "|" in line}
        assert "coredump.store.history.queries" in imported
        assert not {name for name in imported if name.split(".")[0] == "sqlalchemy"}
        assert "coredump.cli.store" not in imported  # the other command families stay unloaded
