"""The one ``Error: …`` line: cleaned like crash data, since messages quote file names."""

import os
import subprocess

from tests.cli import command
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
