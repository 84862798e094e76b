"""Expected crashes: a passing googletest death test, --expect rules and .coredump-expect.
They are explained and stored, marked expected, and give no JUnit failure, no annotation and
no new crash for `coredump diff`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import xml.etree.ElementTree as ET

import pytest

from coredump.triage.expect import ExpectRules, load_expect_rules
from tests.cli import command
from tests.cores import BUILD, ROOT, SAMPLES, core_skip_reason

ENV = {**{k: v for k, v in os.environ.items() if k not in ("GITHUB_STEP_SUMMARY",)},
       "PYTHONPATH": str(ROOT), "GITHUB_ACTIONS": "true"}


def run(cwd, *args):
    return subprocess.run(command("run", *args), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


@pytest.fixture
def cores_here():
    reason = core_skip_reason()
    if reason:
        pytest.skip(reason)


def _build_gtest(tmp_path_factory, name: str):
    if not shutil.which("g++") or not os.path.exists("/usr/include/gtest/gtest.h"):
        pytest.skip("googletest is not installed (Debian: libgtest-dev): the death-test sample needs it")
    exe = tmp_path_factory.mktemp("gtest") / name
    subprocess.run(["g++", "-O0", "-g", "-o", str(exe), str(SAMPLES / f"{name}.cpp"), "-lgtest", "-pthread"],
                   check=True, timeout=300)
    return exe


@pytest.fixture(scope="module")
def gtest_program(tmp_path_factory):
    return _build_gtest(tmp_path_factory, "gtest_death")


@pytest.fixture(scope="module")
def gtest_wrong_deaths(tmp_path_factory):
    return _build_gtest(tmp_path_factory, "gtest_death_wrong")


def _summary(cwd):
    return json.loads((cwd / "coredump-artifacts" / "summary.json").read_text())


def test_a_passing_death_test_is_expected(cores_here, gtest_program, tmp_path):
    r = run(tmp_path, "--", str(gtest_program))
    assert r.returncode == 0 and "[  PASSED  ] 2 tests." in r.stdout, r.stdout + r.stderr
    (entry,) = _summary(tmp_path)["crashes"]
    assert entry["stored"] and "death test" in entry["expected"]
    # the framework's frames are left out of the signature, as glibc's are
    assert entry["signature"] == "SIGSEGV in store_through < Parser_RejectsNull_Test::TestBody"
    assert "::error" not in r.stderr  # no annotation on the pull request
    assert "expected: a googletest death test's child" in r.stderr
    suite = ET.parse(tmp_path / "coredump-artifacts" / "junit.xml").getroot().find("testsuite")
    assert suite.get("failures") == "0" and suite.find("testcase/failure") is None
    props = {p.get("name"): p.get("value") for p in suite.findall("testcase/properties/property")}
    assert "death test" in props["expected"]
    assert "expected" in (tmp_path / "coredump-artifacts" / "index.html").read_text()


def _by_test(cwd):
    """summary.json's crashes by the googletest test whose child crashed."""
    return {e["signature"].rsplit("Death_", 1)[1].split("_Test")[0]: e for e in _summary(cwd)["crashes"]}


