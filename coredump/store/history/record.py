"""
Record
======

Write jobs and their crashes into the crash database, one transaction per job. Recording is
idempotent: a job is found again by its key and a crash by its job and id (the unique
constraints, with ``INSERT … ON CONFLICT DO NOTHING``), so the same job twice, or two jobs
recording it at once, changes nothing. The one update: a job first recorded from its local
directory and later from S3 (``run`` then ``upload``) points to S3, where it stays.
"""

from __future__ import annotations

from coredump.record import dataclass, field
from coredump.store.history.jobs import crash_rows, job_row
from coredump.store.history.sources import JobInput, iter_jobs

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Iterable, List

__all__ = ("RecordResult", "record_jobs", "record_inputs", "record_directory", "open_database")


@dataclass
class RecordResult:
    jobs: int = 0  # jobs read
    new_jobs: int = 0
    new_crashes: int = 0
    warnings: List[str] = field(default_factory=list)
    skipped: int = 0


def open_database(url: str):
    """An engine on `url` with its schema brought to the current version."""
    from coredump.store.history.engine import db_errors, open_engine
    from coredump.store.history.migrations import migrate
    from coredump.store.history.url import shown_url

    engine = open_engine(url)
    with db_errors(url):
        migrate(engine, shown_url(url))
    return engine


def _insert(conn):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _record_one(conn, job: JobInput, result: RecordResult) -> None:
    from sqlalchemy import select

    from coredump.store.history.schema import tables

    _, _, jobs, crashes = tables()
    insert = _insert(conn)
    row = job_row(job.summary, job.location)
    # RETURNING counts the rows inserted: psycopg's rowcount is -1 under SQLAlchemy's own RETURNING
    done = conn.execute(insert(jobs).on_conflict_do_nothing(index_elements=["job_key"]).returning(jobs.c.id), row)
    result.new_jobs += len(done.all())
    job_id, location = conn.execute(select(jobs.c.id, jobs.c.location).where(jobs.c.job_key == row["job_key"])).one()
    if job.location.startswith("s3://") and not location.startswith("s3://"):
        conn.execute(jobs.update().where(jobs.c.id == job_id).values(location=row["location"]))
        conn.execute(crashes.update().where(crashes.c.job_id == job_id).values(location=row["location"]))
    row = dict(row, location=row["location"] if job.location.startswith("s3://") else location)
    rows = [dict(r, job_id=job_id) for r in crash_rows(job.summary, row, job.read_crash, result.warnings)]
    if rows:  # executemany: SQLAlchemy's "insertmanyvalues" batches it, within each driver's limits
        done = conn.execute(insert(crashes).on_conflict_do_nothing(index_elements=["job_id", "crash_id"])
                            .returning(crashes.c.id), rows)
        result.new_crashes += len(done.all())


def record_jobs(engine, url: str, jobs: Iterable[JobInput], result: RecordResult) -> RecordResult:
    """Record each job in its own transaction (a long run of jobs keeps the write lock only
    a moment at a time)."""
    from coredump.store.history.engine import db_errors

    for job in jobs:
        result.jobs += 1
        with db_errors(url), engine.connect().execution_options(coredump_write=True) as conn, conn.begin():
            _record_one(conn, job, result)
    return result


def record_inputs(url: str, inputs) -> RecordResult:
    """``coredump record``: every job the inputs (directories, s3:// prefixes) name."""
    result = RecordResult()
    engine = open_database(url)
    try:
        before = len(result.warnings)
        record_jobs(engine, url, iter_jobs(inputs, result.warnings), result)
        result.skipped = sum(1 for w in result.warnings[before:] if w.startswith("skipped "))
    finally:
        engine.dispose()
    return result


def record_directory(url: str, root, location=None) -> RecordResult:
    """Record the job of one artifact directory (``run``, ``harvest``, ``upload``), as found
    at `location` when given (its S3 prefix after an upload)."""
    from coredump.record import replace
    from coredump.store.history.sources import read_summary_dir

    job = read_summary_dir(root)
    result = RecordResult()
    engine = open_database(url)
    try:
        record_jobs(engine, url, [replace(job, location=location) if location else job], result)
    finally:
        engine.dispose()
    return result
