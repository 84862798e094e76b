"""
Store commands
==============

``coredump upload``, ``coredump ls`` and ``coredump fetch``: thin click commands over
``coredump.store.s3`` and ``coredump.store.circleci``; the main group in ``cli.main`` adds them with ``add_command``.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading

import click

from coredump.errors import CoreDumpError

__all__ = ("upload", "ls", "fetch", "COMMANDS")


def _errors(func):
    """A CoreDumpError (or a bug) becomes click's one ``Error: …`` line on stderr and exit
    status 1, as ``cli.handle_errors`` does for the other commands."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except CoreDumpError as exc:
            raise click.ClickException(str(exc)) from exc
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # never a traceback for the user; COREDUMP_DEBUG=1 shows it
            if os.environ.get("COREDUMP_DEBUG"):
                raise
            raise click.ClickException(f"internal error: {type(exc).__name__}: {exc} "
                                       "(set COREDUMP_DEBUG=1 for details)") from exc

    return wrapper


class _Bar:
    """A ``Progress`` callback drawing a click progress bar on a terminal, nothing elsewhere."""

    def __init__(self, label: str):
        self.label, self.bar, self.lock = label, None, threading.Lock()
        self.enabled = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        with self.lock:
            if self.bar is None:
                self.bar = click.progressbar(length=max(total, 1), label=self.label, file=sys.stderr,
                                             show_pos=False, show_percent=True)
            self.bar.update(done - self.bar.pos)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.render_finish()


@click.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.argument("url")
@click.option("--job", help="Job id under the prefix (default: the summary's start time and host).")
@click.option("--presign", type=click.IntRange(1, 7 * 24 * 3600), metavar="SECONDS",
              help="Print presigned addresses valid this long (for a private bucket).")
@click.option("--db", metavar="URL", default=None,
              help="Also record the job, at its S3 address, in this crash database (default $COREDUMP_DB, "
                   "else none). An unreachable one is a warning.")
@_errors
def upload(directory, url, job, presign, db):
    """Upload an artifact DIRECTORY to URL/<job>/ (URL is s3://BUCKET/PREFIX) and print its addresses."""
    from pathlib import Path

    from coredump.store.s3 import default_job_id, read_summary, upload_artifacts
    from coredump.store.s3url import parse_s3_url

    job = job or default_job_id(read_summary(Path(directory)))
    bar = _Bar("uploading")
    try:
        urls = upload_artifacts(directory, url, progress=bar, job=job, presign=presign)
    finally:
        bar.close()
    click.echo(f"Uploaded {directory} to {parse_s3_url(url).join(job)}/")
    for address in urls:
        click.echo(address)
    _record_upload(directory, str(parse_s3_url(url).join(job)), db)


def _record_upload(directory, location: str, db) -> None:
    """The uploaded job into the crash database when one is set; a failure is a warning
    (the upload itself succeeded)."""
    from coredump.store.history.url import configured_url

    target = configured_url(db)
    if not target:
        return
    from coredump.report.sanitize import clean_text
    from coredump.store.history.record import record_directory

    try:
        done = record_directory(target, directory, location)
        click.echo(f"crash history: {done.new_crashes} crash{'es' if done.new_crashes != 1 else ''} recorded")
    except CoreDumpError as exc:
        click.echo(f"warning: crash history not recorded ({clean_text(exc)}); `coredump record {location}` "
                   "records it later", err=True)


def _signal_name(value) -> str:
    if isinstance(value, dict):
        return str(value.get("name") or value.get("number") or "?")
    return "?" if value is None else str(value)


def _rows(jobs):
    for job in jobs:
        started = str(job.get("started") or "?")
        if not job.get("crashes"):
            yield (started, job["job"], "-", f"no crashes (exit status {job.get('exit_status', '?')})", "")
        for crash in job.get("crashes") or []:
            yield (started, f"{job['job']}/{crash.get('id', '?')}", _signal_name(crash.get("signal")),
                   str(crash.get("signature") or "?"), str(crash.get("executable") or "?"))


@click.command(name="ls")
@click.argument("url")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@_errors
def ls(url, fmt):
    """List the jobs and crashes under URL (s3://BUCKET/PREFIX), from each job's summary.json."""
    from coredump.store.s3 import list_jobs

    jobs = list_jobs(url)
    if fmt == "json":
        keep = ("job", "url", "started", "finished", "host", "command", "exit_status")
        out = [dict({k: job.get(k) for k in keep},
                    crashes=[{k: c.get(k) for k in ("id", "signature", "signal", "executable")}
                             | {"url": f"{job['url']}/{c.get('id')}"} for c in job.get("crashes") or []])
               for job in jobs]
        click.echo(json.dumps(out, indent=2))
        return
    rows = list(_rows(jobs))
    if not rows:
        click.echo(f"no jobs under {url}", err=True)
        return
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[4])


@click.command()
@click.argument("url")
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--host", metavar="URL",
              help="CircleCI's address for circleci: URLs (CircleCI server; default $CIRCLECI_HOST, else "
                   "https://circleci.com).")
@_errors
def fetch(url, dest, host):
    """Download a job (s3://BUCKET/PREFIX/JOB, or circleci:PROJECT-SLUG/JOB-NUMBER with
    $CIRCLE_TOKEN) or one S3 crash (…/JOB/ID) with its binaries into DEST."""
    bar = _Bar("downloading")
    try:
        if url.startswith("circleci:"):
            from coredump.store.circleci import fetch_circleci

            written = fetch_circleci(url, dest, host=host)
        else:
            from coredump.store.s3fetch import fetch_artifacts

            written = fetch_artifacts(url, dest, progress=bar)
    finally:
        bar.close()
    total = sum(path.stat().st_size for path in written)
    click.echo(f"Fetched {len(written)} files ({total / 1e6:.1f} MB) into {dest}")


COMMANDS = (upload, ls, fetch)


@click.group()
def _store():
    """The store commands alone (``python -m coredump.cli.store``)."""


for _command in COMMANDS:
    _store.add_command(_command)

if __name__ == "__main__":
    _store()
