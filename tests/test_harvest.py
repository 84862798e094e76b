"""``coredump harvest`` and the harvest pipeline on real cores."""

import json
import os
import shutil
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


def _modes(root):
    import stat

    out = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(top, name)
            out[os.path.relpath(p, root)] = stat.S_IMODE(os.lstat(p).st_mode)
    return out


@pytest.mark.parametrize("args, file_mode, dir_mode", [((), 0o600, 0o700), (("--mode", "0644"), 0o644, 0o755)])
def test_stored_files_are_private_unless_mode_says(tmp_path, cores_ok, args, file_mode, dir_mode):
    """A core holds the environment (tokens): the kernel writes it 0600, and so do we (#13 item 6)."""
    crash_in(tmp_path / "job", "uselib")
    r = coredump_harvest(tmp_path, "--path", "job", *args)
    assert r.returncode == 0, r.stderr
    modes = _modes(tmp_path / "coredump-artifacts")
    assert {"summary.json", "index.html", "junit.xml"} <= set(modes)
    for rel, mode in modes.items():
        is_dir = (tmp_path / "coredump-artifacts" / rel).is_dir()
        assert mode == (dir_mode if is_dir else file_mode), rel
    assert any(rel.endswith("core.zst") for rel in modes) and any(rel.startswith("files/") for rel in modes)


def test_run_takes_mode_too(tmp_path, cores_ok):
    r = subprocess.run(command("run", "--mode", "0640", "--", str(BUILD / "O0" / "segv")), cwd=tmp_path, env=ENV,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 139, r.stderr
    modes = _modes(tmp_path / "coredump-artifacts")
    assert {m for rel, m in modes.items() if rel.endswith((".zst", ".json"))} == {0o640}
    assert {m for rel, m in modes.items() if (tmp_path / "coredump-artifacts" / rel).is_dir()} == {0o750}


def test_bad_mode_is_a_usage_error(tmp_path):
    r = coredump_harvest(tmp_path, "--mode", "0400")
    assert r.returncode == 2 and "keep the owner's read and write" in r.stderr and "Traceback" not in r.stderr


def test_max_core_size_with_a_malformed_core_processes_every_core(tmp_path, make_core):
    """#13 item 13: a core slim cannot read (bad e_phentsize) must not stop the harvest."""
    real = make_core("O0", "segv").read_bytes()
    job = tmp_path / "job"
    job.mkdir()
    bad = bytearray(real)
    bad[54:56] = (256).to_bytes(2, "little")  # e_phentsize (gABI: offset 54 in ELF64)
    (job / "core.bad").write_bytes(bytes(bad))
    (job / "core.good").write_bytes(real)
    r = coredump_harvest(tmp_path, "--path", "job", "--max-core-size", "1K")
    assert "Traceback" not in r.stderr and r.returncode == 0, r.stderr
    crashes = json.loads((tmp_path / "coredump-artifacts" / "summary.json").read_text())["crashes"]
    by_source = {os.path.basename(c["source"]): c for c in crashes}
    assert set(by_source) == {"core.bad", "core.good"}
    assert "cannot be slimmed" in by_source["core.bad"]["note"] and by_source["core.bad"]["kept"]
    assert by_source["core.good"]["signal"] == "SIGSEGV"
    assert (job / "core.bad").exists() and (job / "core.good").exists()  # neither stored whole


def test_a_step_that_deletes_its_working_directory(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    r = subprocess.run(command("run", "--", "sh", "-c", f'rmdir "{work}"'), cwd=work, env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_an_unreadable_core_is_named(tmp_path, make_core):
    """A harvest that cannot read a 0600 core of another user says so, not "no cores found".
    As root, the core is another uid's and the harvest runs without CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH (capabilities(7)), so open(2) fails with EACCES as for a user."""
    import stat

    core = tmp_path / "core"
    core.write_bytes(make_core("O0", "segv").read_bytes())
    argv = command("harvest", "-o", str(tmp_path / "out"))
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and setpriv (util-linux) is missing: cannot drop CAP_DAC_OVERRIDE")
        os.chown(core, 12345, 12345)
        core.chmod(0o600)
        argv = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,"
                "-dac_read_search", "--", *argv]
    else:
        core.chmod(0)  # our own file, unreadable: open(2) fails with EACCES the same way
    r = subprocess.run(argv, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"{core}: cannot read it (Permission denied)" in r.stderr
    assert core.exists() and stat.S_IMODE(core.stat().st_mode) in (0o600, 0)


def _limit_file_size(limit):
    import resource

    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("limit", [4096, 1 << 20])
def test_a_full_filesystem_leaves_no_temporary_files(tmp_path, cores_ok, limit):
    """RLIMIT_FSIZE makes each write past `limit` fail (EFBIG, as ENOSPC would): at 4 KiB
    crash.json, at 1 MiB the bundled libc. Nothing half-written stays; the core stays."""
    core = crash_in(tmp_path / "job", "segv")
    r = subprocess.run(command("harvest", "--path", "job"), cwd=tmp_path, env=ENV, capture_output=True,
                       text=True, timeout=300, preexec_fn=_limit_file_size(limit))
    assert r.returncode == 1 and "Error:" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert core.exists()
    left = [rel for rel in _modes(tmp_path / "coredump-artifacts") if ".tmp-" in rel]
    assert left == []


def test_a_hostile_core_name_is_printed_cleaned(tmp_path, make_core):
    """A file name is chosen by whoever wrote the job's tree: escapes and newlines in it
    must not reach the log (a forged ``::error::`` line)."""
    real = make_core("O0", "segv").read_bytes()
    job = tmp_path / "job"
    job.mkdir()
    core = job / "core.\x1b]0;owned\x07\n::error::forged"
    core.write_bytes(real[:len(real) // 2])  # truncated: its notes name the path
    os.utime(core, (1_000_000_000,) * 2)
    lines = []
    result = harvest(HarvestOptions(output=str(tmp_path / "out"), paths=(str(job),)), echo=lines.append)
    assert result.records[0].kept
    assert any("it stays at" in line for line in lines)
    assert not any(c in line for line in lines for c in "\x1b\x07\n")


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
