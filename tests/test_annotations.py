import io

import pytest

from coredump.report.annotations import (
    emit_github,
    escape_data,
    escape_property,
    github_annotations,
)
from tests.crash_samples import abort_crash, segv_crash


def test_one_error_per_signature_at_top_source_frame():
    lines = github_annotations([segv_crash(1), abort_crash(2), segv_crash(3)])
    assert len(lines) == 2
    assert lines[0].startswith("::error file=src/store.c,line=42,title=crash%3A SIGSEGV in store_value < ")
    message = lines[0].split("::", 2)[2]
    assert message.startswith("SIGSEGV (SEGV_MAPERR) at 0x0 (2 crashes)%3A".replace("%3A", ":"))
    assert "%0A#0   0x5581c3a01139 in store_value (src/store.c:42)" in message
    assert lines[1].startswith("::error file=src/config.c,line=57,")


def test_paths_relative_to_workspace():
    crash = segv_crash(1, file="/srv/checkout/repo/src/store.c")
    line = github_annotations([crash], workspace="/srv/checkout/repo")[0]
    assert line.startswith("::error file=src/store.c,line=42,")


def test_no_source_no_file_property():
    crash = segv_crash(1)
    for f in crash["threads"][0]["frames"]:
        f["file"] = f["line"] = None
    assert github_annotations([crash])[0].startswith("::error title=")


def test_crash_data_cannot_inject_workflow_commands():
    crash = segv_crash(1, function="f\n::add-mask::secret\r\n::set-env name=X::1", file="a,b:c%.c")
    crash["signature"] = "sig\n::stop-commands::tok\x1b[31m"
    [line] = github_annotations([crash])
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    title = "title=crash%3A sig %3A%3Astop-commands%3A%3Atok::"
    assert line.startswith("::error file=a%2Cb%3Ac%25.c,line=42," + title)


def test_escaping_matches_actions_toolkit():
    assert escape_data("50%\r\nx") == "50%25%0D%0Ax"
    assert escape_property("a:b,c%") == "a%3Ab%2Cc%25"


def test_only_under_github_actions():
    out = io.StringIO()
    assert emit_github([segv_crash()], stream=out, environ={}) == [] and out.getvalue() == ""
    assert emit_github([segv_crash()], stream=out, environ={"GITHUB_ACTIONS": "true"}) == []
    assert out.getvalue().count("::error ") == 1
    assert out.getvalue().startswith("::error file=src/store.c,line=42,")


