"""The wrapper's stderr lines: a reader that went away never stops a harvest."""

import json

import pytest

from tests.cli import command
from tests.closedpipe import run_into_closed_pipe
from tests.cores import BUILD, build_samples, core_skip_reason


def test_run_into_a_closed_stderr_keeps_the_steps_status_and_stores_the_core(tmp_path):
    """``coredump run -- step 2>&1 | head -1``: every line the wrapper prints gets EPIPE."""
    reason = core_skip_reason()
    if reason:
        pytest.skip(reason)
    build_samples()
    proc = run_into_closed_pipe(command("run", "--", str(BUILD / "O0" / "segv")), stream="stderr", cwd=tmp_path)
    assert proc.returncode == 139  # the step's SIGSEGV, not the wrapper's BrokenPipeError
    summary = json.loads((tmp_path / "coredump-artifacts" / "summary.json").read_text())
    crash, = summary["crashes"]
    assert crash["stored"] and (tmp_path / "coredump-artifacts" / crash["core"]).is_file()
    assert (tmp_path / "coredump-artifacts" / "index.html").is_file()
