"""``coredump harvest`` and the harvest pipeline on real cores."""

import json
import os
import subprocess

import pytest

from coredump.capture.core_pattern import parse_core_pattern
from coredump.capture.harvest import HarvestOptions, format_size, harvest
from tests.cli import command
from tests.cores import BUILD, ROOT, core_skip_reason, run_crash

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def crash_in(directory, program, variant="O0"):
    directory.mkdir(parents=True, exist_ok=True)
    rc, core = run_crash([str(BUILD / variant / program)], directory)
    assert core is not None, f"{program} exited {rc} without a core"
    return core


def coredump_harvest(cwd, *args):
    return subprocess.run(command("harvest", *args), cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def cores_ok(make_core):
    make_core("O0", "segv")  # builds the samples; skips where no core can be made


def test_harvest_after_the_fact(tmp_path, cores_ok):
    a = crash_in(tmp_path / "job" / "a", "segv")
    b = crash_in(tmp_path / "job" / "b", "abort_assert")
    r = coredump_harvest(tmp_path, "--path", "job")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "coredump-artifacts" / "summary.json").read_text())
    assert summary["command"] is None and summary["exit_status"] is None
    assert sorted(c["signal"] for c in summary["crashes"]) == ["SIGABRT", "SIGSEGV"]
    assert sorted(c["source"] for c in summary["crashes"]) == sorted([str(a), str(b)])
    assert not a.exists() and not b.exists()


def test_no_cores_is_success_and_writes_nothing(tmp_path):
    r = coredump_harvest(tmp_path)
    assert r.returncode == 0 and "no cores found" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_since_skips_older_cores(tmp_path, cores_ok):
    core = crash_in(tmp_path / "old", "segv")
    os.utime(core, (1_000_000_000, 1_000_000_000))
    r = coredump_harvest(tmp_path, "--since", "1h")
    assert r.returncode == 0 and "no cores found" in r.stderr and core.exists()
    r = coredump_harvest(tmp_path, "--since", "@999999999")
    assert r.returncode == 0 and not core.exists()


def test_bad_since_is_a_usage_error(tmp_path):
    r = coredump_harvest(tmp_path, "--since", "yesterday-ish")
    assert r.returncode == 2 and "--since" in r.stderr


def test_unwritable_output_fails_and_keeps_the_core(tmp_path, cores_ok):
    core = crash_in(tmp_path, "segv")
    (tmp_path / "blocker").write_text("")
    r = coredump_harvest(tmp_path, "-o", "blocker/out")
    assert r.returncode == 1 and "Error:" in r.stderr
    assert core.exists()


