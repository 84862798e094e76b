"""Source context (#17 item 2): the lines around frame 0 and the start frame in ``analyze``
text and HTML and in the CI log, found by ``source_path``, ``--source-dir`` and
``--source-prefix-map``, stored by ``run``/``harvest`` under ``sources/`` and shown from
there once the build tree is gone. Real kernel cores of c_samples programs."""

import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from coredump.report.render import render_artifacts
from coredump.store.s3fetch import wanted_files
from tests.cli import command
from tests.cores import ROOT, SAMPLES, core_skip_reason, make_core, run_crash
from tests.htmltree import parse_html

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module", autouse=True)
def cores_possible():
    reason = core_skip_reason() or (shutil.which("gcc") is None and "gcc is not installed")
    if reason:
        pytest.skip(reason)


def coredump(*args, cwd=None, env=None):
    return subprocess.run(command(*args), cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=120)


def analyze_json(core, *args):
    r = coredump("analyze", str(core), "--format", "json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def crashing_frames(crash):
    return crash["threads"][crash["crashing_thread"]]["frames"]


def expected_lines(source: Path, line: int, radius: int = 2):
    """The lines a reader expects from the file itself, tabs expanded as gcc and gdb count them."""
    text = source.read_bytes().decode("utf-8", "surrogateescape").split("\n")
    return [(n, text[n - 1].expandtabs(8)) for n in range(max(1, line - radius), line + radius + 1)
            if n <= len(text)]


def excerpt_in(output: str, frame_line: str):
    """The (number, text) rows printed under the report line that starts with `frame_line`."""
    lines = output.splitlines()
    at = next(i for i, text in enumerate(lines) if text.lstrip().startswith(frame_line))
    rows = []
    for text in lines[at + 1:]:
        body = text.strip()
        marker = body.startswith(">")
        body = body[1:].strip() if marker else body
        number, _, rest = body.partition("  ")
        if not number.isdigit():
            break
        rows.append((int(number), rest.rstrip() if rest else "", marker))
    return rows


def build(directory: Path, source: Path, name: str, *cflags):
    """Copy a c_samples source into `directory` and build it there (-O0 -g: its DWARF names
    this copy)."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, directory / source.name)
    subprocess.run(["gcc", "-O0", "-g", *cflags, "-o", name, source.name], cwd=directory, check=True)
    return directory / name


def check_rows(rows, source: Path, line: int, radius: int = 2):
    assert [(n, t.rstrip()) for n, t, _ in rows] == [(n, t.rstrip()) for n, t in expected_lines(source, line, radius)]
    assert [n for n, _, marked in rows if marked] == [line]


def test_analyze_shows_five_lines_around_frame_0():
    core = make_core("O0", "segv")
    top = crashing_frames(analyze_json(core))[0]
    r = coredump("analyze", str(core))
    assert r.returncode == 0, r.stderr
    check_rows(excerpt_in(r.stdout, "#0"), Path(top["source_path"]), top["line"])
    assert excerpt_in(r.stdout, "#1") == []  # only frame 0 and the start frame (here the same)


def test_abort_shows_the_start_frame_not_libc():
    core = make_core("O0", "abort_assert")
    frames = crashing_frames(analyze_json(core))
    start = next(f for f in frames if f["function"] == "check_balance")
    r = coredump("analyze", str(core))
    check_rows(excerpt_in(r.stdout, f"#{start['index']} "), Path(start["source_path"]), start["line"])
    assert excerpt_in(r.stdout, "#0") == []  # libc's frame: its source is not on this machine


def test_no_source_turns_it_off():
    core = make_core("O0", "segv")
    r = coredump("analyze", str(core), "--no-source")
    assert r.returncode == 0 and excerpt_in(r.stdout, "#0") == []


def test_bad_source_options_are_one_error_line(tmp_path):
    core = str(make_core("O0", "segv"))
    r = coredump("analyze", core, "--source-prefix-map", "no-equals-sign")
    assert r.returncode != 0 and "Traceback" not in r.stderr and "OLD=NEW" in r.stderr
    r = coredump("analyze", core, "--source-dir", str(tmp_path / "absent"))
    assert r.returncode != 0 and r.stderr.startswith("Error: --source-dir") and len(r.stderr.splitlines()) == 1


def test_moved_build_tree_found_by_source_dir_and_prefix_map(tmp_path):
    exe = build(tmp_path / "build" / "src", SAMPLES / "segv.c", "segv")
    _, core = run_crash([str(exe)], tmp_path)
    top = crashing_frames(analyze_json(core, "--exe", str(exe)))[0]
    shutil.copytree(tmp_path / "build", tmp_path / "elsewhere")
    os.unlink(tmp_path / "build" / "src" / "segv.c")
    moved = tmp_path / "elsewhere" / "src" / "segv.c"
    assert excerpt_in(coredump("analyze", str(core), "--exe", str(exe)).stdout, "#0") == []
    for option in (["--source-dir", str(tmp_path / "elsewhere")],
                   ["--source-prefix-map", f"{tmp_path / 'build'}={tmp_path / 'elsewhere'}"]):
        r = coredump("analyze", str(core), "--exe", str(exe), *option)
        check_rows(excerpt_in(r.stdout, "#0"), moved, top["line"])


@pytest.fixture(scope="module")
def offline_job(tmp_path_factory):
    """`coredump run` of a segv built in a scratch checkout; then the checkout (source and
    binary) is deleted and the artifact directory moved: another machine's view."""
    tmp = tmp_path_factory.mktemp("offline")
    proj = tmp / "proj"
    build(proj, SAMPLES / "segv.c", "segv")
    source = (proj / "segv.c").read_bytes()
    r = coredump("run", "--mode", "0640", "--", "./segv", cwd=proj)
    assert r.returncode == 139, r.stderr
    shutil.move(proj / "coredump-artifacts", tmp / "artifacts")
    shutil.rmtree(proj)
    (tmp / "segv.c").write_bytes(source)  # what the test compares with, outside any search path
    crash_id = next(p.parent.name for p in (tmp / "artifacts").glob("*/crash.json"))
    return {"root": tmp / "artifacts", "id": crash_id, "source": tmp / "segv.c", "log": r.stderr,
            "source_path": str(proj / "segv.c")}


def test_ci_log_shows_the_crash_line_and_one_each_side(offline_job):
    crash = json.loads((offline_job["root"] / offline_job["id"] / "crash.json").read_text())
    top = crashing_frames(crash)[0]
    log = "\n".join(line.removeprefix("coredump:") for line in offline_job["log"].splitlines())
    check_rows(excerpt_in(log, "#0"), offline_job["source"], top["line"], radius=1)


def test_sources_are_recorded_digested_and_private(offline_job):
    root = offline_job["root"]
    summary = json.loads((root / "summary.json").read_text())
    entry = summary["crashes"][0]
    crash = json.loads((root / entry["crash_json"]).read_text())
    data = offline_job["source"].read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    [recorded] = crash["sources"]
    assert recorded == {"path": offline_job["source_path"], "file": f"sources/{digest}/segv.c",
                        "size": len(data), "sha256": digest}
    assert (root / recorded["file"]).read_bytes() == data
    assert recorded["file"] in entry["files"]
    assert entry["file_digests"][recorded["file"]] == {"size": len(data), "sha256": digest}
    assert recorded["file"] in wanted_files(summary, entry["id"])  # what `coredump fetch` brings and checks
    assert stat.S_IMODE(os.stat(root / recorded["file"]).st_mode) == 0o640  # --mode
    assert stat.S_IMODE(os.stat(root / "sources").st_mode) == 0o750


def test_source_context_shown_from_the_artifact_directory_after_the_build_tree_was_deleted(offline_job):
    root, source = offline_job["root"], offline_job["source"]
    crash = json.loads((root / offline_job["id"] / "crash.json").read_text())
    top = crashing_frames(crash)[0]
    r = coredump("analyze", str(root / offline_job["id"]))
    assert r.returncode == 0, r.stderr
    check_rows(excerpt_in(r.stdout, "#0"), source, top["line"])
    render_artifacts(root)  # `coredump report` on the other machine: from the stored copy only
    page = parse_html((root / offline_job["id"] / "report.html").read_text())
    check_html(page, source, top["line"], offline_job["source_path"])
    html = coredump("analyze", str(root / offline_job["id"]), "--format", "html")
    check_html(parse_html(html.stdout), source, top["line"], offline_job["source_path"])


def check_html(dom, source: Path, line: int, source_path=None):
    blocks = dom.by_id("crashing-thread").find_all("details", "source")
    assert len(blocks) == 1 and "open" in blocks[0].attrs
    if source_path is not None:  # named as DWARF names it, and marked as the stored copy
        summary = blocks[0].find("summary")
        assert summary.text.startswith(f"source: {source_path}:{line}") and "stored copy" in summary.text
    rows = [(int(s.find("span", "lineno").text), s.text.split(" ", 1)[1], "current" in s.attrs["class"])
            for s in blocks[0].find("pre").find_all("span") if s.attrs.get("class") in ("current", "context")]
    assert rows == [(n, t, n == line) for n, t in expected_lines(source, line)]


BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def test_source_block_in_headless_chromium(offline_job, tmp_path):
    browser = next((p for p in map(shutil.which, BROWSERS) if p), None)
    if browser is None:
        pytest.skip("headless Chromium is not installed")
    from tests.test_chromium import dump_dom

    root = offline_job["root"]
    render_artifacts(root)
    crash = json.loads((root / offline_job["id"] / "crash.json").read_text())
    dom = dump_dom(browser, root / offline_job["id"] / "report.html", tmp_path)
    check_html(dom, offline_job["source"], crashing_frames(crash)[0]["line"])


HOSTILE = (b"/* <img src=x onerror=alert(1)> \x1b[2J\x1b]0;owned\x07 caf\xe9 \xff */\n"
           b"#include <stddef.h>\n"
           b"__attribute__((noipa)) void store(long *p) { *p = 1; }\n"
           b"/* </pre><script>alert(2)</script> \xe2\x80\xae */\n"
           b"int main(void) { store(NULL); return 0; }\n")


def test_hostile_source_text_is_escaped_in_text_and_html(tmp_path):
    (tmp_path / "hostile.c").write_bytes(HOSTILE)
    subprocess.run(["gcc", "-O0", "-g", "-o", "hostile", "hostile.c"], cwd=tmp_path, check=True)
    _, core = run_crash([str(tmp_path / "hostile")], tmp_path)
    text = coredump("analyze", str(core)).stdout
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "caf\\xe9 \\xff" in text and "<img src=x onerror=alert(1)>" in text
    dom = parse_html(coredump("analyze", str(core), "--format", "html").stdout)
    assert dom.find_all("img") == [] and len(dom.find_all("script")) == 1
    pre = dom.by_id("crashing-thread").find("pre", "source").text
    assert "<img src=x onerror=alert(1)>" in pre and "\\x1b[2J" in pre and "caf\\xe9 \\xff" in pre
    assert "\\u202e" in pre and "</pre><script>alert(2)</script>" in pre


def test_hostile_source_paths_are_refused(tmp_path):
    """A symlink to /etc/passwd, a FIFO and /proc/self/environ where DWARF names the source:
    nothing is shown, nothing is stored, and nothing waits."""
    proj = tmp_path / "proj"
    build(proj, SAMPLES / "segv.c", "segv")
    (proj / "environ").write_bytes((SAMPLES / "segv.c").read_bytes())
    # gcc -fdebug-prefix-map rewrites DW_AT_comp_dir: DWARF names /proc/self/environ.
    subprocess.run(["gcc", "-O0", "-g", f"-fdebug-prefix-map={proj}=/proc/self", "-x", "c", "-o", "proc",
                    "environ"], cwd=proj, check=True)
    os.unlink(proj / "segv.c")
    (proj / "segv.c").symlink_to("/etc/passwd")
    passwd = Path("/etc/passwd").read_text().splitlines()[0]
    # Lines in the environment, so /proc/self/environ has a line where DWARF points.
    env = {**ENV, "SECRET": "\n".join(["SECRET-TOKEN"] * 40)}
    for exe, swap in (("segv", None), ("segv", "fifo"), ("proc", None)):
        if swap == "fifo":
            os.unlink(proj / "segv.c")
            os.mkfifo(proj / "segv.c")
        shutil.rmtree(proj / "coredump-artifacts", ignore_errors=True)
        r = coredump("run", "--", f"./{exe}", cwd=proj, env=env)
        assert r.returncode == 139, r.stderr
        assert "SECRET-TOKEN" not in r.stderr
        [crash_dir] = [p.parent for p in (proj / "coredump-artifacts").glob("*/crash.json")]
        crash = json.loads((crash_dir / "crash.json").read_text())
        assert crash["sources"] == [] and not (proj / "coredump-artifacts" / "sources").exists()
        assert crashing_frames(crash)[0]["source_path"] in (str(proj / "segv.c"), "/proc/self/environ")
        out = "".join(coredump("analyze", str(crash_dir), *fmt, env=env).stdout for fmt in ([], ["--format", "html"]))
        assert excerpt_in(out, "#0") == [] and 'class="source"' not in out
        assert passwd not in out and "SECRET-TOKEN" not in out


def test_only_the_checkout_is_stored_and_big_files_are_left_out(tmp_path):
    """Sources outside the working directory (the job's checkout) are shown at the terminal
    but never stored; one over the per-file cap is left out with a note."""
    exe = build(tmp_path / "outside", SAMPLES / "segv.c", "segv")
    job = tmp_path / "job"
    job.mkdir()
    r = coredump("run", "--", str(exe), cwd=job)
    assert r.returncode == 139
    [crash_json] = (job / "coredump-artifacts").glob("*/crash.json")
    assert json.loads(crash_json.read_text())["sources"] == []
    big = tmp_path / "big"
    build(big, SAMPLES / "segv.c", "segv")
    with open(big / "segv.c", "ab") as f:
        f.write(b"/*" + b" " * (1 << 20) + b"*/\n")  # after the code: lines stay where DWARF says
    r = coredump("run", "--", "./segv", cwd=big)
    summary = json.loads((big / "coredump-artifacts" / "summary.json").read_text())
    assert not (big / "coredump-artifacts" / "sources").exists()
    assert "sources not stored: segv.c (over 1 MiB)" in summary["crashes"][0]["note"]


def test_harvest_stores_sources_once_per_file(tmp_path):
    proj = tmp_path / "proj"
    build(proj, SAMPLES / "segv.c", "segv")
    for n in range(2):
        (proj / f"run{n}").mkdir()
        run_crash([str(proj / "segv")], proj / f"run{n}")
    r = coredump("harvest", cwd=proj)
    assert r.returncode == 0, r.stderr
    root = proj / "coredump-artifacts"
    crashes = [json.loads(p.read_text()) for p in root.glob("*/crash.json")]
    assert len(crashes) == 2 and len({c["sources"][0]["file"] for c in crashes}) == 1
    assert [p.name for p in (root / "sources").rglob("*") if p.is_file()] == ["segv.c"]
    run_crash([str(proj / "segv")], proj / "run0")
    r = coredump("harvest", "--no-sources", "-o", "other", cwd=proj)
    assert r.returncode == 0 and list((proj / "other").glob("*/crash.json"))
    assert not (proj / "other" / "sources").exists()


def test_report_merge_carries_the_stored_sources(offline_job, tmp_path):
    """`coredump report -o OUT JOB`: the stored sources go along (summary `files`), and OUT's
    pages show them."""
    root = offline_job["root"]
    r = coredump("report", "-o", str(tmp_path / "merged"), str(root))
    assert r.returncode == 0, r.stderr
    assert "not copied" not in r.stderr
    [page] = (tmp_path / "merged").glob("*/report.html")
    crash = json.loads(page.with_name("crash.json").read_text())
    check_html(parse_html(page.read_text()), offline_job["source"], crashing_frames(crash)[0]["line"])
