import json
import os
import subprocess

import pytest
from click.testing import CliRunner

from coredump.cli.report import report
from tests.cli import command
from tests.crash_samples import abort_crash, segv_crash, write_artifacts
from tests.htmltree import parse_html


def _run(*args, env=None):
    result = CliRunner().invoke(report, [str(a) for a in args], env=env or {"GITHUB_ACTIONS": ""})
    return result


def test_artifact_dir_in_place(tmp_path):
    root = write_artifacts(tmp_path / "coredump-artifacts", [segv_crash(1), segv_crash(2)])
    result = _run(root)
    assert result.exit_code == 0, result.output
    assert "2 crash report(s)" in result.output
    assert (root / "index.html").is_file() and (root / "001-1" / "report.html").is_file()


def test_crash_json_files_into_output(tmp_path):
    a = write_artifacts(tmp_path / "a", [segv_crash(1)])
    b = tmp_path / "abort.json"
    b.write_text(json.dumps(abort_crash(2)))
    out = tmp_path / "out"
    result = _run(a / "001-1" / "crash.json", b, "-o", out)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert [c["id"] for c in summary["crashes"]] == ["001-1", "abort"]
    assert [c["core"] for c in summary["crashes"]] == ["001-1/core.zst", None]
    groups = parse_html((out / "index.html").read_text()).find_all("section", "group")
    assert len(groups) == 2


def test_two_artifact_dirs_merge_with_unique_ids(tmp_path):
    a = write_artifacts(tmp_path / "a", [segv_crash(1)])
    b = write_artifacts(tmp_path / "b", [segv_crash(1)])
    result = _run(a, b, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    ids = [c["id"] for c in json.loads((tmp_path / "out" / "summary.json").read_text())["crashes"]]
    assert ids == ["001-1", "001-1-2"]
    group = parse_html((tmp_path / "out" / "index.html").read_text()).find("section", "group")
    assert group.find("div", "count").text.startswith("×2")


def test_annotations_under_github_actions(tmp_path):
    root = write_artifacts(tmp_path / "a", [segv_crash(1), segv_crash(2)])
    env = {**os.environ, "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(tmp_path)}
    result = subprocess.run(command("report", str(root)), env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    # On stderr: stdout is the step's own output (`... > out.json`).
    assert "::error" not in result.stdout and "2 crash report(s)" in result.stdout
    assert [line for line in result.stderr.splitlines() if line.startswith("::error ")][0].startswith(
        "::error file=src/store.c,line=42,")


def test_no_escape_sequences_from_crash_data(tmp_path):
    root = write_artifacts(tmp_path / "a", [segv_crash(1)])
    summary = json.loads((root / "summary.json").read_text())
    summary["crashes"].append({"id": "evil\x1b]0;title\x07\x1b[2J", "crash_json": "nope\x1b[31m.json"})
    (root / "summary.json").write_text(json.dumps(summary))
    result = _run(root, env={"GITHUB_ACTIONS": "true"})  # output holds stdout and stderr
    assert result.exit_code == 0
    assert "warning: crash evil" in result.output and "::error " in result.output
    assert "\x1b" not in result.output and "\x07" not in result.output


def test_errors_are_one_line(tmp_path):
    result = _run(tmp_path / "missing")
    assert result.exit_code == 1 and result.output.strip().splitlines()[-1].startswith("Error: ")
    bad = tmp_path / "x.json"
    bad.write_text('{"schema": "other"}')
    result = _run(bad)
    assert result.exit_code == 1 and "not a coredump.crash/1 document" in result.output


def test_raw_core(make_core, tmp_path):
    pytest.importorskip("coredump.report.json", reason="crash_to_dict is not on this branch yet")
    pytest.importorskip("coredump.analysis", reason="the analysis layer is not on this branch yet")
    core = make_core("O0", "segv", "<script>alert(1)</script>")
    out = tmp_path / "out"
    result = _run(core, "-o", out)
    assert result.exit_code == 0, result.output
    entry = json.loads((out / "summary.json").read_text())["crashes"][0]
    assert (out / entry["core"]).stat().st_size > 0
    crash = json.loads((out / entry["crash_json"]).read_text())
    assert crash["process"]["argv"][1] == "<script>alert(1)</script>"
    doc = parse_html((out / entry["report_html"]).read_text())
    assert doc.by_id("crashing-thread").find("td", "fn").text.split()[0] == "store_value"
    assert len(doc.find_all("script")) == 1


def test_unreadable_input_leaves_no_output_directory(tmp_path):
    not_a_core = tmp_path / "passwd"
    not_a_core.write_text("root:x:0:0:root:/root:/bin/sh\n")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(segv_crash(1)))
    out = tmp_path / "o2"
    for inputs in ([not_a_core], [good, not_a_core]):
        result = _run(*inputs, "-o", out)
        assert result.exit_code == 1 and result.output.strip().splitlines()[-1].startswith("Error: ")
        assert not out.exists()


def _hostile_core_entry(tmp_path, core):
    """An artifact dir whose second crash names `core` (a summary.json value, or "LINK":
    its core.zst a symlink to a file outside the directory)."""
    secret = tmp_path / "secret"
    secret.write_text("TOPSECRET\n")
    root = write_artifacts(tmp_path / "a" / "b" / "c" / "d", [segv_crash(1), segv_crash(2)])
    summary = json.loads((root / "summary.json").read_text())
    if core == "LINK":
        (root / "002-2" / "core.zst").unlink()
        (root / "002-2" / "core.zst").symlink_to(secret)
    else:
        summary["crashes"][1]["core"] = core
    (root / "summary.json").write_text(json.dumps(summary))
    return root


@pytest.mark.parametrize("core", ["/proc/self/environ", "../../../../etc/passwd", "../../../../secret", "LINK", 5])
def test_report_copies_only_files_inside_the_input(tmp_path, core):
    root = _hostile_core_entry(tmp_path, core)
    out = tmp_path / "out"
    result = _run(root, "-o", out)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if line.startswith("warning: crash 002-2: ")]
    entries = json.loads((out / "summary.json").read_text())["crashes"]
    assert [(e["id"], e["core"]) for e in entries] == [("001-1", "001-1/core.zst"), ("002-2", None)]
    assert not (out / "002-2" / "core.zst").exists()
    assert (out / "002-2" / "report.html").is_file()  # the crash itself is kept


def test_report_refuses_a_crash_json_outside_the_input(tmp_path):
    root = write_artifacts(tmp_path / "a", [segv_crash(1), segv_crash(2)])
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(segv_crash(3, argv=("TOPSECRET",))))
    (root / "002-2" / "crash.json").unlink()
    (root / "002-2" / "crash.json").symlink_to(outside)
    out = tmp_path / "out"
    result = _run(root, "-o", out)
    assert result.exit_code == 0, result.output
    assert "warning: crash 002-2: " in result.output
    assert [e["id"] for e in json.loads((out / "summary.json").read_text())["crashes"]] == ["001-1"]
    assert not any(b"TOPSECRET" in p.read_bytes() for p in out.rglob("*") if p.is_file())


