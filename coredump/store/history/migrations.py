"""
Migrations
==========

The schema's versions, each a step from the one before, applied on first use inside one
transaction that holds the database's migration lock: PostgreSQL's transaction-level
advisory lock (``pg_advisory_xact_lock``), SQLite's write lock (``BEGIN IMMEDIATE``). Two
jobs opening a new database at once thus create it once. A database newer than this
coredump is refused, never written.
"""

from __future__ import annotations

from coredump.errors import StorageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable, List

__all__ = ("STEPS", "SCHEMA_VERSION", "VERSION_2_COLUMNS", "version_1_tables", "current_version", "refuse_newer",
           "migrate")

VERSION_2_COLUMNS = ("expected", "repository", "branch", "commit")  # crashes' TEXT columns added

_LOCK_KEY = 0x636F7265  # "core": the advisory lock id of coredump's migrations


def version_1_tables(metadata):
    """Version 1's tables, as they were created then (``schema`` adds each later version's
    columns to them)."""
    from sqlalchemy import Column, Float, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint

    version = Table("coredump_schema", metadata, Column("version", Integer, nullable=False))
    jobs = Table(
        "jobs", metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("job_key", String(64), nullable=False, unique=True),
        *(Column(name, Text) for name in ("provider", "repository", "commit", "branch", "tag", "pull_request",
                                           "job", "build_number", "job_url", "pipeline_url", "host", "command")),
        Column("exit_status", Integer), Column("started", Float), Column("finished", Float),
        Column("location", Text, nullable=False), Column("recorded", Float, nullable=False))
    crashes = Table(
        "crashes", metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("job_id", Integer, ForeignKey("jobs.id"), nullable=False),
        Column("crash_id", String(200), nullable=False),
        Column("fingerprint", String(200), nullable=False), Column("signature", Text, nullable=False),
        *(Column(name, Text) for name in ("classification", "reason", "signal", "executable", "build_id",
                                           "build_ids")),
        Column("time", Float, nullable=False),
        *(Column(name, Text) for name in ("location", "report", "core")),
        UniqueConstraint("job_id", "crash_id"))
    Index("crashes_fingerprint", crashes.c.fingerprint)
    Index("crashes_time", crashes.c.time)
    return version, jobs, crashes


def _v1(conn) -> None:
    """Version 1: jobs (CI metadata, where the artifacts are) and their crashes."""
    from sqlalchemy import MetaData

    metadata = MetaData()
    version, _, _ = version_1_tables(metadata)
    metadata.create_all(conn)
    conn.execute(version.insert().values(version=0))


def _v2(conn) -> None:
    """Version 2: each crash carries whether it was expected and its job's repository,
    branch and commit (filled in from the jobs), with indexes for top and the baseline."""
    from sqlalchemy import text

    quote = conn.dialect.identifier_preparer.quote
    for name in VERSION_2_COLUMNS:
        conn.execute(text(f"ALTER TABLE crashes ADD COLUMN {quote(name)} TEXT"))
    fill = ", ".join(f"{quote(n)} = (SELECT jobs.{quote(n)} FROM jobs WHERE jobs.id = crashes.job_id)"
                     for n in ("repository", "branch", "commit"))
    conn.execute(text(f"UPDATE crashes SET {fill}"))
    # diff --baseline; top's window, with and without --branch (covering: no table read);
    # first and last seen of a fingerprint
    for name, columns in (("crashes_branch", "repository, branch, fingerprint"),
                          ("crashes_window", "time, fingerprint, job_id"),
                          ("crashes_branch_window", "branch, time, fingerprint, job_id"),
                          ("crashes_fingerprint_time", "fingerprint, time, job_id")):
        conn.execute(text(f"CREATE INDEX {name} ON crashes ({columns})"))


STEPS: List[Callable] = [_v1, _v2]  # STEPS[n - 1] makes version n
SCHEMA_VERSION = len(STEPS)


def current_version(conn) -> int:
    """The database's schema version; 0 for a database coredump never wrote."""
    from sqlalchemy import inspect, text

    if not inspect(conn).has_table("coredump_schema"):
        return 0
    value = conn.execute(text("SELECT max(version) FROM coredump_schema")).scalar()
    return int(value or 0)


def refuse_newer(found: int, url: str) -> None:
    if found > SCHEMA_VERSION:
        raise StorageError(f"database {url} has schema version {found}, newer than this coredump's "
                           f"{SCHEMA_VERSION}: a coredump that knows schema version {found} is needed")


def migrate(engine, shown: str, upto: int = SCHEMA_VERSION) -> int:
    """Bring the database to version `upto` (the current one by default); its version."""
    from sqlalchemy import text

    with engine.connect() as conn:
        found = current_version(conn)
        conn.rollback()
    refuse_newer(found, shown)
    if found >= upto:
        return found
    with engine.connect().execution_options(coredump_write=True) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        found = current_version(conn)  # another job may have migrated while we waited
        refuse_newer(found, shown)
        for version in range(found + 1, upto + 1):
            STEPS[version - 1](conn)
            conn.execute(text("UPDATE coredump_schema SET version = :v"), {"v": version})
    return max(found, upto)