@pytest.mark.parametrize("report", ["xml", "json"])
def test_a_death_test_whose_child_died_the_wrong_way_is_not_expected(cores_here, gtest_wrong_deaths, tmp_path,
                                                                      report):
    """Three death tests' children crash; googletest's parent fails the one killed by the
    wrong signal and the one whose message does not match. Its report (XML named by the
    flag, or JSON in a directory named by $GTEST_OUTPUT) tells them apart."""
    if report == "xml":
        r = run(tmp_path, "--", str(gtest_wrong_deaths), "--gtest_output=xml:results.xml")
    else:
        r = subprocess.run(command("run", "--", str(gtest_wrong_deaths)), cwd=tmp_path, capture_output=True,
                           text=True, timeout=300, env={**ENV, "GTEST_OUTPUT": "json:reports/"})
        assert (tmp_path / "reports" / "gtest_death_wrong.json").is_file()
    assert r.returncode == 1 and "[  FAILED  ] 2 tests" in r.stdout, r.stdout + r.stderr
    crashes = _by_test(tmp_path)
    assert sorted(crashes) == ["Passes", "WrongMessage", "WrongSignal"]
    if report == "xml":  # argv as execve copied it: InitGoogleTest took the flag out of argv[] itself
        crash = json.loads((tmp_path / "coredump-artifacts" / crashes["Passes"]["crash_json"]).read_text())
        assert crash["process"]["argv"] == [str(gtest_wrong_deaths), "--gtest_output=xml:results.xml"]
    assert "passed" in crashes["Passes"]["expected"]
    for name, why in (("WrongSignal", "died but not with expected exit code"),
                      ("WrongMessage", "died but not with expected error")):
        assert crashes[name]["expected"] is None
        assert f"its test Death.{name} failed" in crashes[name]["note"] and why in crashes[name]["note"]
    suite = ET.parse(tmp_path / "coredump-artifacts" / "junit.xml").getroot().find("testsuite")
    assert suite.get("failures") == "2"
    assert r.stderr.count("::error") == 2  # the two wrong deaths are annotated, the passing one is not


def test_a_death_test_of_a_failed_step_without_a_report_is_not_expected(cores_here, gtest_wrong_deaths, tmp_path):
    r = run(tmp_path, "--", str(gtest_wrong_deaths))
    assert r.returncode == 1
    crashes = _by_test(tmp_path)
    assert len(crashes) == 3 and all(c["expected"] is None for c in crashes.values())
    assert all("the step failed (exit status 1) and no googletest report" in c["note"] for c in crashes.values())


