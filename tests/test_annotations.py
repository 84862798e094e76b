import io

from coredump.report.annotations import (
    emit_github_annotations,
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
    assert emit_github_annotations([segv_crash()], out, environ={}) == 0 and out.getvalue() == ""
    assert emit_github_annotations([segv_crash()], out, environ={"GITHUB_ACTIONS": "true"}) == 1
    assert out.getvalue().startswith("::error file=src/store.c,line=42,")


def test_default_stream_is_stderr_not_the_steps_stdout(capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert emit_github_annotations([segv_crash()]) == 1
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
    assert emit_github_annotations([crash], out, environ=env) == 1
    assert out.getvalue().startswith(want)
    monkeypatch.chdir(cores.ROOT)
    assert github_annotations([crash])[0].startswith(want)
    assert github_annotations([crash], workspace=str(tmp_path))[0].startswith(
        f"::error file={top.file},line={top.line},")
