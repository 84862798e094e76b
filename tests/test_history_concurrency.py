"""Many CI jobs recording at once: 8 real processes × 100 jobs each, on SQLite (WAL, busy
timeout, the write lock taken at BEGIN) and on PostgreSQL, starting on a database nobody
created yet, lose and duplicate nothing."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

pytest.register_assert_rewrite("tests.historydb")
pytest_plugins = ("tests.historydb",)  # pg_server, db_url

from tests.cli import command  # noqa: E402
from tests.cores import ROOT  # noqa: E402
from tests.historydb import write_job  # noqa: E402

WRITERS, JOBS, OVERLAP = 8, 100, 10


def _count(url, query):
    from sqlalchemy import create_engine, text

    from coredump.store.history.url import driver_url

    engine = create_engine(driver_url(url))
    with engine.connect() as conn:
        value = conn.execute(text(query)).scalar()
    engine.dispose()
    return value


def test_eight_writers_lose_and_duplicate_nothing(db_url, tmp_path):
    now = time.time()
    dirs = [write_job(tmp_path / f"w{i // JOBS}" / f"job{i}", now - i, [
        {"id": "c1", "signature": f"SIGSEGV in f{i % 7}", "fingerprint": f"fp{i % 7}"},
        {"id": "c2", "signature": "SIGABRT in g", "fingerprint": "fp-abrt"}], build=str(i))
        for i in range(WRITERS * JOBS)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = []
    started = time.monotonic()
    for w in range(WRITERS):
        own = dirs[w * JOBS:(w + 1) * JOBS]
        # and the first jobs of the next writer: the same job recorded twice at once
        theirs = dirs[((w + 1) % WRITERS) * JOBS:][:OVERLAP]
        procs.append(subprocess.Popen(command("record", "--db", db_url, *map(str, own + theirs)), env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    elapsed = time.monotonic() - started
    assert [r[0] for r in results] == [0] * WRITERS, [r[2] for r in results]
    assert _count(db_url, "SELECT count(*) FROM jobs") == WRITERS * JOBS
    assert _count(db_url, "SELECT count(*) FROM crashes") == 2 * WRITERS * JOBS
    assert _count(db_url, "SELECT count(DISTINCT job_id) FROM crashes") == WRITERS * JOBS
    assert _count(db_url, "SELECT count(*) FROM coredump_schema") == 1
    new_jobs = sum(int(out.split("(")[1].split(" new")[0]) for _, out, _ in results)
    assert new_jobs == WRITERS * JOBS  # each job was new to exactly one writer
    print(f"{WRITERS} writers x {JOBS + OVERLAP} jobs: {elapsed:.1f} s")
