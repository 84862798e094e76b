"""
Crash databases for the history tests
=====================================

``pg_server`` starts a PostgreSQL cluster of its own for the session (Debian's
``postgresql``: initdb and pg_ctl in a temporary directory, listening only on a unix socket
there), as an unprivileged user when the tests run as root (initdb refuses root), and skips
with the reason when none can be started. ``db_url`` runs a test on a fresh SQLite file and
on a fresh PostgreSQL database. ``write_job`` lays out one job's artifact directory as
``run`` does, with the CI metadata a test needs.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Optional, Sequence

import pytest

__all__ = ("pg_server", "db_url", "pg_url", "write_job", "iso", "PG_USER")

PG_USER = "postgres"


def _pg_bin() -> Optional[str]:
    found = shutil.which("pg_ctl")
    if found:
        return os.path.dirname(os.path.realpath(found))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(versions[-1]) if versions else None


def _as_user(argv, user: Optional[str]):
    return (["runuser", "-u", user, "--"] + argv) if user else argv


def _start_cluster(root: str):
    bindir = _pg_bin()
    if bindir is None:
        return None, "PostgreSQL is not installed (apt-get install postgresql)"
    user = None
    if os.geteuid() == 0:  # initdb: "cannot be run as root"
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            return None, f"running as root and there is no {PG_USER} user to run PostgreSQL as"
        user = PG_USER
        shutil.chown(root, user)
    data = os.path.join(root, "data")
    init = subprocess.run(_as_user([f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", PG_USER, "-E", "UTF8"],
                                   user), capture_output=True, text=True, timeout=120)
    if init.returncode:
        return None, f"initdb failed: {init.stderr.strip()[-300:]}"
    start = subprocess.run(_as_user([f"{bindir}/pg_ctl", "-D", data, "-w", "-t", "60", "-l", f"{root}/log", "-o",
                                     f"-k {root} -c listen_addresses='' -c fsync=off -c max_connections=60", "start"],
                                    user), capture_output=True, text=True, timeout=120)
    if start.returncode:
        return None, f"pg_ctl start failed: {start.stderr.strip()[-300:]}"
    return (bindir, data, user), None


@pytest.fixture(scope="session")
def pg_server():
    """The unix-socket directory of a running PostgreSQL server, stopped at the end."""
    pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed (pip install -e '.[test]')")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[test]')")
    root = tempfile.mkdtemp(prefix="coredump-pg-")
    cluster, why = _start_cluster(root)
    if cluster is None:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(why)
    bindir, data, user = cluster
    try:
        yield root
    finally:
        subprocess.run(_as_user([f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], user),
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server):
    """A new, empty database on the session's server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(host=pg_server, user=PG_USER, dbname="postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql://{PG_USER}@/{name}?host={pg_server}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh crash database: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed (pip install -e '.[test]')")
        return f"sqlite:///{tmp_path / 'history.db'}"
    return request.getfixturevalue("pg_url")


def iso(seconds: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def write_job(root, started: float, crashes: Sequence[dict], branch: Optional[str] = "main",
              commit: str = "c0ffee", build: Optional[str] = None, repository: str = "acme/server",
              summary: Optional[dict] = None) -> Path:
    """An artifact directory: summary.json with a GitHub ``ci`` object and each crash's
    crash.json. A crash is ``{"id", "signature", "fingerprint"}`` and optionally
    ``expected``, ``classification``, ``reason``, ``build_id``."""
    root = Path(root)
    root.mkdir(parents=True)
    build = build or uuid.uuid4().hex[:10]
    entries = []
    for c in crashes:
        (root / c["id"]).mkdir()
        crash = {"schema": "coredump.crash/1", "signature": c["signature"], "fingerprint": c["fingerprint"],
                 "classification": c.get("classification", "null-deref"), "reason": c.get("reason"),
                 "process": {"executable": "/ci/build/server"},
                 "modules": [{"path": "/ci/build/server", "build_id": c.get("build_id", "9f3c01")},
                             {"path": "/lib/libc.so.6", "build_id": "abcdef12"}]}
        (root / c["id"] / "crash.json").write_text(json.dumps(crash))
        (root / c["id"] / "report.html").write_text("<!DOCTYPE html><title>r</title>")
        entries.append({"id": c["id"], "signature": c["signature"], "fingerprint": c["fingerprint"],
                        "signal": "SIGSEGV", "executable": "/ci/build/server", "crash_json": f"{c['id']}/crash.json",
                        "report_html": f"{c['id']}/report.html", "core": f"{c['id']}/core.zst",
                        "expected": c.get("expected")})
    ci = {"provider": "github", "repository": repository, "commit": commit, "branch": branch, "tag": None,
          "pull_request": None, "job": "test", "build_number": build,
          "job_url": f"https://github.com/{repository}/actions/runs/{build}", "pipeline_url": None}
    doc = summary or {"schema": "coredump.summary/1", "command": ["make", "test"], "exit_status": 2,
                      "host": "runner-1", "started": iso(started), "finished": iso(started + 60), "ci": ci,
                      "crashes": entries}
    (root / "summary.json").write_text(json.dumps(doc))
    return root
