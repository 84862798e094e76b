#!/usr/bin/env python3
"""
Crash history bench (issue #19)
===============================

``make bench``'s history section: record 1,000 jobs (10,000 crashes) from artifact
directories with ``coredump record``, then ``top`` and ``history``; then grow the database
to 100,000 crashes and time ``top --since 30d`` (the issue's bound: 0.5 s). On a SQLite
file, and on a PostgreSQL cluster of its own when one can be started (as the tests do).
Prints one line per measurement and writes ``bench_history.json``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.cli import command  # noqa: E402
from tests.historydb import PG_USER, _as_user, _start_cluster, write_job  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
ENV.pop("COREDUMP_DB", None)
JOBS, PER_JOB, TOTAL = 1000, 10, 100_000
DAY = 86400


def timed(argv, cpu=None):
    """Wall seconds of one command; its CPU seconds (user + system) into `cpu` when given:
    on a shared machine the wall time counts other people's work too."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, env=ENV, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{argv[3:]}: {proc.stderr.strip()}")
    if cpu is not None:
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall


def make_jobs(scratch: Path, now: float) -> Path:
    folder = scratch / "jobs"
    for n in range(JOBS):
        write_job(folder / f"job{n:04}", now - (n % 30) * DAY - n, [
            {"id": f"c{k}", "signature": f"SIGSEGV in handler_{(n * PER_JOB + k) % 200}",
             "fingerprint": f"fp{(n * PER_JOB + k) % 200:03}"} for k in range(PER_JOB)],
            branch=("main", "release", f"pr-{n % 40}")[n % 3], build=str(n))
    return folder


def grow(url: str, now: float) -> float:
    """Synthetic jobs, in-process, until the database holds TOTAL crashes; seconds taken."""
    from coredump.store.history.record import RecordResult, _record_one, open_database
    from coredump.store.history.sources import JobInput

    engine = open_database(url)
    start = time.perf_counter()
    result = RecordResult()
    with engine.connect().execution_options(coredump_write=True) as conn, conn.begin():
        for n in range(JOBS, TOTAL // PER_JOB):
            started = now - (n % 30) * DAY - n
            summary = {"schema": "coredump.summary/1", "host": "bench", "started": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "ci": {"provider": "github", "branch": "main",
                                                                    "build_number": str(n)},
                       "crashes": [{"id": f"c{k}", "signature": f"SIGSEGV in handler_{(n + k) % 200}",
                                    "fingerprint": f"fp{(n + k) % 200:03}"} for k in range(PER_JOB)]}
            _record_one(conn, JobInput(f"/bench/job{n}", summary, lambda rel: None), result)
    if engine.dialect.name == "postgresql":
        # the planner statistics autovacuum's analyze would gather once a tenth of the table
        # changed (autovacuum_analyze_scale_factor): the bulk insert above is one transaction
        # a moment ago, which a real history never is
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return time.perf_counter() - start


def query_seconds(url: str, now: float) -> float:
    from coredump.store.history.queries import top_crashes
    from coredump.store.history.reader import open_reader

    with open_reader(url) as reader:
        top_crashes(reader, now - 30 * DAY, now)  # a warm cache, as a second query finds it
        start = time.perf_counter()
        top_crashes(reader, now - 30 * DAY, now)
        return time.perf_counter() - start


def bench(label: str, url: str, jobs: Path, now: float) -> dict:
    row = {"database": label}
    row["record_1000_jobs_s"] = timed(command("record", "--db", url, str(jobs)))
    row["top_7d_s"] = timed(command("top", "--since", "7d", "--db", url))
    row["history_s"] = timed(command("history", "fp007", "--db", url))
    row["grow_to_100k_s"] = grow(url, now)
    cpu = []
    row["top_30d_100k_command_s"] = timed(command("top", "--since", "30d", "--db", url), cpu)
    row["top_30d_100k_command_cpu_s"] = cpu[0]
    row["top_30d_100k_query_s"] = query_seconds(url, now)
    row["history_100k_command_s"] = timed(command("history", "fp007", "--db", url))
    for key, value in row.items():
        if key != "database":
            print(f"history bench: {label:10} {key:26} {value:7.3f} s")
    return row


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="coredump-bench-history-"))
    now = time.time()
    rows = []
    try:
        jobs = make_jobs(scratch, now)
        rows.append(bench("sqlite", f"sqlite:///{scratch / 'history.db'}", jobs, now))
        pg_root = tempfile.mkdtemp(prefix="coredump-bench-pg-")
        cluster, why = _start_cluster(pg_root)
        if cluster is None:
            print(f"history bench: no PostgreSQL: {why}")
        else:
            bindir, data, user = cluster
            try:
                subprocess.run(_as_user([f"{bindir}/createdb", "-h", pg_root, "-U", PG_USER, "bench"], user),
                               check=True)
                rows.append(bench("postgresql", f"postgresql://{PG_USER}@/bench?host={pg_root}", jobs, now))
            finally:
                subprocess.run(_as_user([f"{bindir}/pg_ctl", "-D", data, "-m", "fast", "stop"], user),
                               capture_output=True)
        shutil.rmtree(pg_root, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    (ROOT / "bench_history.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {ROOT / 'bench_history.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
