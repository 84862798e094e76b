"""
Schema
======

The tables of the crash database as they are at ``SCHEMA_VERSION`` (``migrations`` builds
them step by step from version 1): one row per CI job, one per crash. A crash carries its
job's repository, branch and commit as well (version 2), so that ``top --branch`` and the
``diff --baseline`` lookup read one table through one index.
"""

from __future__ import annotations

__all__ = ("SCHEMA_VERSION", "TEXT_LIMIT", "tables")

SCHEMA_VERSION = 2
TEXT_LIMIT = 2048  # characters of any one text field read from a summary or crash.json

_tables = None


def tables():
    """``(metadata, version, jobs, crashes)``: SQLAlchemy Core tables, built once."""
    global _tables
    if _tables is None:
        from sqlalchemy import Column, Float, ForeignKey, Integer, MetaData, String, Table, Text

        metadata = MetaData()
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
            # version 2
            *(Column(name, Text) for name in ("expected", "repository", "branch", "commit")))
        _tables = (metadata, version, jobs, crashes)
    return _tables
