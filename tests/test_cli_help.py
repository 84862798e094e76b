"""The command line's conventions: help that does not cut summaries, completion, --version,
python -m coredump."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.cli import command
from tests.cores import ROOT

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}


def test_top_level_help_gives_every_summary_whole():
    out = subprocess.run(command("--help"), capture_output=True, text=True, env=ENV, timeout=60)
    assert out.returncode == 0
    commands = out.stdout.split("Commands:", 1)[1]
    assert "..." not in commands
    flat = " ".join(commands.split())
    assert "Explain one crash (a core, a core.zst or a crash directory): signal, faulting address" in flat
    assert "Run COMMAND with cores enabled; explain and store every core it leaves." in flat


def test_shell_completion_completes_commands_and_options():
    env = dict(ENV, _COREDUMP_COMPLETE="bash_complete", COMP_WORDS="coredump an", COMP_CWORD="1")
    out = subprocess.run(command(), capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.split() == ["plain,analyze"]
    env.update(COMP_WORDS="coredump run --keep", COMP_CWORD="2")
    out = subprocess.run(command(), capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.split() == ["plain,--keep-cores"]


def test_python_m_coredump_and_version():
    from coredump import __version__

    out = subprocess.run([sys.executable, "-m", "coredump", "--version"], capture_output=True, text=True,
                         env=ENV, cwd=ROOT, timeout=60)
    assert out.returncode == 0 and __version__ in out.stdout
