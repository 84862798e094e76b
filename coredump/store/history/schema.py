"""
Schema
======

The tables of the crash database as they are at ``SCHEMA_VERSION``: version 1's tables (as
``migrations`` created them) with each later version's columns added. One row per CI job,
one per crash; a crash carries its job's repository, branch and commit as well (version 2),
so that ``top --branch`` and the ``diff --baseline`` lookup read one table through one index.
"""

from __future__ import annotations

from coredump.store.history.migrations import SCHEMA_VERSION, VERSION_2_COLUMNS, version_1_tables

__all__ = ("SCHEMA_VERSION", "TEXT_LIMIT", "tables")

TEXT_LIMIT = 2048  # characters of any one text field read from a summary or crash.json

_tables = None


def tables():
    """``(metadata, version, jobs, crashes)``: SQLAlchemy Core tables, built once."""
    global _tables
    if _tables is None:
        from sqlalchemy import Column, MetaData, Text

        metadata = MetaData()
        version, jobs, crashes = version_1_tables(metadata)
        for name in VERSION_2_COLUMNS:
            crashes.append_column(Column(name, Text))
        _tables = (metadata, version, jobs, crashes)
    return _tables
