"""``coredump analyze`` without click (``cli.analyze``): the same parameters as the click
command, the same output and errors, and click never imported on the way."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from coredump.cli.analyze import parse_analyze_args
from tests.cli import command
from tests.cores import ROOT

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
CLICK = [sys.executable, "-m", "coredump.cli.main"]  # the click command line itself
# The entry, telling on stderr at exit which of the modules named after `--` it imported.
WATCHED = ("import atexit, sys; from coredump.cli.entry import main; "
           "atexit.register(lambda: print(sorted(m for m in sys.modules "
           "if m.split('.')[0] in ('click', 'elftools', 'dataclasses', 'inspect')), file=sys.stderr)); main()")


def _click_params(argv):
    from coredump.cli.main import main

    return main.get_command(None, "analyze").make_context("analyze", list(argv)).params


def test_same_parameters_as_the_click_command(tmp_path):
    argv = ["--format", "json", "core", "--exe=prog", "--sysroot", str(tmp_path), "--search-path", "a",
            "--search-path", "b", "--debug-dir", "d", "--max-frames", "12", "--debuginfod-timeout", "1.5",
            "--max-core-size", "2G", "--no-source", "--source-dir", "s", "--source-prefix-map", "/b=/h",
            "--source-prefix-map=/c=/i"]
    fast = parse_analyze_args(argv)
    params = {"core": fast.core, "fmt": fast.fmt, "max_core_size": fast.max_core_size,
              "show_source": fast.show_source, "source_dirs": tuple(fast.source_dirs),
              "prefix_maps": tuple(fast.prefix_maps),
              **{k: tuple(v) if isinstance(v, list) else v for k, v in fast.opts.items()}}
    assert params == _click_params(argv)
    assert vars(parse_analyze_args(["--", "-core"]))["core"] == "-core"


@pytest.mark.parametrize("args", [[], ["--help"], ["-h"], ["a", "b"], ["--format", "xml", "c"], ["--exe"],
                                  ["--max-frames", "0", "c"], ["--max-frames", "x", "c"],
                                  ["--debuginfod-timeout", "-1", "c"], ["--debuginfod-timeout", "nan", "c"],
                                  ["--max-core-size", "big", "c"], ["--source-prefix-map", "x", "c"],
                                  ["--exe", "/", "c"], ["--sysroot", __file__, "c"], ["--unknown", "c"],
                                  ["--exe", "--format", "c"], ["--exe", "", "c"]])
def test_unusual_arguments_go_to_click(args):
    assert parse_analyze_args(args) is None


def _imported(core, cache_home, fmt="json"):
    """The click, pyelftools, dataclasses and inspect modules one ``coredump analyze`` imported."""
    argv = [sys.executable, "-c", WATCHED, "analyze", "--format", fmt, core]
    proc = subprocess.run(argv, env=dict(ENV, XDG_CACHE_HOME=str(cache_home)), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_analyze_never_imports_click(make_core, tmp_path, fmt):
    core = str(make_core("O2", "segv"))
    assert "click" not in _imported(core, tmp_path, fmt)  # cold
    assert "click" not in _imported(core, tmp_path, fmt)  # warm


def test_warm_analyze_builds_records_without_dataclasses(make_core, tmp_path):
    # coredump.record's records: ``dataclasses`` (and the ``inspect`` it imports) cost ~40 ms of
    # a warm analysis's start-up; a cold one may still reach them through pyelftools.
    core = str(make_core("O2", "segv"))
    _imported(core, tmp_path)
    warm = _imported(core, tmp_path)
    assert "dataclasses" not in warm and "inspect" not in warm, warm


def test_analyze_modules_import_no_heavy_standard_modules():
    # -S: without site, whose .pth files (a developer's editable install) import pathlib themselves.
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import coredump.cli.analyze, coredump.analysis, "
             "coredump.report.json, coredump.report.text, coredump.store.bundle, coredump.triage.signature; "
             "print(sorted(m for m in ('pathlib', 'shutil', 'tempfile', 'platform', 'dataclasses', 'inspect', "
             "'hashlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-S", "-c", probe, str(ROOT)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("fmt", ["json", "text", "junit"])
def test_same_report_as_the_click_command(make_core, tmp_path, fmt):
    core = str(make_core("O2", "abort_assert"))
    env = dict(ENV, XDG_CACHE_HOME=str(tmp_path))
    fast = subprocess.run(command("analyze", "--format", fmt, core), env=env, capture_output=True, timeout=120)
    slow = subprocess.run([*CLICK, "analyze", "--format", fmt, core], env=env, capture_output=True, timeout=120)
    assert fast.returncode == slow.returncode == 0
    assert fast.stdout == slow.stdout and fast.stdout


@pytest.mark.parametrize("args", [["nosuch-core"], ["--exe", "nosuch-exe", "core"], ["--format", "xml", "core"],
                                  ["--help"]])
def test_same_errors_and_help_as_the_click_command(tmp_path, args):
    (tmp_path / "core").write_bytes(b"\x7fELF" + bytes(60))
    fast = subprocess.run(command("analyze", *args), env=ENV, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    slow = subprocess.run([*CLICK, "analyze", *args], env=ENV, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    def shown(text):  # the program's name as click prints it: "coredump" from the entry
        return text.replace("python -m coredump.cli.main", "coredump")

    assert fast.returncode == slow.returncode
    assert (fast.stdout, fast.stderr) == (shown(slow.stdout), shown(slow.stderr))


def test_warm_analysis_imports_no_pyelftools(make_core, tmp_path):
    """With the parse cache filled, headers, sections and symbols are read with struct
    (``coredump.elf.header``): pyelftools is for DWARF a cold analysis parses."""
    core = str(make_core("O2", "segv"))
    _imported(core, tmp_path)
    assert _imported(core, tmp_path).strip() == "[]"


# What a C program's crash has no use for: the C++ and Rust demanglers' grammars, the Go
# runtime's readers, the googletest report reader, a thread for the parse cache's writes;
# typing (annotations only: ~3 ms with contextlib and warnings), pickle.py (the cache
# pickles with its C half; pickle.py imports re for nothing an entry holds) and the json
# package (jsondoc writes with its C encoder; its decoder compiles four regular expressions).
_UNUSED_BY_C = ("coredump.demangle.itanium", "coredump.demangle.rust_v0", "coredump.demangle.rust_legacy",
                "coredump.triage.gopanic", "coredump.triage.gofatal", "coredump.triage.gtest_report",
                "coredump.triage.x86_divide", "threading", "typing", "pickle", "json")
_UNUSED_WATCH = ("import atexit, sys; from coredump.cli.entry import main; "
                 f"atexit.register(lambda: print(sorted(m for m in {_UNUSED_BY_C!r} if m in sys.modules), "
                 "file=sys.stderr)); main()")


@pytest.mark.parametrize("variant", ["O2", "static"])
def test_a_c_crash_imports_nothing_only_other_programs_use(make_core, tmp_path, variant):
    core = str(make_core(variant, "segv"))
    for run in ("cold", "warm"):
        proc = subprocess.run([sys.executable, "-c", _UNUSED_WATCH, "analyze", "--format", "json", core],
                              env=dict(ENV, XDG_CACHE_HOME=str(tmp_path)), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and proc.stderr.strip() == "[]", (run, proc.stderr)
