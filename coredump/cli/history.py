"""
History commands
================

``coredump record``, ``coredump top`` and ``coredump history``: the crash database across
jobs (``coredump.store.history``). The main group loads them lazily; SQLAlchemy is
imported only once a command runs.
"""

from __future__ import annotations

import json
import sys
import time

import click

from coredump.cli.errors import handle_errors

__all__ = ("record", "top", "history", "db_option", "COMMANDS")


def db_option(func):
    return click.option("--db", "db", metavar="URL", default=None,
                        help="Crash database: sqlite:///PATH or postgresql://USER@HOST/DB (default $COREDUMP_DB, "
                             "else sqlite:///$XDG_DATA_HOME/coredump/history.db).")(func)


def _reader(db):
    from coredump.store.history.reader import open_reader
    from coredump.store.history.url import resolve_url

    return open_reader(resolve_url(db))


def _warn(line: str) -> None:
    from coredump.report.sanitize import clean_text

    click.echo(f"warning: {clean_text(line)}", err=True)


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="DIR|s3://PREFIX...")
@db_option
@handle_errors
def record(inputs, db):
    """Store the jobs and crashes of artifact directories (or folders of them) and S3
    prefixes in the crash database. Recording a job again changes nothing. Exits 1 when a
    job had to be skipped (a malformed summary.json); the others are recorded."""
    from coredump.store.history.record import record_inputs
    from coredump.store.history.url import resolve_url, shown_url

    url = resolve_url(db)
    result = record_inputs(url, inputs)
    for warning in result.warnings:
        _warn(warning)
    click.echo(f"recorded {result.jobs} job{'s' if result.jobs != 1 else ''} ({result.new_jobs} new, "
               f"{result.new_crashes} new crash{'es' if result.new_crashes != 1 else ''}) in {shown_url(url)}")
    if result.skipped:
        click.echo(f"Error: {result.skipped} job{'s' if result.skipped != 1 else ''} skipped (see the warnings); "
                   "the others are recorded", err=True)
        sys.exit(1)


def _since(ctx, param, value):
    from coredump.cli.capture import parse_since

    try:
        return parse_since(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


@click.command()
@click.option("--since", default="7d", show_default=True, metavar="TIME", callback=_since,
              help="Window start: a duration ago (7d, 12h), @EPOCH or ISO 8601.")
@click.option("--branch", default=None, help="Only crashes of jobs on this branch.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@db_option
@handle_errors
def top(since, branch, limit, fmt, db):
    """Signatures by number of crashes since --since: jobs, first and last seen, the
    branches, and a trend (new, rising, falling, steady) with crashes per day."""
    from coredump.store.history.queries import top_crashes

    with _reader(db) as reader:
        result = top_crashes(reader, since, time.time(), branch, limit)
    if fmt == "json":
        click.echo(json.dumps(dict(result, schema="coredump.top/1"), indent=2, ensure_ascii=False))
    else:
        from coredump.report.history_text import render_top_text

        click.echo(render_top_text(result), nl=False)


@click.command()
@click.argument("key", metavar="FINGERPRINT|SIGNATURE")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1),
              help="Occurrences listed (the newest); the first commit on each branch counts them all.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@db_option
@handle_errors
def history(key, limit, fmt, db):
    """Every occurrence of one crash: commit, branch, job URL, where its artifacts are, and
    the first commit on each branch where it appeared. Exits 1 when none is recorded."""
    from coredump.store.history.queries import crash_history

    with _reader(db) as reader:
        result = crash_history(reader, key, limit)
    if fmt == "json":
        click.echo(json.dumps(dict(result, schema="coredump.history/1"), indent=2, ensure_ascii=False))
    else:
        from coredump.report.history_text import render_history_text

        click.echo(render_history_text(result), nl=False)
    sys.exit(0 if result["count"] else 1)


COMMANDS = (record, top, history)
