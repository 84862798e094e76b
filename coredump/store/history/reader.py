"""
Reader
======

The read side of the crash database (``top``, ``history``, ``diff --baseline db``, ``report
--db``) on the driver's own DB-API connection: the stdlib ``sqlite3`` or psycopg 3, without
SQLAlchemy, whose import alone (about 0.3 s) cost more than the query of ``top`` over
100,000 crashes. A database that is missing or of an older schema version goes once through
``record.open_database`` (SQLAlchemy, the migrations) and is then read the same way; a newer
one is refused.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from contextlib import contextmanager

from coredump.errors import CoreDumpError, StorageError
from coredump.store.history.engine import BUSY_TIMEOUT_MS, CONNECT_TIMEOUT, error_reason
from coredump.store.history.migrations import SCHEMA_VERSION, refuse_newer
from coredump.store.history.url import driver_url, shown_url

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Any, Dict, Iterator, List, Sequence

__all__ = ("Reader", "open_reader")

# Whether the schema table exists: SQLite's schema table ("The Schema Table"), PostgreSQL's
# to_regclass (NULL for a name the search_path does not resolve).
_HAS_SCHEMA = {"sqlite": "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'coredump_schema'",
               "postgresql": "SELECT to_regclass('coredump_schema') IS NOT NULL"}


def _driver_errors() -> tuple:
    psycopg = sys.modules.get("psycopg")  # only a PostgreSQL reader imported it
    return (sqlite3.Error,) + ((psycopg.Error,) if psycopg is not None else ())


@contextmanager
def _storage_errors(url: str) -> Iterator[None]:
    try:
        yield
    except _driver_errors() as exc:
        raise StorageError(f"database {shown_url(url)}: {error_reason(exc)}") from None
    except OSError as exc:
        raise StorageError(f"database {shown_url(url)}: {exc.strerror or exc}") from None


class Reader:
    """One read connection. Queries are written with PEP 249's ``qmark`` placeholders
    (sqlite3's paramstyle); psycopg's ``format`` ones are put in for PostgreSQL."""

    def __init__(self, conn, dialect: str, url: str):
        self.conn, self.dialect, self.url = conn, dialect, url

    def _run(self, sql: str, params: Sequence[Any]):
        if self.dialect == "postgresql":
            sql = sql.replace("?", "%s")
        with _storage_errors(self.url):
            cursor = self.conn.cursor()
            try:
                cursor.execute(sql, tuple(params))
                return [d[0] for d in cursor.description], cursor.fetchall()
            finally:
                cursor.close()

    def rows(self, sql: str, params: Sequence[Any] = ()) -> List[tuple]:
        return list(self._run(sql, params)[1])

    def dicts(self, sql: str, params: Sequence[Any] = ()) -> List[Dict[str, Any]]:
        """Rows as dicts by column name (the names of the select list)."""
        names, rows = self._run(sql, params)
        return [dict(zip(names, row)) for row in rows]

    def close(self) -> None:
        try:
            self.conn.rollback()  # read only: nothing to keep
            self.conn.close()
        except _driver_errors():
            pass

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _connect(url: str):
    """``(connection, dialect)``, or None when a SQLite file does not exist yet."""
    target = driver_url(url)
    scheme, _, rest = target.partition("://")
    if scheme.startswith("sqlite"):
        path = rest[1:].split("?", 1)[0]  # sqlite:///PATH: the path after the third slash
        if not path or path == ":memory:" or not os.path.exists(path):
            return None
        # isolation_level None: sqlite3 issues no BEGIN of its own; ours makes one snapshot
        # of every query of a command (WAL: readers see the last commit before their BEGIN)
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("BEGIN")
        return conn, "sqlite"
    try:
        import psycopg
    except ImportError:
        from coredump.store.history.url import INSTALL_HINT

        raise CoreDumpError(f"the crash database needs psycopg, which is not installed: {INSTALL_HINT}") from None
    # libpq takes the same postgresql:// URI (its "Connection URIs"), without SQLAlchemy's
    # +driver suffix
    return psycopg.connect(f"postgresql://{rest}", connect_timeout=CONNECT_TIMEOUT), "postgresql"


def _version(reader: Reader) -> int:
    if not reader.rows(_HAS_SCHEMA[reader.dialect])[0][0]:
        return 0
    return int(reader.rows("SELECT max(version) FROM coredump_schema")[0][0] or 0)


def open_reader(url: str) -> Reader:
    """A Reader on `url` at the current schema version (migrated first when older)."""
    shown = shown_url(url)
    for attempt in range(2):
        with _storage_errors(url):
            opened = _connect(url)
        if opened is not None:
            reader = Reader(opened[0], opened[1], url)
            try:
                found = _version(reader)
                refuse_newer(found, shown)
            except CoreDumpError:
                reader.close()
                raise
            if found == SCHEMA_VERSION:
                return reader
            reader.close()
        if attempt == 0:
            from coredump.store.history.record import open_database

            open_database(url).dispose()
    raise StorageError(f"database {shown}: its schema did not reach version {SCHEMA_VERSION}")
