"""
Store commands
==============

``coredump upload``, ``coredump ls`` and ``coredump fetch``: thin click commands over
``coredump.store.s3`` and ``coredump.store.circleci``; the main group in ``cli.main`` adds them with ``add_command``.
"""

from __future__ import annotations

import os
import sys
import threading

import click

from coredump.cli.errors import handle_errors
from coredump.errors import CoreDumpError
from coredump.jsondoc import dumps_document
from coredump.report.sanitize import clean_text

__all__ = ("upload", "ls", "fetch", "COMMANDS")


def _timeout_option(what: str):
    from coredump.store.s3deadline import DEFAULT_TIMEOUT

    return click.option("--timeout", type=click.FloatRange(0, min_open=True), default=DEFAULT_TIMEOUT,
                        show_default=True, metavar="SECONDS",
                        help=f"Give up the whole {what}, retries included, after this long.")


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
@_timeout_option("upload")
@handle_errors
def upload(directory, url, job, presign, timeout, db):
    """Upload an artifact DIRECTORY to URL/<job>/ (URL is s3://BUCKET/PREFIX) and print its addresses."""
    from pathlib import Path

    from coredump.store.s3 import default_job_id, read_summary, upload_artifacts
    from coredump.store.s3url import parse_s3_url

    job = job or default_job_id(read_summary(Path(directory)))
    bar = _Bar("uploading")
    try:
        urls = upload_artifacts(directory, url, progress=bar, job=job, presign=presign, timeout=timeout)
    finally:
        bar.close()
    click.echo(f"Uploaded {directory} to {parse_s3_url(url).join(job)}/")
    for address in urls:  # each names a crash id of the directory's summary.json
        click.echo(clean_text(address))
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
    """The cells of `ls`: every one comes from a job's summary.json or its S3 key (hostile
    input), cleaned as `analyze` cleans crash data."""
    for job in jobs:
        started = str(job.get("started") or "?")
        if not job.get("crashes"):
            row = (started, job["job"], "-", f"no crashes (exit status {job.get('exit_status', '?')})", "")
            yield tuple(clean_text(cell) for cell in row)
        for crash in job.get("crashes") or []:
            if not isinstance(crash, dict):
                continue
            row = (started, f"{job['job']}/{crash.get('id', '?')}", _signal_name(crash.get("signal")),
                   str(crash.get("signature") or "?"), str(crash.get("executable") or "?"))
            yield tuple(clean_text(cell) for cell in row)


@click.command(name="ls")
@click.argument("url")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@handle_errors
def ls(url, fmt):
    """List the jobs and crashes under URL (s3://BUCKET/PREFIX, at any depth) or a local
    directory (every artifact directory under it), from each job's summary.json."""
    warnings: list = []
    if url.startswith("s3://"):
        from coredump.store.s3 import list_jobs

        jobs = list_jobs(url, warnings=warnings)
    elif os.path.isdir(url):
        from coredump.store.listing import list_local_jobs

        jobs = list_local_jobs(url, warnings)
    else:
        from coredump.errors import MissingFileError

        raise MissingFileError(f"{url}: neither s3://BUCKET/PREFIX nor a directory")
    for warning in warnings:
        click.echo(f"warning: {clean_text(warning)}", err=True)
    if fmt == "json":
        keep = ("job", "url", "started", "finished", "host", "command", "exit_status")
        out = [dict({k: job.get(k) for k in keep},
                    crashes=[{k: c.get(k) for k in ("id", "signature", "signal", "executable")}
                             | {"url": f"{job['url']}/{c.get('id')}"} for c in job.get("crashes") or []])
               for job in jobs]
        click.echo(dumps_document(out))
        return
    rows = list(_rows(jobs))
    if not rows:
        click.echo(f"no jobs under {clean_text(url)}", err=True)
        return
    rows.insert(0, _HEADER)
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[4])


_HEADER = ("STARTED", "JOB/CRASH", "SIGNAL", "SIGNATURE", "EXECUTABLE")


@click.command()
@click.argument("url")
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--host", metavar="URL",
              help="CircleCI's address for circleci: URLs (CircleCI server; default $CIRCLECI_HOST, else "
                   "https://circleci.com).")
@_timeout_option("download")
@handle_errors
def fetch(url, dest, host, timeout):
    """Download a job (s3://BUCKET/PREFIX/JOB, or circleci:PROJECT-SLUG/JOB-NUMBER with
    $CIRCLE_TOKEN) or one S3 crash (…/JOB/ID) with its binaries into DEST."""
    bar = _Bar("downloading")
    try:
        if url.startswith("circleci:"):
            from coredump.store.circleci import fetch_circleci

            written = fetch_circleci(url, dest, host=host, timeout=timeout,
                                     warn=lambda line: click.echo(f"warning: {clean_text(line)}", err=True))
        else:
            from coredump.store.s3fetch import fetch_artifacts

            written = fetch_artifacts(url, dest, progress=bar, timeout=timeout,
                                      warn=lambda line: click.echo(f"warning: {clean_text(line)}", err=True))
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
