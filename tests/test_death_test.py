"""A googletest death test's child judged after the fact (coredump/triage/death_test.py): in
``harvest``, by the step status a CI on_fail step passes (``--step-status``), and by a report
of ``--gtest_output`` written relative to the crashed process's own working directory (a step
that cd's, as ctest does). Real gtest binaries, real kernel cores, no report made up."""

from __future__ import annotations

import json
import os
import subprocess
from types import SimpleNamespace

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


def _by_test(summary):
    return {e["signature"].rsplit("Death_", 1)[1].split("_Test")[0]: e for e in summary["crashes"]}


def _judged(crashes):
    """The three death tests of gtest_death_wrong, judged by their report: the one whose child
    died as expected passes, the wrong signal and the wrong message fail."""
    assert sorted(crashes) == ["Passes", "WrongMessage", "WrongSignal"]
    assert "passed (results.xml)" in crashes["Passes"]["expected"]
    for name in ("WrongSignal", "WrongMessage"):
        assert crashes[name]["expected"] is None and f"its test Death.{name} failed" in crashes[name]["note"]


def test_a_report_relative_to_a_step_that_cds_is_read_where_the_process_ran(gtest_wrong_deaths, tmp_path):
    """A step that cd's (as ctest runs each test in its build directory): the report is
    written relative to the test program's working directory, not the wrapper's. core_pattern
    is relative here, so the kernel wrote the cores into that directory, which proves it."""
    from coredump.capture.core_pattern import read_core_pattern

    if read_core_pattern().is_pipe or read_core_pattern().is_absolute:
        pytest.skip("core_pattern is not relative: the cores do not say where the process ran")
    (tmp_path / "build" / "tests").mkdir(parents=True)
    step = f"cd build/tests && exec {gtest_wrong_deaths} --gtest_output=xml:results.xml"
    r = subprocess.run(command("run", "--", "sh", "-c", step), cwd=tmp_path, env=ENV, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 1 and (tmp_path / "build" / "tests" / "results.xml").is_file(), r.stderr
    crashes = _by_test(_summary(tmp_path))
    _judged(crashes)
    assert not any("found by searching" in (c["note"] or "") for c in crashes.values())


def test_where_the_core_does_not_prove_the_cwd_the_steps_tree_is_searched_and_the_note_says_so(
        gtest_wrong_deaths, tmp_path):
    """The cores moved away from where the kernel wrote them (a step that collects them in one
    place): the report is looked for under the step's tree, bounded, and the note says it was
    found by searching, not known."""
    tests = tmp_path / "build" / "tests"
    tests.mkdir(parents=True)
    # run keeps each child's core (core_pattern may give them all one name) and leaves them
    step = subprocess.run(command("run", "--keep-cores", "-o", str(tmp_path / "first"), "--",
                                  str(gtest_wrong_deaths), "--gtest_output=xml:results.xml"),
                          cwd=tests, env=ENV, capture_output=True, text=True, timeout=300)
    assert step.returncode == 1 and (tests / "results.xml").is_file(), step.stderr
    (tmp_path / "cores").mkdir()
    for core in [p for p in tests.iterdir() if p.name.startswith("core")]:
        core.rename(tmp_path / "cores" / core.name)
    r = _harvest(tmp_path, "--path", ".", "--step-status", "1")
    assert r.returncode == 0, r.stderr
    crashes = _by_test(_summary(tmp_path))
    _judged(crashes)
    passes = crashes["Passes"]["note"]
    assert f"taken from {tests / 'results.xml'}, found by searching {tmp_path}" in passes
    assert "working directory is not known" in passes


def test_the_search_for_a_report_is_bounded_and_stays_in_the_tree(tmp_path):
    """Symlinks are not followed (a link to / or a loop), a report deeper than MAX_DEPTH is not
    reached and the search says it was cut; a path with '..' is never searched for."""
    from coredump.triage import death_test
    from coredump.triage.gtest_report import MAX_DEPTH, find_in_tree

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "r.xml").write_text("<testsuites/>")
    (tmp_path / "loop").symlink_to(tmp_path)
    (tmp_path / "root").symlink_to("/")
    assert find_in_tree([str(tmp_path)], "r.xml") == ([str(tmp_path / "a" / "b" / "r.xml")], False)
    deep = tmp_path.joinpath(*["d"] * (MAX_DEPTH + 2))
    deep.mkdir(parents=True)
    (deep / "x.xml").write_text("<testsuites/>")
    assert find_in_tree([str(tmp_path)], "x.xml") == ([], True)
    process = SimpleNamespace(argv=["/t", "--gtest_output=xml:../b/r.xml"], executable="/t")
    crash = SimpleNamespace(death_test="a death test's child", process=process)
    assert death_test._find_verdicts(crash, "A_B_Test", None, {}, None, [str(tmp_path / "a" / "x")]) == ({}, [], [])


def test_looking_for_the_fast_child_flag_builds_no_symbol_table(make_core):
    """A crash that is no death test's child: every module is asked for the one flag by
    name, and none has its whole symbol table built for it (24 tables on a python core)."""
    from coredump.elf.core import open_core
    from coredump.symbols.finder import FileFinder, FinderOptions
    from coredump.target import Target
    from coredump.triage.death_test import find_death_test

    core = open_core(str(make_core("O0", "threads")))
    try:
        target = Target(core, FileFinder(FinderOptions(None, None, (), (), ())))
        assert sum(m.trusted for m in target.modules) >= 2
        assert find_death_test(target, ["./threads"]) is None
        assert [m.path for m in target.modules if "symtab" in vars(m)] == []
    finally:
        core.close()
