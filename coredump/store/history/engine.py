"""
Engine
======

Connections to the crash database, and its failures as one ``StorageError`` each. SQLite
runs in WAL mode with a busy timeout, every write transaction taking the write lock at its
BEGIN (``BEGIN IMMEDIATE``): SQLite answers SQLITE_BUSY at once, without waiting, to a
deferred transaction that read and then wants to write while another writer holds the lock
("Isolation In SQLite"), which many CI jobs recording at once would hit.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager

from coredump.errors import StorageError
from coredump.store.history.url import driver_url, require_sqlalchemy, shown_url

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Iterator

__all__ = ("open_engine", "db_errors", "error_reason", "BUSY_TIMEOUT_MS", "CONNECT_TIMEOUT")

BUSY_TIMEOUT_MS = 60_000
CONNECT_TIMEOUT = 10  # seconds; libpq's connect_timeout
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def error_reason(exc: Exception) -> str:
    """The driver's own first line (psycopg's "connection refused", sqlite3's "database is
    locked"), not SQLAlchemy's wrapper text with the SQL and a link."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return _CONTROLS.sub(" ", lines[0] if lines else type(orig).__name__)[:300]


@contextmanager
def db_errors(url: str) -> Iterator[None]:
    """Any database failure inside as one StorageError naming the database (its password
    hidden)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as exc:
        raise StorageError(f"database {shown_url(url)}: {error_reason(exc)}") from None


def _sqlite_path(url: str) -> str:
    return url.split(":///", 1)[1].split("?", 1)[0]


def _sqlite_engine(url: str, write: bool):
    from sqlalchemy import create_engine, event

    path = _sqlite_path(url)
    if path and path != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", mode=0o700, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # the driver's own BEGIN off: ours below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")  # readers never wait for writers
        # "WAL mode is safe from corruption with synchronous=NORMAL" (SQLite's PRAGMA docs): a
        # commit waits for no fsync; a power cut may lose the last jobs, which record restores.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection):
        immediate = write or connection.get_execution_options().get("coredump_write")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def open_engine(url: str, write: bool = False):
    """A SQLAlchemy engine for `url` (``sqlite:///PATH`` or ``postgresql://…``); nothing is
    connected yet. `write`: transactions that will write (SQLite takes the lock at BEGIN)."""
    require_sqlalchemy(url)
    target = driver_url(url)
    try:
        if target.startswith("sqlite"):
            return _sqlite_engine(target, write)
        from sqlalchemy import create_engine

        return create_engine(target, connect_args={"connect_timeout": CONNECT_TIMEOUT}, pool_pre_ping=False)
    except OSError as exc:
        raise StorageError(f"database {shown_url(url)}: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - sqlalchemy.exc.ArgumentError for a malformed URL
        raise StorageError(f"database {shown_url(url)}: {error_reason(exc)}") from None
