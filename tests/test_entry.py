import pytest

from coredump.cli.capture import parse_since
from coredump.cli.entry import parse_run_args, parse_size


def test_parse_run_args():
    p = parse_run_args(["-o", "out", "--core-dir", "a", "--core-dir", "b", "--keep-cores", "--no-binaries",
                        "--no-sources", "--no-values", "--max-core-size", "2G", "--upload", "s3://b/p",
                        "--upload-timeout", "30",
                        "--expect", "SIGABRT in *", "--db", "sqlite:///h.db", "--", "make", "-k", "--", "x"])
    assert p.as_options() == {"output": "out", "core_dirs": ("a", "b"), "keep_cores": True,
                              "no_binaries": True, "no_sources": True, "no_values": True, "max_core_size": 2 << 30,
                              "upload": "s3://b/p", "mode": 0o600, "expect": ("SIGABRT in *",),
                              "upload_timeout": 30.0, "db": "sqlite:///h.db"}
    assert p.command == ["make", "-k", "--", "x"]
    assert parse_run_args(["make", "--keep-cores"]).command == ["make", "--keep-cores"]


@pytest.mark.parametrize("args", [["--help"], ["--"], [], ["--max-core-size", "big", "--", "x"], ["--output"],
                                  ["--unknown", "--", "x"], ["-o", "", "--", "x"],
                                  ["--mode", "0644", "--", "x"],
                                  ["--upload-timeout", "0", "--", "x"], ["--upload-timeout", "nan", "--", "x"]])
def test_unusual_arguments_go_to_click(args):
    assert parse_run_args(args) is None


def test_same_options_as_the_click_command():
    from coredump.cli.capture import run

    argv = ["-o", "out", "--core-dir", "d", "--keep-cores", "--no-values", "--max-core-size", "1M", "--expect", "x*",
            "--expect", "0123456789abcdef", "--", "true", "-x"]
    ctx = run.make_context("run", list(argv))
    fast = parse_run_args(argv)
    assert {k: v for k, v in ctx.params.items() if k != "command"} == fast.as_options()
    assert list(ctx.params["command"]) == fast.command


def test_parse_size():
    sizes = [parse_size(s) for s in ("1", "1k", "1.5K", "3MiB", "1gb", "1T")]
    assert sizes == [1, 1024, 1536, 3 << 20, 1 << 30, 1 << 40]
    with pytest.raises(ValueError):
        parse_size("lots")


def test_parse_since():
    assert parse_since("90m", now=10_000.0) == 4_600.0
    assert parse_since("1h30m", now=10_000.0) == 4_600.0
    assert parse_since("1700000000") == 1_700_000_000.0
    assert parse_since("1970-01-01T00:01:00Z") == 60.0
    with pytest.raises(ValueError):
        parse_since("soon")
