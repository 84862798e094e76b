import os
import resource
import subprocess

import pytest

from coredump.capture.core_pattern import parse_core_pattern
from coredump.capture.doctor import PROBLEM, WARN, cores_capturable, diagnose, render_checks
from tests.cli import command
from tests.cores import ROOT

INF = resource.RLIM_INFINITY


def levels(checks):
    return {c.name: c.level for c in checks}


def test_good_setup(tmp_path):
    checks = diagnose(parse_core_pattern("core.%p"), (0, INF), str(tmp_path), str(tmp_path / "out"), None)
    assert cores_capturable(checks)
    text = render_checks(checks)
    assert "soft 0 bytes, hard unlimited" in text and "raises the soft limit" in text
    assert text.endswith("=> cores will be captured\n")


def test_hard_limit_zero(tmp_path):
    checks = diagnose(parse_core_pattern("core"), (0, 0), str(tmp_path), str(tmp_path / "out"), None)
    assert levels(checks)["rlimit"] == PROBLEM and not cores_capturable(checks)
    assert "ulimit -Hc unlimited" in render_checks(checks)


def test_low_hard_limit_is_a_warning(tmp_path):
    checks = diagnose(parse_core_pattern("core"), (0, 1 << 20), str(tmp_path), str(tmp_path / "o"), None)
    assert levels(checks)["rlimit"] == WARN and cores_capturable(checks)


@pytest.mark.parametrize("raw", [
    "|/usr/share/apport/apport -p%p -s%s -c%c -d%d -P%P -u%u -g%g -- %E",
    "|/usr/bin/custom-handler %p",
    "",
])
def test_patterns_that_lose_cores(tmp_path, raw):
    checks = diagnose(parse_core_pattern(raw), (INF, INF), str(tmp_path), str(tmp_path / "o"), None)
    assert levels(checks)["core_pattern"] == PROBLEM
    assert "sysctl -w kernel.core_pattern=core" in render_checks(checks)


def test_container_fix_names_the_host(tmp_path):
    checks = diagnose(parse_core_pattern("|/usr/bin/handler"), (INF, INF), str(tmp_path), str(tmp_path / "o"),
                      "docker")
    text = render_checks(checks)
    assert "in a container (docker)" in text and "on the host" in text


def test_missing_core_directory(tmp_path):
    pattern = parse_core_pattern(f"{tmp_path}/cores/core.%e.%p")
    checks = diagnose(pattern, (INF, INF), str(tmp_path), str(tmp_path / "o"), None)
    assert levels(checks)["directory"] == PROBLEM and "mkdir -p" in render_checks(checks)
    (tmp_path / "cores").mkdir()
    checks = diagnose(pattern, (INF, INF), str(tmp_path), str(tmp_path / "o"), None)
    assert levels(checks)["directory"] == "ok"


def test_unwritable_output(tmp_path):
    (tmp_path / "file").write_text("")
    out = str(tmp_path / "file" / "o")
    checks = diagnose(parse_core_pattern("core"), (INF, INF), str(tmp_path), out, None)
    assert levels(checks)["output"] == PROBLEM


def test_cli_on_this_machine(tmp_path):
    r = subprocess.run(command("doctor"), cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True, timeout=60)
    assert "core_pattern is" in r.stdout and "RLIMIT_CORE" in r.stdout
    assert (r.returncode == 0) == r.stdout.splitlines()[-1].startswith("=> cores will be captured")


@pytest.mark.parametrize("raw,uses_pid,level", [("core", False, WARN), ("core", True, None),
                                                  ("core.%p.%E", False, None)])
def test_same_name_for_every_crash_is_a_warning(tmp_path, raw, uses_pid, level):
    checks = diagnose(parse_core_pattern(raw, uses_pid), (0, INF), str(tmp_path), str(tmp_path / "o"), None)
    assert cores_capturable(checks)
    assert (levels(checks)["core_pattern"] == WARN) == (level == WARN)
    assert ("overwrites the first one's core" in render_checks(checks)) == (level == WARN)


def test_plain_core_says_a_second_crash_overwrites_and_what_run_does(tmp_path):
    """The kernel's default (core, core_uses_pid=0): cores are captured, but the verdict
    itself says that a second crash overwrites the first unless `run` watches."""
    checks = diagnose(parse_core_pattern("core"), (INF, INF), str(tmp_path), str(tmp_path / "o"), None)
    text = render_checks(checks)
    verdict = text.splitlines()[-1]
    assert verdict.startswith("=> cores will be captured; but a second crash in one directory overwrites")
    assert "`coredump run` is watching" in verdict and "NAME.PID" in verdict
    assert "`coredump run` keeps each" in text and "kernel.core_pattern=core.%p" in text