def test_default_stream_is_stderr_not_the_steps_stdout(capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    emit_github([segv_crash()])
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("::error file=src/store.c,line=42,")


def test_source_path_relative_to_workspace_not_file():
    """``file`` stays the DWARF name ("store.c"); ``source_path`` under the workspace gives
    GitHub the repository path; one outside it falls back to ``file``."""
    crash = segv_crash(1, file="store.c")
    crash["threads"][0]["frames"][0]["source_path"] = "/srv/checkout/repo/src/store.c"
    assert github_annotations([crash], workspace="/srv/checkout/repo")[0].startswith(
        "::error file=src/store.c,line=42,")
    assert github_annotations([crash], workspace="/srv/checkout/other")[0].startswith("::error file=store.c,")
    assert github_annotations([crash], workspace="/srv/checkout/repo/src/store.c")[0].startswith(
        "::error file=store.c,")


def test_source_path_through_a_symlink(tmp_path):
    """A compiler records $PWD, which may go through a link to the checkout."""
    (tmp_path / "real" / "src").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    crash = segv_crash(1, file="store.c")
    crash["threads"][0]["frames"][0]["source_path"] = str(tmp_path / "link" / "src" / "store.c")
    assert github_annotations([crash], workspace=str(tmp_path / "real"))[0].startswith(
        "::error file=src/store.c,line=42,")


def _real_crash(make_core, gdb, variant="O0", program="segv"):
    """A c_samples core analyzed to JSON, and gdb's innermost frame with source."""
    from coredump.analysis import analyze_core
    from coredump.report.json import crash_to_dict
    from tests import cores
    from tests.gdb_oracle import run_gdb

    core = make_core(variant, program)
    crash = crash_to_dict(analyze_core(str(core)))
    top = next(f for f in run_gdb(str(cores.BUILD / variant / program), str(core), gdb).crashing.frames
               if f.file)
    return crash, top


def test_real_core_annotation_names_the_repository_path(make_core, gdb, tmp_path, monkeypatch):
    """A c_samples program compiled in c_samples/: with GITHUB_WORKSPACE at the repository
    root the annotation names c_samples/<file>, at gdb's line; with none, the current
    directory stands in; a workspace elsewhere keeps the DWARF name."""
    from tests import cores

    crash, top = _real_crash(make_core, gdb)
    want = f"::error file=c_samples/{top.file},line={top.line},"
    out = io.StringIO()
    env = {"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(cores.ROOT)}
    emit_github([crash], stream=out, environ=env)
    assert out.getvalue().count("::error ") == 1
    assert out.getvalue().startswith(want)
    monkeypatch.chdir(cores.ROOT)
    assert github_annotations([crash])[0].startswith(want)
    assert github_annotations([crash], workspace=str(tmp_path))[0].startswith(
        f"::error file={top.file},line={top.line},")


def _many_signatures(n):
    crashes = []
    for i in range(n):
        for _ in range(n - i):  # signature i crashes n-i times: the first is the most frequent
            crash = segv_crash(100 + i, function=f"fn_{i}")
            crash["signature"] = f"SIGSEGV in fn_{i}"
            crashes.append(crash)
    return crashes[::-1]  # least frequent first in the job: the order must come from the counts


def test_at_most_ten_annotations_most_frequent_first_and_the_last_says_how_many_more():
    from tests.github_runner import parse

    lines = github_annotations(_many_signatures(12))
    parsed = [parse(line) for line in lines]
    assert len(parsed) == 10 and all(p[0] == "error" for p in parsed)
    assert [p[1]["title"] for p in parsed] == [f"crash: SIGSEGV in fn_{i}" for i in range(10)]
    assert parsed[0][2].startswith("SIGSEGV (SEGV_MAPERR) at 0x0 (12 crashes)")
    assert parsed[-1][2].splitlines()[-1] == "... and 2 more signatures (3 crashes) in the job summary and index.html"
    assert all("more signature" not in p[2] for p in parsed[:-1])
    assert len(github_annotations(_many_signatures(10))) == 10  # exactly ten: no "more" line
    assert "more signature" not in github_annotations(_many_signatures(10))[-1]


def test_job_summary_is_appended_grouped_and_parses_as_markdown(tmp_path):
    from markdown_it import MarkdownIt

    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    crashes = _many_signatures(3)
    evil = segv_crash(9, function="<img src=x onerror=alert(1)>")
    evil["signature"] = "SIGSEGV in [click](javascript:alert(1)) <b>bold</b> ```"
    evil["reason"] = "# not a heading\n![x](http://evil/x.png)"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_SERVER_URL": "https://github.com",
           "GITHUB_REPOSITORY": "acme/app", "GITHUB_RUN_ID": "42"}
    out = io.StringIO()
    reports = [f"coredump-artifacts/c{i}/report.html" for i in range(len(crashes) + 1)]
    assert emit_github(crashes + [evil], reports, stream=out, environ=env) == []
    text = summary.read_text()
    assert text.startswith("earlier step\n")  # appended, never truncated
    tokens = MarkdownIt("commonmark").parse(text)
    plain = lambda inline: "".join(c.content for c in inline.children if c.type in ("text", "text_special"))  # noqa: E731
    headings = [plain(tokens[i + 1]) for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings[0] == "coredump: 7 crashes, 4 signatures"
    assert headings[1:3] == ["SIGSEGV in fn_0 ×3", "SIGSEGV in fn_1 ×2"]  # most frequent first
    # the hostile signature is shown as the text it is: no link, no HTML, no broken fence
    assert set(headings[3:]) == {"SIGSEGV in fn_2", "SIGSEGV in [click](javascript:alert(1)) <b>bold</b> ```"}
    html = MarkdownIt("commonmark").render(text)
    assert "<img" not in html and "<b>" not in html and "javascript:" not in html.replace(
        "[click](javascript:alert(1))", "")
    links = [t for t in tokens if t.type == "inline" for t in t.children if t.type == "link_open"]
    assert [t.attrs["href"] for t in links] == ["https://github.com/acme/app/actions/runs/42#artifacts"]
    fences = [t for t in tokens if t.type == "fence"]
    assert len(fences) == 4 and fences[0].content.splitlines()[0].startswith("#0")
    assert "coredump-artifacts/c0/report.html" in text.replace("\\", "")


def test_an_unwritable_job_summary_is_a_warning(tmp_path):
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path)}  # a directory
    warnings = emit_github([segv_crash()], stream=io.StringIO(), environ=env)
    assert len(warnings) == 1 and "GITHUB_STEP_SUMMARY" in warnings[0]


def test_run_under_github_writes_the_summary_and_keeps_the_status(tmp_path):
    """A real crash under `coredump run` with GitHub's variables: annotations on stderr, the
    summary appended; an unwritable summary file is a warning and the status stays the step's."""
    import os
    import subprocess

    from tests.cli import command
    from tests.cores import BUILD, ROOT, build_samples, core_skip_reason

    if core_skip_reason():
        pytest.skip(core_skip_reason())
    build_samples()
    summary = tmp_path / "summary.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary),
           "GITHUB_WORKSPACE": str(ROOT)}
    for step_summary, work in ((summary, tmp_path / "a"), (tmp_path, tmp_path / "b")):  # then a directory
        work.mkdir()
        env["GITHUB_STEP_SUMMARY"] = str(step_summary)
        r = subprocess.run(command("run", "--", str(BUILD / "O0" / "segv")), cwd=work, env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 128 + 11
        assert r.stderr.count("::error file=c_samples/segv.c,line=9,") == 1
    assert "#### SIGSEGV in store\\_value \\< fill\\_list \\< build" in summary.read_text()
    assert "cannot write the job summary" in r.stdout + r.stderr
