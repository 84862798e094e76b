"""CI metadata: summary.json's ``ci`` object from each provider's documented variables, shown on
index.html, and a job id from the CI's build number."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from coredump.store.ci_metadata import FIELDS, ci_job_id, ci_metadata
from tests.cli import command
from tests.cores import BUILD, ROOT
from tests.htmltree import parse_html

CIRCLE = {"CIRCLECI": "true", "CIRCLE_SHA1": "0123456789abcdef0123456789abcdef01234567", "CIRCLE_BRANCH": "main",
          "CIRCLE_JOB": "test", "CIRCLE_BUILD_NUM": "1234", "CIRCLE_PROJECT_USERNAME": "acme",
          "CIRCLE_PROJECT_REPONAME": "app", "CIRCLE_BUILD_URL": "https://circleci.com/gh/acme/app/1234",
          "CIRCLE_WORKFLOW_ID": "6c2d3f1e-0000-4000-8000-000000000001"}
GITHUB = {"GITHUB_ACTIONS": "true", "GITHUB_SHA": "feedface" * 5, "GITHUB_REF": "refs/pull/42/merge",
          "GITHUB_REF_NAME": "42/merge", "GITHUB_REF_TYPE": "branch", "GITHUB_HEAD_REF": "fix-crash",
          "GITHUB_REPOSITORY": "acme/app", "GITHUB_RUN_ID": "987", "GITHUB_RUN_ATTEMPT": "2", "GITHUB_JOB": "test",
          "GITHUB_SERVER_URL": "https://github.com"}
GITLAB = {"GITLAB_CI": "true", "CI_COMMIT_SHA": "abc" * 13 + "a", "CI_COMMIT_BRANCH": "main", "CI_JOB_NAME": "test",
          "CI_JOB_ID": "5678", "CI_JOB_URL": "https://gitlab.com/acme/app/-/jobs/5678",
          "CI_PIPELINE_URL": "https://gitlab.com/acme/app/-/pipelines/91", "CI_PROJECT_PATH": "acme/app"}


def test_circleci():
    meta = ci_metadata(CIRCLE)
    assert set(meta) == set(FIELDS)
    assert (meta["provider"], meta["repository"], meta["branch"], meta["build_number"]) == \
        ("circleci", "acme/app", "main", "1234")
    assert meta["job_url"] == CIRCLE["CIRCLE_BUILD_URL"]
    assert meta["pipeline_url"] == "https://app.circleci.com/pipelines/workflows/6c2d3f1e-0000-4000-8000-000000000001"
    assert ci_job_id(meta) == "circleci-1234"


def test_github_pull_request():
    meta = ci_metadata(GITHUB)
    assert meta["branch"] == "fix-crash"  # the PR's head, not "42/merge"
    assert meta["pull_request"] == "https://github.com/acme/app/pull/42"
    assert meta["pipeline_url"] == "https://github.com/acme/app/actions/runs/987"
    assert meta["job_url"] == "https://github.com/acme/app/actions/runs/987/attempts/2"
    assert ci_job_id(meta) == "github-987-2-test"


def test_gitlab():
    meta = ci_metadata(GITLAB)
    assert (meta["provider"], meta["job_url"], meta["pipeline_url"]) == \
        ("gitlab", GITLAB["CI_JOB_URL"], GITLAB["CI_PIPELINE_URL"])
    assert ci_job_id(meta) == "gitlab-5678"


def test_outside_ci_there_is_none():
    assert ci_metadata({"PATH": "/bin", "CI": "true"}) is None and ci_job_id(None) is None


def test_hostile_values_are_cleaned_and_bounded():
    meta = ci_metadata(dict(CIRCLE, CIRCLE_BUILD_URL="javascript:alert(1)", CIRCLE_BRANCH="ma\x1b[31min\n::error::x",
                            CIRCLE_JOB="j" * 10_000, CIRCLE_BUILD_NUM="../../12 34"))
    assert meta["job_url"] is None
    assert "\x1b" not in meta["branch"] and "\n" not in meta["branch"]
    assert len(meta["job"]) <= 512
    assert ci_job_id(meta) == "circleci-12-34"  # no path separator reaches an S3 key


def test_run_records_and_shows_the_ci_job(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "GITLAB_CI")}
    env.update(CIRCLE, PYTHONPATH=str(ROOT))
    r = subprocess.run(command("run", "--", str(BUILD / "O0" / "segv")), cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 128 + signal.SIGSEGV or not (tmp_path / "coredump-artifacts").exists():
        pytest.skip(f"no core was captured here: {r.stderr[-300:]}")
    summary = json.loads((tmp_path / "coredump-artifacts" / "summary.json").read_text())
    assert summary["ci"]["commit"] == CIRCLE["CIRCLE_SHA1"] and summary["ci"]["job"] == "test"
    page = parse_html((tmp_path / "coredump-artifacts" / "index.html").read_text())
    hrefs = [a.attrs.get("href") for a in page.iter("a")]
    assert CIRCLE["CIRCLE_BUILD_URL"] in hrefs
    codes = [c for c in page.iter("code") if c.attrs.get("title") == CIRCLE["CIRCLE_SHA1"]]
    assert len(codes) == 1


def test_s3_job_ids_use_the_ci_build_number():
    from coredump.store.s3 import default_job_id

    summary = {"started": "2024-05-01T10:34:56Z", "host": "3f2a9c0d1e4b", "ci": ci_metadata(CIRCLE)}
    job = default_job_id(summary)
    assert job.startswith("20240501T103456Z-circleci-1234-") and "3f2a9c0d1e4b" not in job
    assert default_job_id(summary) != job  # two uploads of one job still get two ids
    hostile = dict(summary, ci=dict(summary["ci"], build_number="../../x y", provider="circleci"))
    assert "/" not in default_job_id(hostile) and ".." not in default_job_id(hostile)
