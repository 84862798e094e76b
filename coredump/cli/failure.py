"""
Failure lines
=============

The one ``Error: …`` line a command prints for a failure, and the guard the click-free entry
paths (``run``, ``analyze``) run a body under: the same lines and exit statuses as
``cli.errors.handle_errors`` gives a click command, without importing click.
"""

from __future__ import annotations

import os
import sys

__all__ = ("EXIT_ERROR", "failure_line", "run_guarded")

EXIT_ERROR = 1


def failure_line(exc: BaseException) -> str:
    """The line for `exc`: a ``CoreDumpError``'s message, or a bug named as internal (its
    text cleaned like crash data: messages quote names from cores and documents)."""
    from coredump.errors import CoreDumpError
    from coredump.report.sanitize import clean_text  # on the error path only

    if isinstance(exc, CoreDumpError):
        return f"Error: {clean_text(exc)}"
    return (f"Error: internal error: {type(exc).__name__}: {clean_text(exc)} "
            "(set COREDUMP_DEBUG=1 for details)")


def run_guarded(body, status: int = EXIT_ERROR) -> int:
    """`body()`'s exit status (0 when it returns None); a failure is one line on stderr and
    `status`, an interrupt 130, a closed stdout (EPIPE) a quiet 1 as click's main() gives."""
    try:
        return body() or 0
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except BrokenPipeError:
        # The reader went away: silence the final flush (Python's "Broken pipe" note at exit).
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 -- lives until exit
        return 1
    except Exception as exc:  # never a traceback for the user; COREDUMP_DEBUG=1 shows it
        from coredump.errors import CoreDumpError

        if not isinstance(exc, CoreDumpError) and os.environ.get("COREDUMP_DEBUG"):
            raise
        print(failure_line(exc), file=sys.stderr)
        return status
