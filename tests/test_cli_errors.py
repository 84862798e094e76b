"""How commands fail: one ``Error:`` line, or nothing at all when the reader went away."""

import pytest

from tests.cli import command
from tests.closedpipe import run_into_closed_pipe


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_analyze_into_a_closed_pipe_ends_quietly(make_core, fmt):
    """``coredump analyze core | head -1``: no "internal error: BrokenPipeError", no traceback."""
    proc = run_into_closed_pipe(command("analyze", "--format", fmt, str(make_core("O0", "segv"))))
    assert proc.returncode == 1  # click's status for EPIPE, as Python's SIGPIPE note advises
    assert proc.stderr == ""

