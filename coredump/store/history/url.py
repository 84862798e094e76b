"""
Database URL
============

Which crash database a command uses: ``--db URL``, else ``$COREDUMP_DB``, else a SQLite file
under the XDG data directory (XDG Base Directory Specification: ``$XDG_DATA_HOME``, default
``~/.local/share``). Imports nothing heavy: `run` asks whether a database is set on its
success path.
"""

from __future__ import annotations

import importlib.util
import os

from coredump.errors import CoreDumpError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Mapping, Optional

__all__ = ("ENV", "default_url", "resolve_url", "configured_url", "driver_url", "shown_url", "require_sqlalchemy",
           "INSTALL_HINT")

ENV = "COREDUMP_DB"
INSTALL_HINT = "pip install 'coredump[db]'"
# SQLAlchemy's dialect+driver names (SQLAlchemy 2 "Engine Configuration"): the stdlib
# sqlite3 driver, psycopg 3 for PostgreSQL.
_DRIVERS = {"sqlite": "sqlite+pysqlite", "sqlite+pysqlite": "sqlite+pysqlite",
            "postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
            "postgresql+psycopg": "postgresql+psycopg"}


def default_url(environ: Optional[Mapping[str, str]] = None) -> str:
    env = os.environ if environ is None else environ
    data = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return "sqlite:///" + os.path.join(os.path.abspath(data), "coredump", "history.db")


def configured_url(explicit: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The database `run`, `harvest` and `upload` record into: only one named by ``--db`` or
    ``$COREDUMP_DB``, None otherwise."""
    env = os.environ if environ is None else environ
    return explicit or env.get(ENV) or None


def resolve_url(explicit: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> str:
    """The database of the history commands: the configured one, else the default file."""
    return configured_url(explicit, environ) or default_url(environ)


def driver_url(url: str) -> str:
    """`url` with the driver SQLAlchemy should use; CoreDumpError for any other scheme.

    >>> driver_url("postgresql://ci@db/crashes")
    'postgresql+psycopg://ci@db/crashes'
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _DRIVERS:
        raise CoreDumpError(f"--db {shown_url(url)}: not a database URL (use sqlite:///PATH or "
                            "postgresql://USER@HOST/DB)")
    if scheme.lower().startswith("sqlite") and not rest.startswith("/"):
        raise CoreDumpError(f"--db {url}: a SQLite URL names a file: sqlite:///PATH")
    return f"{_DRIVERS[scheme.lower()]}://{rest}"


def shown_url(url: str) -> str:
    """`url` without its password, for messages (RFC 3986 userinfo ``user:password@``)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        user, _, host = authority.rpartition("@")
        authority = f"{user.split(':', 1)[0]}:***@{host}" if ":" in user else authority
    return f"{scheme}{sep}{authority}{slash}{path}"


def require_sqlalchemy(url: str) -> None:
    """CoreDumpError naming the extra to install when SQLAlchemy (or psycopg for a
    PostgreSQL URL) is missing; found with ``find_spec``, nothing imported."""
    needed = ["sqlalchemy"] + (["psycopg"] if url.lower().startswith("postgres") else [])
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise CoreDumpError(f"the crash database needs {', '.join(missing)}, which is not installed: {INSTALL_HINT}")
