"""How commands fail: one ``Error:`` line, cleaned like crash data since messages quote file
names, or nothing at all when the reader went away."""

import os
import subprocess

import pytest

from tests.cli import command
from tests.closedpipe import run_into_closed_pipe
from tests.cores import ROOT

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def test_error_line_quotes_a_name_without_its_controls(tmp_path):
    name = tmp_path / "core.x\x1b]0;title\x07\r\n::error::forged"
    name.write_bytes(b"\x7fELF not a core")
    out = subprocess.run(command("analyze", str(name)), env=ENV, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    (line,) = out.stderr.splitlines()
    assert line.startswith("Error: ") and "forged" in line
    assert not set(out.stderr) & set("\x1b\x07\r")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_analyze_into_a_closed_pipe_ends_quietly(make_core, fmt):
    """``coredump analyze core | head -1``: no "internal error: BrokenPipeError", no traceback."""
    proc = run_into_closed_pipe(command("analyze", "--format", fmt, str(make_core("O0", "segv"))))
    assert proc.returncode == 1  # click's status for EPIPE, as Python's SIGPIPE note advises
    assert proc.stderr == ""
