"""
Capture commands
================

The ``run``, ``harvest`` and ``doctor`` commands of the ``coredump`` command line; the
main group adds them with ``add_command``. Only click and the standard library are
imported here: the rest comes when a command needs it.
"""

from __future__ import annotations

import re
import time

import click

from coredump.cli.sizes import parse_size

__all__ = ("run", "harvest", "doctor", "parse_size", "parse_since", "main")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float = None) -> float:
    """Seconds since the epoch from ``@1700000000``, ``1700000000``, an ISO 8601 time
    (local unless it has a zone) or a duration ago: ``30m``, ``2h``, ``1d``, ``1h30m``.

    >>> parse_since("2h", now=10000.0), parse_since("@1700000000")
    (2800.0, 1700000000.0)
    """
    now = time.time() if now is None else now
    text = text.strip()
    if re.fullmatch(r"@?\d+(\.\d+)?", text):
        return float(text.lstrip("@"))
    if re.fullmatch(r"(?:\d+(?:\.\d+)?[smhd])+", text):
        return now - sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use @EPOCH, an ISO 8601 time or e.g. 2h)") from None


def _parse_mode(text: str) -> int:
    from coredump.store.artifacts import parse_mode  # not on the import path of `run`

    return parse_mode(text)


class _Parsed(click.ParamType):
    """A click type made of a parser that raises ValueError with the sentence to print."""

    def __init__(self, name: str, parse):
        self.name, self._parse = name, parse

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return self._parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _check_upload(ctx, param, value):
    from coredump.store.s3url import upload_problem

    problem = upload_problem(value) if value is not None else None
    if problem:
        raise click.UsageError(problem, ctx)
    return value


def _check_step_status(ctx, param, value):
    """An exit status as a shell's $? gives it (0-255); an empty value (a CI output the step
    never set) is unknown, so an on_fail step still harvests."""
    if value is None or not value.strip():
        return None
    try:
        status = int(value.strip(), 10)
    except ValueError:
        status = -1
    if not 0 <= status <= 255:
        raise click.BadParameter(f"{value!r} is not an exit status (0-255)", ctx, param)
    return status


