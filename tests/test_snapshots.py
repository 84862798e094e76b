"""Snapshots of `coredump analyze` text and JSON output on fixed cores (the elfutils corpus:
cores nobody here made, so they never change). When the output format changes on purpose,
regenerate them with `make snapshots` and review the diff."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import coredump
from coredump.model import Frame, Thread, Trust
from coredump.report.text import _Style, _thread_lines

HERE = Path(__file__).resolve().parent
SNAPSHOTS = HERE / "snapshots"
# Resolved: the analysis writes absolute paths through the real directory, so a corpus
# reached through a symlink (a worktree beside it) must be substituted by its real path.
CORPUS = (HERE.parent.parent / "shared" / "corpus" / "elfutils").resolve()
UPDATE = os.environ.get("COREDUMP_UPDATE_SNAPSHOTS") == "1"
CASES = {
    "demangle": ("testfile-backtrace-demangle.core", "testfile-backtrace-demangle"),
    "backtrace-x86_64": ("backtrace.x86_64.core", "backtrace.x86_64.exec"),
    "test-core": ("test-core.core", "test-core.exec"),
}


# The subprocess runs in the corpus: it must import the code this test imported (a relative
# PYTHONPATH=. would name the corpus directory there).
_PYTHONPATH = os.pathsep.join([str(Path(coredump.__file__).resolve().parent.parent)]
                              + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])


def run(core, exe, fmt):
    out = subprocess.run([sys.executable, "-m", "coredump.cli.main", "analyze", "--format", fmt, "--exe", exe,
                          "--search-path", ".", core], cwd=CORPUS, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "NO_COLOR": "1", "COREDUMP_CACHE": "0", "PYTHONPATH": _PYTHONPATH})
    assert out.returncode == 0, out.stderr
    # The one machine-specific value: where the corpus lies.
    return out.stdout.replace(str(CORPUS), "<corpus>")


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_snapshot(name, fmt):
    if not CORPUS.is_dir():
        pytest.skip(f"the corpus is not beside the checkout ({CORPUS})")
    core, exe = CASES[name]
    got = run(core, exe, fmt)
    if fmt == "json":
        json.loads(got)
    path = SNAPSHOTS / f"{name}.{'txt' if fmt == 'text' else 'json'}"
    if UPDATE or not path.exists():
        path.write_text(got)
        if not UPDATE:
            pytest.fail(f"{path.name} did not exist and was written: review and commit it")
    assert got == path.read_text(), f"output differs from {path.name}: `make snapshots` if intended"


def test_omitted_frames_are_shown_where_the_numbering_jumps():
    frames = [Frame(i, 0x1000 + i, trust=Trust.CFI, function=f"f{i}") for i in (0, 1, 2, 90, 91)]
    lines = _thread_lines(0, Thread(1, {}, tuple(frames), truncated=True, frames_omitted=87), False, _Style(False))
    marker = next(i for i, line in enumerate(lines) if "87 frames omitted" in line)
    assert "f2" in lines[marker - 1] and "f90" in lines[marker + 1]
