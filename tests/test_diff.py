"""coredump diff on artifact directories of two runs made from real cores."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from coredump.analysis import analyze_core
from coredump.cli.triage import diff
from coredump.errors import CoreDumpError, MissingFileError
from coredump.report.json import crash_to_dict
from coredump.triage.diff import diff_paths, load_crashes


def _write_run(root: Path, crashes, with_fingerprint=True) -> Path:
    """An artifact directory as `coredump run` lays it out: <id>/crash.json and summary.json."""
    root.mkdir(parents=True)
    entries = []
    for i, crash in enumerate(crashes):
        cid = f"crash-{i}"
        (root / cid).mkdir()
        data = crash_to_dict(crash)
        (root / cid / "crash.json").write_text(json.dumps(data))
        entry = {"id": cid, "signature": crash.signature, "signal": crash.signal.name,
                 "executable": crash.process.executable, "crash_json": f"{cid}/crash.json"}
        if with_fingerprint:
            entry["fingerprint"] = crash.fingerprint
        entries.append(entry)
    (root / "summary.json").write_text(json.dumps({"schema": "coredump.summary/1", "crashes": entries}))
    return root


@pytest.fixture(scope="module")
def runs(make_core, tmp_path_factory):
    """BASE (main's last green job) had segv and fpe; NEW (this job) has segv (built -O2 this
    time), abort_assert twice, and no fpe."""
    a = {p: analyze_core(str(make_core("O0", p))) for p in ("segv", "fpe", "abort_assert")}
    segv_o2 = analyze_core(str(make_core("O2", "segv")))
    root = tmp_path_factory.mktemp("runs")
    base = _write_run(root / "base", [a["segv"], a["fpe"]])
    new = _write_run(root / "new", [segv_o2, a["abort_assert"], a["abort_assert"]])
    return base, new, a


def test_new_gone_and_still(runs):
    base, new, a = runs
    d = diff_paths(base, new)
    assert [e.fingerprint for e in d.new] == [a["abort_assert"].fingerprint]
    assert d.new[0].new_ids == ["crash-1", "crash-2"] and d.new[0].base_ids == []
    assert [e.fingerprint for e in d.gone] == [a["fpe"].fingerprint]
    assert [e.signature for e in d.still] == [a["segv"].signature]
    assert d.has_new


def test_cli_exit_status_is_1_when_new_crashes(runs):
    base, new, a = runs
    result = CliRunner().invoke(diff, [str(base), str(new)])
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == "new crashes: 1, gone: 1, still present: 1"
    assert f"NEW    {a['abort_assert'].fingerprint}  {a['abort_assert'].signature}  (2 crashes)" in result.output


def test_cli_exit_status_is_0_without_new_crashes(runs, tmp_path):
    base, _, a = runs
    fixed = _write_run(tmp_path / "fixed", [a["segv"]])
    result = CliRunner().invoke(diff, [str(base / "summary.json"), str(fixed / "summary.json")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("new crashes: 0, gone: 1, still present: 1")


def test_cli_json(runs):
    base, new, a = runs
    result = CliRunner().invoke(diff, [str(base), str(new), "--format", "json"])
    data = json.loads(result.output)
    assert data["schema"] == "coredump.diff/1"
    assert [e["fingerprint"] for e in data["new"]] == [a["abort_assert"].fingerprint]
    assert data["new"][0]["new_count"] == 2 and data["new"][0]["classification"] == "assertion"
    assert [e["signature"] for e in data["gone"]] == [a["fpe"].signature]
    assert data["still"][0]["base_count"] == data["still"][0]["new_count"] == 1


def test_fingerprint_read_from_crash_json_when_summary_lacks_it(runs, tmp_path):
    _, _, a = runs
    old = _write_run(tmp_path / "old", [a["segv"]], with_fingerprint=False)
    assert list(load_crashes(old)) == [a["segv"].fingerprint]


def test_missing_base(runs, tmp_path):
    _, new, _ = runs
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MissingFileError):  # a directory, but not an artifact directory
        diff_paths(empty, new)
    d = diff_paths(empty, new, allow_missing_base=True)
    assert len(d.new) == 2 and d.warnings
    result = CliRunner().invoke(diff, [str(empty), str(new)])
    assert result.exit_code == 2 and result.output.startswith("Error: ")  # trouble, not "new crashes"


def test_a_path_that_does_not_exist_is_a_job_without_crashes(runs, tmp_path):
    """run and harvest write no artifact directory when nothing crashed: main's last green job
    and this green job leave nothing to download, and the gate must still work."""
    base, new, _ = runs
    d = diff_paths(tmp_path / "never-written", new)
    assert len(d.new) == 2 and any("does not exist" in w for w in d.warnings)
    assert CliRunner().invoke(diff, [str(tmp_path / "never-written"), str(new)]).exit_code == 1
    green = CliRunner().invoke(diff, [str(base), str(tmp_path / "green-job")])
    assert green.exit_code == 0, green.output  # crashes gone, none new
    assert "does not exist" in green.output


def test_not_a_summary(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"schema": "other/1"}))
    with pytest.raises(CoreDumpError, match="not a coredump.summary/1"):
        load_crashes(tmp_path)


def _coredump_run(out: Path, program: str, variant: str = "O2") -> None:
    """One real `coredump run` of a crashing sample, stored into the artifact directory `out`."""
    import os
    import subprocess
    import sys

    from tests import cores

    cores.build_samples()
    env = dict(os.environ, PYTHONPATH=str(cores.ROOT))
    proc = subprocess.run([sys.executable, "-m", "coredump.cli.main", "run", "-o", str(out), "--no-binaries", "--",
                           str(cores.BUILD / variant / program)], cwd=out.parent, env=env,
                          capture_output=True, timeout=300)
    assert proc.returncode >= 128, proc.stderr.decode(errors="replace")


def test_diff_of_two_coredump_run_jobs(make_core, tmp_path):
    """main's last green job crashed in segv and fpe; this job in segv and abort_assert."""
    (tmp_path / "main").mkdir()
    (tmp_path / "pr").mkdir()
    base, new = tmp_path / "main" / "coredump-artifacts", tmp_path / "pr" / "coredump-artifacts"
    for program in ("segv", "fpe"):
        _coredump_run(base, program, "O0")
    for program in ("segv", "abort_assert"):
        _coredump_run(new, program, "O2")
    result = CliRunner().invoke(diff, [str(base), str(new), "--format", "json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert [e["signature"] for e in data["new"]] == ["SIGABRT in check_balance < withdraw < main"]
    assert [e["signature"] for e in data["gone"]] == ["SIGFPE in average < report < main"]
    assert [e["signature"] for e in data["still"]] == ["SIGSEGV in store_value < fill_list < build"]


# A signature that would end the line and forge a GitHub workflow command (and drive a
# terminal: OSC title, CSI 8-bit, BEL, bidi override).
FORGED = "SIGSEGV in f\r\n::error file=x.c,line=1::forged\x1b]0;title\x07\x9b31m\u202e"


def _assert_clean(output: str):
    assert not any(line.startswith("::") for line in output.splitlines()), output
    assert not set(output) & set("\x1b\x07\r\x9b\u202e"), repr(output)


def test_diff_text_sanitizes_crash_data(tmp_path):
    """Signature, id and fingerprint from a crafted summary.json (and one signature read
    from crash.json) are printed like `analyze` prints crash data."""
    new = tmp_path / "new"
    (new / "c2").mkdir(parents=True)
    (new / "c2" / "crash.json").write_text(json.dumps({"schema": "coredump.crash/1", "signature": FORGED}))
    crashes = [{"id": "c1\n::error::id", "signature": FORGED, "fingerprint": "ab\r\n::error::fp\x1b[2J"},
               {"id": "c2", "crash_json": "c2/crash.json"}]
    (new / "summary.json").write_text(json.dumps({"schema": "coredump.summary/1", "crashes": crashes}))
    result = CliRunner().invoke(diff, [str(tmp_path / "absent"), str(new)])
    assert result.exit_code == 1, result.output
    assert "forged" in result.output  # shown, on the crash's own line
    _assert_clean(result.output)