def test_expect_rules_from_the_option_and_the_file(cores_here, tmp_path):
    steps = [f"(mkdir a && cd a && exec {BUILD / 'O0' / 'segv'})", f"(mkdir b && cd b && exec {BUILD / 'O0' / 'fpe'})"]
    r = run(tmp_path, "--expect", "SIGSEGV in store_value < *", "--", "sh", "-c", " ; ".join(steps))
    assert r.returncode == 128 + signal.SIGFPE
    by_signal = {c["signal"]: c for c in _summary(tmp_path)["crashes"]}
    assert "--expect" in by_signal["SIGSEGV"]["expected"] and by_signal["SIGFPE"]["expected"] is None
    errors = [line for line in r.stderr.splitlines() if line.startswith("::error")]
    assert len(errors) == 1 and "SIGFPE" in errors[0]
    suite = ET.parse(tmp_path / "coredump-artifacts" / "junit.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    assert "(1 expected)" in r.stderr.splitlines()[-1]

    # the same by fingerprint, from .coredump-expect; then diff gates on the FPE only
    again = tmp_path / "again"
    again.mkdir()
    (again / ".coredump-expect").write_text(f"# the FPE is known\n{by_signal['SIGFPE']['fingerprint']}\n")
    r = run(again, "--", "sh", "-c", " ; ".join(steps))
    by_signal = {c["signal"]: c for c in _summary(again)["crashes"]}
    assert "fingerprint" in by_signal["SIGFPE"]["expected"] and by_signal["SIGSEGV"]["expected"] is None
    empty = tmp_path / "green"
    d = subprocess.run(command("diff", str(empty), str(again / "coredump-artifacts"), "--format", "json"),
                       env=ENV, capture_output=True, text=True, timeout=60)
    assert d.returncode == 1
    assert [e["signature"] for e in json.loads(d.stdout)["new"]] == [by_signal["SIGSEGV"]["signature"]]


def test_rules_unit(tmp_path):
    (tmp_path / ".coredump-expect").write_text("# comment\n\nSIGABRT in parse_*\n0123456789abcdef\n")
    rules = load_expect_rules(["SIGILL in *"], str(tmp_path))
    assert rules.match("SIGABRT in parse_args < main", "ffff") .startswith("matches 'SIGABRT in parse_*'")
    assert rules.match("SIGSEGV in f", "0123456789abcdef").startswith("fingerprint 0123456789abcdef")
    assert rules.match("SIGILL in g", None).endswith("(--expect)")
    assert rules.match("SIGSEGV in f", "aaaa") is None
    assert ExpectRules().match("SIGSEGV in f", None, death_test="a death test") == "a death test"
    assert ExpectRules(death_tests=False).match("SIGSEGV in f", None, death_test="a death test") is None


def test_an_unknown_run_option_is_a_usage_error(tmp_path):
    r = subprocess.run(command("run", "--bogus", "--", "true"), cwd=tmp_path, env=ENV, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "No such option '--bogus'" in r.stderr


def test_diff_of_two_missing_paths_cannot_compare(tmp_path):
    r = subprocess.run(command("diff", str(tmp_path / "a"), str(tmp_path / "b")), env=ENV, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("Error: ") and "nothing to compare" in r.stderr


def test_run_upload_is_checked_before_the_step_runs(tmp_path):
    """A malformed URL, or no boto3 (an interpreter without site-packages: python -S), is an
    Error before the step: the step does not run for nothing."""
    import sys

    marker = tmp_path / "ran"
    r = subprocess.run(command("run", "--upload", "http://not-s3", "--", "touch", str(marker)), cwd=tmp_path,
                       env=ENV, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Error: --upload http://not-s3" in r.stderr and not marker.exists()
    entry = "from coredump.cli.entry import main; main()"
    argv = [sys.executable, "-S", "-c", entry, "run", "--upload", "s3://crash-bucket/ci", "--", "touch", str(marker)]
    r = subprocess.run(argv, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "pip install 'coredump[s3]'" in r.stderr, r.stderr
    assert not marker.exists()


def test_gtest_reports_are_read_as_untrusted_files(tmp_path):
    """Only a regular file no older than the step; a symlink, a stale or a malformed report
    gives no verdict. Parameterized and typed tests map to their test class."""
    from coredump.triage.gtest_report import read_verdicts, report_paths

    xml = ('<testsuites><testsuite name="Inst/Param"><testcase name="Dies/0" classname="Inst/Param"/></testsuite>'
           '<testsuite name="Typed/1"><testcase name="Dies" classname="Typed/1"><failure message="f.cc:3&#x0A;'
           '    Result: died but not with expected error."/></testcase></testsuite></testsuites>')
    (tmp_path / "r.xml").write_text(xml)
    verdicts, read = read_verdicts([("xml", str(tmp_path / "r.xml"))])
    assert verdicts == {"Param_Dies_Test": [("Inst/Param.Dies/0", None)],
                        "Typed_Dies_Test": [("Typed/1.Dies", "Result: died but not with expected error.")]}
    (tmp_path / "link.xml").symlink_to(tmp_path / "r.xml")
    (tmp_path / "bad.xml").write_text("<testsuites><testcase")
    assert read_verdicts([("xml", str(tmp_path / "link.xml")), ("xml", str(tmp_path / "bad.xml"))]) == ({}, [])
    os.utime(tmp_path / "r.xml", (1000, 1000))
    assert read_verdicts([("xml", str(tmp_path / "r.xml"))], since=2000) == ({}, [])
    env = {"GTEST_OUTPUT": "json:out/"}
    assert report_paths(["/b/t", "--gtest_output=xml"], "/b/t", env, "/w") == [("xml", "/w/test_detail.xml")]
    assert report_paths(["/b/t"], "/b/t", env, "/w") == [("json", "/w/out/t.json")]
    assert report_paths(["/b/t"], "/b/t", {"XML_OUTPUT_FILE": "/r/x.xml"}, "/w") == [("xml", "/r/x.xml")]
