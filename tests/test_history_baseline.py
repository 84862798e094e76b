"""`coredump diff --baseline db[:BRANCH] NEW`: new means never seen on that branch; the
same exit codes as `diff` (1 new, 0 none, 2 no comparison)."""

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
OLD_MAIN = {"id": "c1", "signature": "SIGSEGV in parse_header", "fingerprint": "fp-main"}
PR_ONLY = {"id": "c2", "signature": "SIGABRT in check_balance", "fingerprint": "fp-pr"}
FRESH = {"id": "c3", "signature": "SIGBUS in map_file", "fingerprint": "fp-fresh"}


def coredump(*args, env=None):
    return subprocess.run(command(*args), env={**ENV, **(env or {})}, capture_output=True, text=True, timeout=120)


@pytest.fixture
def history(db_url, tmp_path):
    """A month-old main job with fp-main; a pull request's job last week with fp-pr."""
    write_job(tmp_path / "jobs" / "main-old", NOW - 31 * DAY, [OLD_MAIN], branch="main", commit="m1")
    write_job(tmp_path / "jobs" / "pr-old", NOW - 6 * DAY, [PR_ONLY], branch="feature/pay", commit="p1")
    assert coredump("record", "--db", db_url, str(tmp_path / "jobs")).returncode == 0
    return db_url


def test_seen_on_main_a_month_ago_is_not_new_seen_only_elsewhere_is(history, tmp_path):
    new = write_job(tmp_path / "new", NOW, [OLD_MAIN, PR_ONLY, FRESH], branch="feature/pay", commit="p2")
    r = coredump("diff", "--baseline", "db", str(new), "--db", history, "--format", "json")
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert sorted(e["fingerprint"] for e in out["new"]) == ["fp-fresh", "fp-pr"]
    assert [e["fingerprint"] for e in out["still"]] == ["fp-main"]
    assert out["baseline"]["branch"] == "main"
    # against the pull request's own branch, what it had last week is not new either
    r = coredump("diff", "--baseline", "db:feature/pay", str(new), "--db", history, "--format", "json")
    assert r.returncode == 1
    assert sorted(e["fingerprint"] for e in json.loads(r.stdout)["new"]) == ["fp-fresh", "fp-main"]


def test_only_old_crashes_pass_the_gate_even_once_new_is_recorded(history, tmp_path):
    new = write_job(tmp_path / "new", NOW, [OLD_MAIN], branch="feature/pay")
    assert coredump("record", "--db", history, str(new)).returncode == 0  # as `run --db` would have
    r = coredump("diff", "--baseline", "db", str(new), "--db", history)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("new crashes: 0, gone: 0, still present: 1")
    # NEW's own job is no baseline of itself: on its branch, fp-main was never seen before
    r = coredump("diff", "--baseline", "db:feature/pay", str(new), "--db", history)
    assert r.returncode == 1 and "NEW    fp-main" in r.stdout


def test_expected_crashes_are_never_new(history, tmp_path):
    new = write_job(tmp_path / "new", NOW, [dict(FRESH, expected="death test")], branch="x")
    r = coredump("diff", "--baseline", "db", str(new), "--db", history)
    assert r.returncode == 0 and r.stdout.startswith("new crashes: 0")


def test_default_branch_from_the_ci(history, tmp_path):
    new = write_job(tmp_path / "new", NOW, [PR_ONLY], branch="topic")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"repository": {"default_branch": "feature/pay"}}))
    for env in ({"CI_DEFAULT_BRANCH": "feature/pay"}, {"GITHUB_EVENT_PATH": str(event)}):
        r = coredump("diff", "--baseline", "db", str(new), "--db", history, env=env)
        assert r.returncode == 0, (env, r.stdout)
    r = coredump("diff", "--baseline", "db", str(new), "--db", history)
    assert r.returncode == 1


def test_no_comparison_is_exit_2(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    new = write_job(tmp_path / "new", NOW, [FRESH])
    for args in (("--baseline", "db", str(new), "--db", "postgresql://ci@127.0.0.1:9/x"),
                 ("--baseline", "dbx", str(new), "--db", url),
                 ("--baseline", "db", str(tmp_path / "empty-dir"), "--db", url)):
        (tmp_path / "empty-dir").mkdir(exist_ok=True)
        r = coredump("diff", *args)
        assert r.returncode == 2 and r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, r.stderr
    r = coredump("diff", "--baseline", "db", str(tmp_path / "absent"), "--db", url)
    assert r.returncode == 0 and "does not exist" in r.stdout  # a green job writes no artifacts
