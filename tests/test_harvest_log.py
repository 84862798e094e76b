"""What a CI log shows of a harvest: each crash explained as soon as it is analyzed (before
the slow compression), identical signatures explained once and counted, one tally line at
the end with paths relative to the working directory, and plain progress lines for long work."""

from __future__ import annotations

import os
import signal
import subprocess

from coredump.capture.compress import compress_file
from coredump.capture.harvest import HarvestOptions
from coredump.capture.opened import look_at
from coredump.capture.progress import LogProgress
from coredump.capture.store_core import process_core
from coredump.store.artifacts import ArtifactDir
from tests.cli import command
from tests.cores import BUILD, ROOT

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def test_the_explanation_comes_before_the_core_is_compressed(tmp_path, make_core):
    core = tmp_path / "core"
    core.write_bytes(make_core("O0", "segv").read_bytes())
    artifacts = ArtifactDir(str(tmp_path / "out"))
    when = {}

    def echo(line):
        if "SIGSEGV in" in line and "explained" not in when:
            when["explained"] = list((tmp_path / "out").rglob("core.zst")) if (tmp_path / "out").exists() else []
        when.setdefault("lines", []).append(line)

    record = process_core(str(core), artifacts, HarvestOptions(), echo, found=look_at(str(core)))
    assert record.stored and when["explained"] == []  # printed while no compressed copy existed yet
    assert (tmp_path / "out" / record.core).is_file()


def test_identical_crashes_are_explained_once_and_tallied(tmp_path):
    steps = [f"(mkdir s{i} && cd s{i} && exec {BUILD / 'O0' / 'segv'})" for i in range(3)]
    steps.append(f"(mkdir f && cd f && exec {BUILD / 'O0' / 'fpe'})")
    r = subprocess.run(command("run", "--", "sh", "-c", " ; ".join(steps)), cwd=tmp_path, env=ENV,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 128 + signal.SIGFPE
    log = [line for line in r.stderr.splitlines() if line.startswith("coredump:")]
    explained = [line for line in log if line.startswith("coredump: SIGSEGV in ")]
    assert len(explained) == 1, log  # three crashes, one explanation
    assert sum(line.startswith("coredump: SIGFPE in ") for line in log) == 1
    assert any(line.startswith("coredump:   ×3 SIGSEGV in store_value") for line in log), log
    assert log[-1] == "coredump: 4 crashes, 2 signatures; artifacts in coredump-artifacts/"
    assert not [line for line in log if str(tmp_path) in line]  # every path relative to the step's directory
    assert "coredump: report: coredump-artifacts/index.html" in log


def test_log_progress_prints_every_interval_and_not_for_short_work():
    now = [100.0]
    lines = []
    progress = LogProgress(lines.append, "compressing core", interval=5.0, clock=lambda: now[0])
    progress(1 << 20, 100 << 20)
    now[0] += 4.9
    progress(2 << 20, 100 << 20)
    assert lines == []  # less than the interval: a quick job prints nothing
    now[0] += 0.2
    progress(50 << 20, 100 << 20)
    now[0] += 1.0
    progress(60 << 20, 100 << 20)
    now[0] += 5.0
    progress(90 << 20, 100 << 20)
    assert lines == ["coredump: compressing core: 50.0 MiB of 100.0 MiB (50%)",
                     "coredump: compressing core: 90.0 MiB of 100.0 MiB (90%)"]


def test_compression_reports_its_progress(tmp_path, make_core):
    core = make_core("O0", "segv")
    seen = []
    result = compress_file(str(core), str(tmp_path / "c.zst"), progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (result.size, core.stat().st_size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
