"""
Bundle commands
===============

``coredump gdb`` (open a crash in gdb with its bundled files) and ``coredump slim`` (write a
small core that keeps what a backtrace needs); added to the ``coredump`` group by ``cli.main``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import click

from coredump.cli.errors import handle_errors
from coredump.errors import MissingFileError
from coredump.report.sanitize import clean_text, show_controls

__all__ = ("gdb", "slim")


@click.command("gdb", context_settings={"ignore_unknown_options": True})
@click.argument("path", type=click.Path())
@click.option("--exe", type=click.Path(dir_okay=False), help="The executable (overrides the bundled one).")
@click.option("--gdb", "gdb_path", default="gdb", show_default=True, help="The gdb to run.")
@click.option("--print-only", is_flag=True,
              help="Print the gdb command and keep its link directory instead of running it.")
@click.argument("gdb_args", nargs=-1, type=click.UNPROCESSED)
@handle_errors
def gdb(path, exe, gdb_path, print_only, gdb_args):
    """Open a crash (a crash directory, a core or a core.zst) in gdb with the bundled
    executable, libraries and debug files. Arguments after -- go to gdb."""
    from coredump.store.gdb_handoff import prepare_gdb

    if not print_only and shutil.which(gdb_path) is None:
        raise MissingFileError(f"{gdb_path}: gdb is not installed (use --print-only to see the command)")
    session = prepare_gdb(path, gdb=gdb_path, exe=exe, extra=gdb_args)
    for w in session.warnings:
        click.echo(f"warning: {clean_text(w)}", err=True)
    # Paths in the command come from the core's NT_FILE names: shown, never obeyed.
    if print_only:
        click.echo(show_controls(session.command, keep_newlines=False))
        click.echo(f"(links and core kept in {session.workdir}; remove it when done)", err=True)
        return
    click.echo(show_controls(session.command, keep_newlines=False), err=True)
    try:
        rc = subprocess.call(session.argv)
    finally:
        session.cleanup()
    sys.exit(rc)


@click.command("slim")
@click.argument("core", type=click.Path())
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="Where to write the slim core.")
@handle_errors
def slim(core, output):
    """Write a small core that keeps the notes, the stacks, the memory registers and stack
    words point into, and each module's ELF headers; gdb still gives the same backtrace.
    CORE is what analyze takes: a core, a core.zst or a crash directory."""
    import os

    from coredump.errors import StorageError
    from coredump.store.bundle import find_crash_input, open_input
    from coredump.store.slim import slim_core

    original = find_crash_input(core).core  # a crash directory's core.zst, the file itself otherwise
    if os.path.exists(output) and os.path.samefile(original, output):
        raise StorageError(f"{output} is the input core {original}: slim would replace the full core; "
                           "write it to another file")
    with open_input(core) as (core_path, _overrides):
        result = slim_core(core_path, output)
    for w in result.warnings:
        click.echo(f"warning: {clean_text(w)}", err=True)
    click.echo(f"{output}: {result.size} bytes, {result.ratio:.1f}x smaller than {core} "
               f"({result.kept_segments} of {result.segments} segments keep bytes)")
