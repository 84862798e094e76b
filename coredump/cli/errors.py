"""
CLI errors
==========

How every command reports failure: a ``CoreDumpError`` (or any bug) becomes one ``Error: …``
line on stderr and a non-zero exit status, never a traceback; the line is cleaned like crash
data, since messages quote names from cores and documents; a closed stdout (EPIPE) is a quiet
exit. Its own module so that command modules can use it without importing the command group.
"""

from __future__ import annotations

import functools
import os
import sys

import click

from coredump.cli.failure import EXIT_ERROR, failure_line
from coredump.errors import CoreDumpError

__all__ = ("EXIT_ERROR", "handle_errors")


def handle_errors(func=None, *, status: int = EXIT_ERROR):
    """Run a command body; a CoreDumpError (or any bug) becomes one line on stderr and exit
    `status` (``@handle_errors(status=2)`` for a command whose 1 means something else)."""
    if func is None:
        return functools.partial(handle_errors, status=status)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except CoreDumpError as exc:
            click.echo(failure_line(exc), err=True)
            sys.exit(status)
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except BrokenPipeError:
            # The reader went away (`coredump ls … | head -1`): click's main() ends quietly
            # with status 1 and silences the final flush, as a CLI killed by SIGPIPE would be.
            raise
        except Exception as exc:  # never a traceback for the user; COREDUMP_DEBUG=1 shows it
            if os.environ.get("COREDUMP_DEBUG"):
                raise
            click.echo(failure_line(exc), err=True)
            sys.exit(status)

    return wrapper
