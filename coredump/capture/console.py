"""
Console
=======

The wrapper's own lines on stderr. A reader that went away (``coredump run … 2>&1 | head -1``)
must not stop a harvest half-way or change the step's exit status: after EPIPE the lines go
to /dev/null and the work goes on.
"""

from __future__ import annotations

import os
import sys

__all__ = ("echo",)


def echo(line: str) -> None:
    """Print `line` on stderr, cleaned like crash data (lines quote core names and text from
    cores); a closed reader silences the rest instead of raising."""
    from coredump.report.sanitize import clean_text  # only when there is something to say

    try:
        print(clean_text(line), file=sys.stderr, flush=True)
    except BrokenPipeError:
        # The Python documentation's advice for EPIPE (signal module, "Note on SIGPIPE"):
        # point the descriptor at /dev/null, so neither later lines nor the interpreter's
        # final flush fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stderr.fileno())
        finally:
            os.close(devnull)
