"""
Diff command
============

``coredump diff BASE NEW [--format text|json]``: the crashes of NEW that BASE did not have,
by fingerprint; exit status 1 when there are any (a CI gate: "no new crash signatures"), 2
when the comparison could not be made (diff(1)'s convention: a gate must tell "new crash"
from "no data"). ``coredump diff --baseline db[:BRANCH] NEW``: the same against everything
the crash database has seen on BRANCH.
"""

from __future__ import annotations

import sys

import click

from coredump.cli.errors import handle_errors
from coredump.jsondoc import dumps_document

__all__ = ("diff", "EXIT_NEW_CRASHES", "EXIT_TROUBLE")

EXIT_NEW_CRASHES = 1
EXIT_TROUBLE = 2


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(), metavar="BASE NEW")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--allow-missing-base", is_flag=True,
              help="Treat a BASE directory without summary.json as a run without crashes.")
@click.option("--baseline", metavar="db[:BRANCH]", default=None,
              help="Compare NEW (the one path) with every crash the crash database has seen on BRANCH "
                   "(default: the repository's default branch): new means never seen there.")
@click.option("--db", metavar="URL", default=None,
              help="The crash database of --baseline (default $COREDUMP_DB, else the XDG data file).")
@handle_errors(status=EXIT_TROUBLE)
def diff(paths, fmt, allow_missing_base, baseline, db):
    """Compare two runs' crashes (artifact directories or summary.json files) by fingerprint:
    new, gone and still present. A path that does not exist is a job without crashes (they
    write no artifact directory), with a warning. Exit status 1 when NEW has crashes BASE did
    not, 2 when the runs cannot be compared."""
    from coredump.report.text import render_diff_text
    from coredump.triage.diff import diff_paths, diff_to_dict

    want = 1 if baseline else 2
    if len(paths) != want:
        raise click.UsageError("give NEW with --baseline" if baseline else "give BASE and NEW (or --baseline db NEW)")
    extra = {}
    if baseline:
        result, extra = _against_history(baseline, db, paths[0])
    else:
        result = diff_paths(paths[0], paths[1], allow_missing_base)
    if fmt == "json":
        click.echo(dumps_document(dict(diff_to_dict(result), **extra)))
    else:
        click.echo(render_diff_text(result), nl=False)
    sys.exit(EXIT_NEW_CRASHES if result.has_new else 0)


def _against_history(baseline: str, db, new: str):
    from coredump.store.history.baseline import default_branch, diff_against_history, parse_baseline
    from coredump.store.history.reader import open_reader
    from coredump.store.history.url import resolve_url, shown_url

    branch = parse_baseline(baseline) or default_branch()
    url = resolve_url(db)
    with open_reader(url) as reader:
        result = diff_against_history(reader, new, branch, shown_url(url))
    return result, {"baseline": {"database": shown_url(url), "branch": branch}}
