"""Git-tracked core fixtures are files of the checkout, never harvested or removed."""

import os
import shutil
import subprocess

import pytest

from coredump.capture.tracked import find_tracked
from tests.cli import command
from tests.cores import ROOT

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture
def git_repo(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo,
                       check=True, capture_output=True, timeout=60)
    git("init", "-q")
    return repo, git


def test_harvest_without_since_leaves_a_committed_core_fixture(git_repo, make_core):
    repo, git = git_repo
    fixture = repo / "tests" / "data" / "core.fixture"
    fixture.parent.mkdir(parents=True)
    fixture.write_bytes(make_core("O0", "segv").read_bytes())
    git("add", "tests/data/core.fixture")
    git("commit", "-qm", "a core fixture")
    fresh = repo / "build" / "core"
    fresh.parent.mkdir()
    fresh.write_bytes(make_core("O0", "fpe").read_bytes())  # untracked: a crash of the job
    r = subprocess.run(command("harvest"), cwd=repo, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert fixture.exists() and f"{fixture}: tracked by git" in r.stderr
    summary = (repo / "coredump-artifacts" / "summary.json").read_text()
    assert "core.fixture" not in summary and '"SIGFPE"' in summary
    assert not fresh.exists()


def test_find_tracked_outside_a_repository_and_without_git(tmp_path, monkeypatch):
    core = tmp_path / "core"
    core.write_bytes(b"")
    assert find_tracked([str(core)]) == (set(), {})
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no git on PATH: nothing known tracked
    assert find_tracked([str(core)]) == (set(), {})
