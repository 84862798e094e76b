"""
Diff command
============

``coredump diff BASE NEW [--format text|json]``: the crashes of NEW that BASE did not have,
by fingerprint; exit status 1 when there are any (a CI gate: "no new crash signatures"), 2
when the comparison could not be made (diff(1)'s convention: a gate must tell "new crash"
from "no data").
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
@click.argument("base", type=click.Path())
@click.argument("new", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--allow-missing-base", is_flag=True,
              help="Treat a BASE directory without summary.json as a run without crashes.")
@handle_errors(status=EXIT_TROUBLE)
def diff(base, new, fmt, allow_missing_base):
    """Compare two runs' crashes (artifact directories or summary.json files) by fingerprint:
    new, gone and still present. A path that does not exist is a job without crashes (they
    write no artifact directory), with a warning. Exit status 1 when NEW has crashes BASE did
    not, 2 when the runs cannot be compared."""
    from coredump.report.text import render_diff_text
    from coredump.triage.diff import diff_paths, diff_to_dict

    result = diff_paths(base, new, allow_missing_base)
    if fmt == "json":
        click.echo(dumps_document(diff_to_dict(result)))
    else:
        click.echo(render_diff_text(result), nl=False)
    sys.exit(EXIT_NEW_CRASHES if result.has_new else 0)
