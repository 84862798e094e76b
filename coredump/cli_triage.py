"""
Diff command
============

``coredump diff BASE NEW [--format text|json]``: the crashes of NEW that BASE did not have,
by fingerprint; exit status 1 when there are any (a CI gate: "no new crash signatures").
"""

from __future__ import annotations

import json
import sys

import click

from coredump.cli_errors import handle_errors

__all__ = ("diff", "EXIT_NEW_CRASHES")

EXIT_NEW_CRASHES = 1


@click.command()
@click.argument("base", type=click.Path())
@click.argument("new", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--allow-missing-base", is_flag=True,
              help="Treat a BASE without summary.json as a run without crashes.")
@handle_errors
def diff(base, new, fmt, allow_missing_base):
    """Compare two runs' crashes (artifact directories or summary.json files) by fingerprint:
    new, gone and still present. Exit status 1 when NEW has crashes BASE did not."""
    from coredump.triage.diff import diff_paths, diff_to_dict, render_diff_text

    result = diff_paths(base, new, allow_missing_base)
    if fmt == "json":
        click.echo(json.dumps(diff_to_dict(result), indent=2, ensure_ascii=False))
    else:
        click.echo(render_diff_text(result), nl=False)
    sys.exit(EXIT_NEW_CRASHES if result.has_new else 0)
