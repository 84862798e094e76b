"""A googletest death test's child judged after the fact (coredump/triage/death_test.py): in
``harvest``, by the step status a CI on_fail step passes (``--step-status``), and by a report
of ``--gtest_output`` written relative to the crashed process's own working directory (a step
that cd's, as ctest does). Real gtest binaries, real kernel cores, no report made up."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.cli import command
from tests.cores import ROOT, _raise_core_limit, core_skip_reason
from tests.test_expect import _build_gtest

ENV = {**{k: v for k, v in os.environ.items() if k not in ("GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS")},
       "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def gtest_program(tmp_path_factory):
    if core_skip_reason():
        pytest.skip(core_skip_reason())
    return _build_gtest(tmp_path_factory, "gtest_death")


@pytest.fixture(scope="module")
def gtest_wrong_deaths(tmp_path_factory):
    if core_skip_reason():
        pytest.skip(core_skip_reason())
    return _build_gtest(tmp_path_factory, "gtest_death_wrong")


def _step(cwd, *argv, env=None):
    """A CI step run without the wrapper: cores enabled as `ulimit -c unlimited` does."""
    return subprocess.run(list(map(str, argv)), cwd=cwd, preexec_fn=_raise_core_limit, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL, env=env)


def _harvest(cwd, *args):
    return subprocess.run(command("harvest", *args), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


def _summary(cwd):
    return json.loads((cwd / "coredump-artifacts" / "summary.json").read_text())


def test_harvest_takes_the_step_status_an_on_fail_step_passes(gtest_program, tmp_path):
    """A step of passing death tests leaves its children's cores; harvest told the step exited
    0 takes them as expected, told 1 says why not, told nothing says the status is unknown.
    Its own exit status stays 0 (it did its job) and summary.json records the step's."""
    step = _step(tmp_path, gtest_program)
    assert step.returncode == 0 and "[  PASSED  ] 2 tests." in step.stdout, step.stdout + step.stderr
    core = next(p for p in tmp_path.iterdir() if p.name.startswith("core"))
    for status, expected, note in (("0", "the step passed", None), ("1", None, "the step failed (exit status 1)"),
                                   ("", None, "the step's exit status is unknown")):
        out = tmp_path / f"out{status or 'none'}"
        r = _harvest(tmp_path, "--keep-cores", "-o", str(out), "--step-status", status)
        assert r.returncode == 0, r.stderr
        summary = json.loads((out / "summary.json").read_text())
        (entry,) = summary["crashes"]
        assert summary["exit_status"] == (int(status) if status else None)
        if expected:
            assert expected in entry["expected"] and "death test" in entry["expected"]
        else:
            assert entry["expected"] is None and note in entry["note"]
    assert core.exists()


@pytest.mark.parametrize("value", ["-1", "256", "failure", "1.0"])
def test_a_step_status_that_is_no_exit_status_is_a_usage_error(tmp_path, value):
    r = _harvest(tmp_path, "--step-status", value)
    assert r.returncode == 2 and "--step-status" in r.stderr and "not an exit status" in r.stderr, r.stderr
    assert not (tmp_path / "coredump-artifacts").exists()