def test_a_core_that_cannot_be_analyzed_is_still_stored(tmp_path, make_core):
    real = make_core("O0", "segv")
    broken = tmp_path / "core.broken"
    broken.write_bytes(real.read_bytes()[:200])  # an ELF ET_CORE header, then nothing
    result = harvest(HarvestOptions(output=str(tmp_path / "out"), paths=(str(tmp_path),)),
                     echo=lambda line: None)
    assert result.ok
    (record,) = result.records
    assert record.stored
    assert record.crash_json is not None or "analysis failed" in record.note  # a Crash with warnings is fine
    assert not broken.exists()
    from coredump.capture.compress import decompress_file

    decompress_file(str(tmp_path / "out" / record.core), str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == real.read_bytes()[:200]


def test_summary_keeps_earlier_crashes(tmp_path, cores_ok):
    opts = HarvestOptions(output=str(tmp_path / "out"), paths=(str(tmp_path / "job"),))
    crash_in(tmp_path / "job" / "1", "segv")
    first = harvest(opts, echo=lambda line: None)
    crash_in(tmp_path / "job" / "2", "fpe")
    second = harvest(opts, echo=lambda line: None)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [c["id"] for c in summary["crashes"]] == [first.records[0].id, second.records[0].id]


def test_bundled_files_are_the_binaries_the_core_names(tmp_path, cores_ok):
    crash_in(tmp_path / "job", "uselib")
    result = harvest(HarvestOptions(output=str(tmp_path / "out"), paths=(str(tmp_path / "job"),)),
                     echo=lambda line: None)
    files = {os.path.basename(f): tmp_path / "out" / f for f in result.records[0].files}
    assert files["uselib"].read_bytes() == (BUILD / "O0" / "uselib").read_bytes()
    assert files["libcrash.so"].read_bytes() == (BUILD / "O0" / "libcrash.so").read_bytes()
    crash = json.loads((tmp_path / "out" / result.records[0].crash_json).read_text())
    build_ids = {m["path"]: m["build_id"] for m in crash["modules"]}
    assert files["uselib"].parent.name == build_ids[str(BUILD / "O0" / "uselib")]


def test_summary_printed_for_each_crash(tmp_path, cores_ok):
    crash_in(tmp_path / "job", "fpe")
    lines = []
    harvest(HarvestOptions(output=str(tmp_path / "out"), paths=(str(tmp_path / "job"),)), echo=lines.append)
    text = "\n".join(lines)
    assert "SIGFPE" in text and "artifacts:" in text and "fpe-" in text


def test_piped_pattern_is_explained(tmp_path):
    lines = []
    result = harvest(HarvestOptions(output=str(tmp_path / "out"), paths=(str(tmp_path),)),
                     pattern=parse_core_pattern("|/opt/crash-handler %p"), echo=lines.append)
    assert result.records == [] and not (tmp_path / "out").exists()
    text = "\n".join(lines)
    assert "/opt/crash-handler" in text and "--core-dir" in text and "core_pattern" in text


def test_piped_pattern_one_line_when_the_step_succeeded(tmp_path):
    """A passing step may hide a crashed grandchild: a pipe is always said, in one line."""
    lines = []
    harvest(HarvestOptions(output=str(tmp_path / "out")), pattern=parse_core_pattern("|/opt/h %p"),
            echo=lines.append, cores=[], step_failed=False)
    (line,) = lines
    assert line.startswith("coredump: core_pattern pipes cores to /opt/h; none could be read back: ")
    assert "--core-dir" in line


def test_format_size():
    assert [format_size(n) for n in (5, 2048, 232038400)] == ["5 B", "2.0 KiB", "221.3 MiB"]


def test_qemu_guest_core_is_the_crash_and_the_emulators_is_labelled(tmp_path, make_qemu_core):
    """`coredump run -- qemu-aarch64 ...`: qemu writes the guest's core, then dies of the
    same signal, and the kernel may write a core of qemu itself with the same pid."""
    make_qemu_core("O0", "segv")  # builds the aarch64 samples; skips without qemu
    exe = BUILD / "aarch64-O0" / "segv"
    r = subprocess.run(command("run", "--", "qemu-aarch64", "-L", "/usr/aarch64-linux-gnu",
                                               str(exe)),
                       cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 139, r.stderr
    crashes = json.loads((tmp_path / "coredump-artifacts" / "summary.json").read_text())["crashes"]
    guest = next(c for c in crashes if os.path.basename(c["source"]).startswith("qemu_segv_"))
    assert guest["signature"].startswith("SIGSEGV in store_value") and guest["note"] is None
    crash = json.loads((tmp_path / "coredump-artifacts" / guest["crash_json"]).read_text())
    assert crash["process"]["arch"] == "aarch64"
    hosts = [c for c in crashes if c is not guest]
    if core_skip_reason() is None:  # the kernel writes qemu's own core into the working directory
        (host,) = hosts
        assert host["executable"].endswith("qemu-aarch64")
        assert host["note"] == f"core of the emulator qemu-aarch64; the guest's core is {guest['id']}"
        assert host["note"] in r.stderr
    else:
        assert hosts == []


def test_summary_records_size_and_sha256_of_each_stored_file(tmp_path, cores_ok):
    import hashlib

    crash_in(tmp_path / "job", "uselib")
    out = tmp_path / "out"
    harvest(HarvestOptions(output=str(out), paths=(str(tmp_path / "job"),)), echo=lambda line: None)
    entry = json.loads((out / "summary.json").read_text())["crashes"][0]
    core = out / entry["core"]
    assert entry["size"] == core.stat().st_size
    assert entry["sha256"] == hashlib.sha256(core.read_bytes()).hexdigest()
    assert set(entry["file_digests"]) == set(entry["files"]) and len(entry["files"]) >= 2
    for rel, digest in entry["file_digests"].items():
        data = (out / rel).read_bytes()
        assert digest == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize("cmd", ["run", "harvest"])
def test_max_core_size_help_says_larger_cores_are_stored_slimmed(cmd):
    out = subprocess.run(command(cmd, "--help"), env=ENV, capture_output=True, text=True, timeout=60)
    text = " ".join(out.stdout.split())
    assert out.returncode == 0 and "stored slimmed" in text and "Store no core larger" not in text


@pytest.mark.parametrize("flag", ["--path", "--core-dir"])
def test_missing_search_directory_is_an_error(tmp_path, flag):
    r = coredump_harvest(tmp_path, flag, "no-such-dir")
    assert r.returncode == 1
    assert r.stderr == f"Error: {flag} no-such-dir: no such directory\n"


def test_log_lines_are_cleaned_like_crash_data(tmp_path, make_core):
    """A core's name is chosen by whoever crashed (core_pattern's %e is the comm): the log
    names it without its escape sequences or line breaks."""
    job = tmp_path / "job"
    job.mkdir()
    evil = job / "core.x\x1b]0;title\x07\r\n::error::forged"
    evil.write_bytes(make_core("O0", "segv").read_bytes()[:200])  # stored, not analyzable
    out = coredump_harvest(tmp_path, "--path", str(job), "-o", str(tmp_path / "art"))
    assert out.returncode == 0, out.stderr
    assert "forged" in out.stderr
    assert not any(line.startswith("::") for line in out.stderr.splitlines())
    assert not set(out.stderr) & set("\x1b\x07\r")
