"""`run` and `harvest` record real kernel cores' crashes when a database is set; an
unreachable one costs one warning and nothing else; the success path never loads the
database library."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

pytest.register_assert_rewrite("tests.historydb")
pytest_plugins = ("tests.historydb",)  # pg_server, pg_url

from tests.cli import command  # noqa: E402
from tests.cores import ROOT  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
ENV.pop("COREDUMP_DB", None)


def coredump(cwd, *args, env=None):
    return subprocess.run(command(*args), cwd=cwd, env={**ENV, **(env or {})}, capture_output=True, text=True,
                          timeout=180)


def test_run_records_a_real_crash_then_top_and_history_show_it(samples, tmp_path):  # noqa: F811
    url = f"sqlite:///{tmp_path / 'h.db'}"
    r = coredump(tmp_path, "run", "--db", url, "--", str(samples / "segv"))
    assert r.returncode == 128 + signal.SIGSEGV
    assert "coredump: crash history: 1 crash recorded" in r.stderr
    (crash,) = json.loads((tmp_path / "coredump-artifacts" / "summary.json").read_text())["crashes"]
    top = coredump(tmp_path, "top", "--since", "1h", "--format", "json", "--db", url)
    (row,) = json.loads(top.stdout)["signatures"]
    assert (row["signature"], row["fingerprint"], row["crashes"]) == (crash["signature"], crash["fingerprint"], 1)
    assert row["trend"] == "new"
    text = coredump(tmp_path, "top", "--since", "1h", "--db", url).stdout
    assert crash["signature"] in text and crash["fingerprint"] in text
    h = json.loads(coredump(tmp_path, "history", crash["signature"], "--format", "json", "--db", url).stdout)
    (o,) = h["occurrences"]
    assert o["location"] == str(tmp_path / "coredump-artifacts") and o["crash_id"] == crash["id"]
    assert o["report"] == crash["report_html"] and o["classification"] is not None
    assert o["build_ids"] and o["executable"] == str(samples / "segv")


def test_unreachable_database_is_one_warning_and_record_fills_the_gap(samples, tmp_path):  # noqa: F811
    env = {"COREDUMP_DB": "postgresql://ci:hunter2@127.0.0.1:9/crashes"}
    r = coredump(tmp_path, "run", "--", str(samples / "segv"), env=env)
    assert r.returncode == 128 + signal.SIGSEGV
    warnings = [line for line in r.stderr.splitlines() if "crash history" in line]
    assert len(warnings) == 1 and warnings[0].startswith("coredump: warning: crash history not recorded")
    assert "hunter2" not in r.stderr and "coredump record coredump-artifacts" in warnings[0]
    (crash,) = json.loads((tmp_path / "coredump-artifacts" / "summary.json").read_text())["crashes"]
    assert crash["stored"] and (tmp_path / "coredump-artifacts" / crash["core"]).is_file()
    url = f"sqlite:///{tmp_path / 'h.db'}"
    later = coredump(tmp_path, "record", "coredump-artifacts", "--db", url)
    assert later.returncode == 0 and "1 new crash)" in later.stdout


def test_harvest_records_into_postgresql(samples, tmp_path, pg_url):  # noqa: F811
    url = pg_url
    (tmp_path / "step").mkdir()
    crashed = subprocess.run(["sh", "-c", f"ulimit -c unlimited; exec {samples / 'abort_assert'}"],
                             cwd=tmp_path / "step", capture_output=True)
    assert crashed.returncode != 0
    r = coredump(tmp_path, "harvest", "--path", "step", "--db", url)
    assert r.returncode == 0, r.stderr
    assert "crash history: 1 crash recorded" in r.stderr
    top = json.loads(coredump(tmp_path, "top", "--format", "json", "--db", url).stdout)
    assert [s["crashes"] for s in top["signatures"]] == [1] and "SIGABRT" in top["signatures"][0]["signature"]


def test_success_path_imports_no_database_library(tmp_path):
    true = shutil.which("true")
    env = {**ENV, "COREDUMP_DB": f"sqlite:///{tmp_path / 'h.db'}"}
    r = subprocess.run([sys.executable, "-X", "importtime", *command("run", "--", true)[1:]], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "coredump.capture.run" in imported
    assert not {m for m in imported if m.split(".")[0] in ("sqlalchemy", "psycopg", "coredump")
                and ("history" in m or m.split(".")[0] != "coredump")}
    assert not (tmp_path / "h.db").exists()