@pytest.mark.parametrize("entry", [5, {"id": "x", "crash_json": 7}, {"id": "x", "crash_json": "001-1/crash.json",
                                                                     "core": {"a": 1}}])
def test_report_wrong_types_in_summary_are_warnings(tmp_path, entry):
    root = write_artifacts(tmp_path / "a", [segv_crash(1)])
    summary = json.loads((root / "summary.json").read_text())
    summary["crashes"].append(entry)
    (root / "summary.json").write_text(json.dumps(summary))
    result = _run(root, "-o", tmp_path / "out")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "warning: " in result.output


def _set(doc, path, value):
    *parents, last = path
    for key in parents:
        doc = doc[key]
    doc[last] = value


@pytest.mark.parametrize("path,value", [
    (("core",), 5), (("process",), "x"), (("signal",), 5), (("core", "size"), "x"), (("threads",), 5),
    (("process", "argv"), 5), (("threads", 0, "registers"), "x"), (("threads", 0, "frames", 0, "index"), {}),
    (("modules",), 5), (("warnings",), 5)])
def test_crash_json_of_the_wrong_shape_is_a_warning(tmp_path, path, value):
    """Every field the renderers read is checked against the schema's type (each ran into a
    TypeError or AttributeError in the HTML, JUnit or annotation renderer)."""
    crash = segv_crash(2)
    _set(crash, path, value)
    root = write_artifacts(tmp_path / "a", [segv_crash(1), segv_crash(2)])
    (root / "002-2" / "crash.json").write_text(json.dumps(crash))
    for args in ((root, "-o", tmp_path / "out"), (root,)):
        result = _run(*args, env={"GITHUB_ACTIONS": "true"})
        assert result.exit_code == 0, result.output
        assert "warning: crash 002-2: " in result.output and "1 crash report(s)" in result.output


def test_merged_artifacts_carry_their_bundled_files_for_gdb(tmp_path):
    """report -o merges each crash's files/<build-id>/ too (with the digests fetch checks),
    so `coredump gdb` on the merged directory has the binaries; a hostile "files" name is
    refused."""
    import shutil

    from tests.cores import BUILD, ROOT, core_skip_reason

    if core_skip_reason():
        pytest.skip(core_skip_reason())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    jobs = []
    for name in ("segv", "uselib"):
        work = tmp_path / name
        work.mkdir()
        r = subprocess.run(command("run", "--", str(BUILD / "O0" / name)), cwd=work, env=env, capture_output=True,
                           text=True, timeout=300)
        assert (work / "coredump-artifacts" / "summary.json").is_file(), r.stderr
        jobs.append(work / "coredump-artifacts")
    summary = json.loads((jobs[1] / "summary.json").read_text())
    summary["crashes"][0]["files"].append("files/../../../../etc/passwd")
    (jobs[1] / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "merged"
    r = subprocess.run(command("report", str(jobs[0]), str(jobs[1]), "-o", str(out)), env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "files/../../../../etc/passwd" in r.stderr and "not copied" in r.stderr
    merged = json.loads((out / "summary.json").read_text())
    for entry in merged["crashes"]:
        assert entry["files"] and set(entry["file_digests"]) == set(entry["files"])
        for rel in entry["files"]:
            assert (out / rel).is_file() and (out / rel).stat().st_size == entry["file_digests"][rel]["size"]
        assert entry["sha256"] and entry["crash_json"] in merged["digests"]
    libcrash = [rel for e in merged["crashes"] for rel in e["files"] if rel.endswith("/libcrash.so")]
    assert libcrash
    if shutil.which("gdb"):
        uselib = next(e for e in merged["crashes"] if "uselib" in e["id"])
        g = subprocess.run(command("gdb", str(out / uselib["id"]), "--print-only"), env=env, capture_output=True,
                           text=True, timeout=300)
        assert g.returncode == 0 and "not bundled" not in g.stdout + g.stderr, g.stdout + g.stderr