def _store_options(func):
    opts = [
        click.option("-o", "--output", default="coredump-artifacts", show_default=True,
                     type=click.Path(file_okay=False), help="The artifact directory."),
        click.option("--core-dir", "core_dirs", multiple=True, type=click.Path(file_okay=False),
                     help="Another directory where cores are written (repeatable)."),
        click.option("--keep-cores", is_flag=True, help="Leave the raw cores in place after storing them."),
        click.option("--no-binaries", is_flag=True,
                     help="Do not bundle the executables, libraries and debug files the cores need."),
        click.option("--no-sources", is_flag=True,
                     help="Do not store the source files of the crashing threads' frames (sources/; only "
                          "files inside the job's checkout or the working directory are ever stored)."),
        click.option("--no-values", is_flag=True,
                     help="Leave the frames' arguments and locals out of crash.json and the pages (read "
                          "from the crashed program's memory): faster, and none of its data stored."),
        click.option("--upload", metavar="s3://BUCKET/PREFIX", default=None, callback=_check_upload,
                     help="Also upload the artifact directory to S3 (needs coredump[s3]; checked before "
                          "the step runs)."),
        click.option("--upload-timeout", type=click.FloatRange(0, min_open=True), default=None,
                     metavar="SECONDS", help="Give up the upload, retries included, after this long "
                                             "(default 600); the artifact directory stays."),
        click.option("--max-core-size", type=_Parsed("SIZE", parse_size), default=None,
                     help="A core larger than SIZE (e.g. 2G) is analyzed in full but stored slimmed "
                          "(stacks and what they point to; see `coredump slim`); one still larger is "
                          "not stored."),
        click.option("--expect", "expect", multiple=True, metavar="PATTERN",
                     help="A crash the job means to have: a signature glob or a fingerprint (repeatable; "
                          ".coredump-expect in the working directory lists more). Still explained and stored, "
                          "but no JUnit failure and no annotation. Death-test children are expected anyway."),
        click.option("--db", metavar="URL", default=None,
                     help="Also record the job in this crash database (sqlite:///PATH, postgresql://…; "
                          "default $COREDUMP_DB, else none). An unreachable one is a warning."),
        click.option("--mode", type=_Parsed("MODE", _parse_mode), default="0600", show_default=True,
                     help="Permission bits of the stored cores, crash.json, pages and bundled files "
                          "(directories get x where r is set: 0600 gives 0700). Cores hold the "
                          "process's memory and environment; widen only where the artifact store "
                          "controls access."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _harvest_options(output, core_dirs, keep_cores, no_binaries, max_core_size, upload=None, paths=(".",),
                     mode=0o600, expect=(), upload_timeout=None, db=None, no_sources=False, no_values=False):
    from coredump.capture.harvest import HarvestOptions

    analyze = None
    if no_values:
        from coredump.analysis import AnalyzeOptions

        analyze = AnalyzeOptions(values=False)
    return HarvestOptions(output=output, paths=tuple(paths), core_dirs=tuple(core_dirs),
                          keep_cores=keep_cores, bundle_binaries=not no_binaries, store_sources=not no_sources,
                          max_core_size=max_core_size, analyze_options=analyze, upload=upload, mode=mode,
                          expect=tuple(expect), upload_timeout=upload_timeout, db=db)


# allow_interspersed_args=False: COMMAND starts at the first argument that is no option of
# ours (`coredump run make -k`); an unknown option before it is a usage error, not the command.
@click.command(context_settings={"allow_interspersed_args": False})
@_store_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(command, **opts):
    """Run COMMAND with cores enabled; explain and store every core it leaves.

    Exits with COMMAND's own status (128+N when it was killed by signal N).
    Put `--` before COMMAND: coredump run -- make test
    """
    from coredump.capture.run import run as run_step

    status = run_step(list(command), opts["output"], opts["core_dirs"], lambda: _harvest_options(**opts))
    click.get_current_context().exit(status)


@click.command()
@click.option("--path", "paths", multiple=True, type=click.Path(file_okay=False),
              help="Directory tree to search (repeatable; default: the working directory).")
@click.option("--since", default=None, metavar="TIME",
              help="Only cores written after TIME: @EPOCH, ISO 8601, or a duration ago (2h).")
@click.option("--step-status", default=None, metavar="N", callback=_check_step_status,
              help="The exit status of the step that left the cores (0-255; empty: unknown). A death "
                   "test's child of a step that exited 0 is expected, as under `run`; recorded in "
                   "summary.json. It does not change harvest's own exit status.")
@_store_options
def harvest(paths, since, step_status, **opts):
    """Collect, explain and store cores an earlier step left (for on_fail / if: failure()).

    Exits 0 when it did its job, found cores or not; non-zero when it could not.
    """
    from coredump.capture.harvest import harvest as do_harvest

    try:
        when = parse_since(since) if since else 0.0
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    from coredump.errors import MissingFileError
    from coredump.report.sanitize import clean_text

    try:
        result = do_harvest(_harvest_options(paths=paths or (".",), **opts), since=when, exit_status=step_status)
    except MissingFileError as exc:
        click.echo(f"Error: {clean_text(exc)}", err=True)
        click.get_current_context().exit(1)
    if not result.records:
        click.echo("coredump: no cores found", err=True)
    for error in result.errors:
        click.echo(f"Error: {clean_text(error)}", err=True)
    click.get_current_context().exit(0 if result.ok else 1)


@click.command()
@click.option("-o", "--output", default="coredump-artifacts", show_default=True,
              type=click.Path(file_okay=False), help="The artifact directory to check.")
def doctor(output):
    """Say whether cores will be produced on this machine and where; fix each problem.

    Exits non-zero when cores would not be captured.
    """
    from coredump.capture.doctor import cores_capturable, diagnose, render_checks

    checks = diagnose(output=output)
    click.echo(render_checks(checks), nl=False)
    click.get_current_context().exit(0 if cores_capturable(checks) else 1)


@click.group()
def main():
    """coredump capture commands (standalone; the coredump command includes them)."""


main.add_command(run)
main.add_command(harvest)
main.add_command(doctor)

if __name__ == "__main__":
    main(prog_name="coredump")
