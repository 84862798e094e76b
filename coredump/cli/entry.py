"""
Console entry
=============

The ``coredump`` console script's first stop: ``coredump run`` and ``coredump analyze`` with
plain options are parsed here and started without importing click (the wrapper's success
path must cost almost nothing; an analysis is waited for, and click is a third of a warm
one); everything else goes to the click command line.
"""

from __future__ import annotations

import sys

from coredump.cli.sizes import parse_size

__all__ = ("main", "parse_run_args", "parse_size", "RunArgs")


class RunArgs:
    """The options of ``coredump run`` (the same names as the click command's)."""

    def __init__(self):
        self.output = "coredump-artifacts"
        self.core_dirs = []
        self.keep_cores = False
        self.no_binaries = False
        self.no_sources = False
        self.no_values = False
        self.max_core_size = None
        self.upload = None
        self.mode = 0o600  # --mode itself goes to the click command line (parsed there)
        self.expect = []
        self.upload_timeout = None
        self.db = None
        self.command = []

    def as_options(self) -> dict:
        return {"output": self.output, "core_dirs": tuple(self.core_dirs),
                "keep_cores": self.keep_cores, "no_binaries": self.no_binaries,
                "no_sources": self.no_sources, "no_values": self.no_values,
                "max_core_size": self.max_core_size, "upload": self.upload, "mode": self.mode,
                "expect": tuple(self.expect), "upload_timeout": self.upload_timeout, "db": self.db}


_VALUED = {"-o": "output", "--output": "output", "--core-dir": "core_dirs",
           "--max-core-size": "max_core_size", "--upload": "upload", "--upload-timeout": "upload_timeout",
           "--expect": "expect", "--db": "db"}
_FLAGS = {"--keep-cores": "keep_cores", "--no-binaries": "no_binaries", "--no-sources": "no_sources",
          "--no-values": "no_values"}


def _positive_seconds(text: str) -> float | None:
    try:
        seconds = float(text)
    except ValueError:
        return None
    return seconds if 0 < seconds < float("inf") else None


def parse_run_args(args) -> RunArgs | None:
    """`args` after ``run``, parsed; None for anything unusual (--help, an unknown or
    malformed option, no command), which the click command line then handles.

    >>> parse_run_args(["-o", "out", "--keep-cores", "--", "make", "-k"]).command
    ['make', '-k']
    """
    out = RunArgs()
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.command = list(args[i + 1:])
            break
        if arg in _FLAGS:
            setattr(out, _FLAGS[arg], True)
        elif arg in _VALUED and i + 1 < len(args):
            i += 1
            name, value = _VALUED[arg], args[i]
            if name in ("core_dirs", "expect"):
                getattr(out, name).append(value)
            elif name == "max_core_size":
                try:
                    out.max_core_size = parse_size(value)
                except ValueError:
                    return None
            elif name == "upload_timeout":
                out.upload_timeout = _positive_seconds(value)
                if out.upload_timeout is None:
                    return None
            else:
                setattr(out, name, value)
        elif arg.startswith("-"):
            return None
        else:  # click's allow_interspersed_args=False: the command starts here
            out.command = list(args[i:])
            break
        i += 1
    return out if out.command and out.output else None


def _run_fast(parsed: RunArgs) -> int:
    from coredump.capture.run import run

    if parsed.upload is not None:  # before the step runs: a CI step must not run for nothing
        from coredump.store.s3url import upload_problem

        problem = upload_problem(parsed.upload)
        if problem:
            print(f"Error: {problem}", file=sys.stderr)
            return 2

    def make_options():
        from coredump.cli.capture import _harvest_options

        return _harvest_options(**parsed.as_options())

    return run(parsed.command, parsed.output, parsed.core_dirs, make_options)


def _plain_stdout() -> bool:
    """Whether stdout takes text as it is: UTF-8, where click.echo would not wrap it (click's
    _compat._force_correct_text_writer re-encodes a misconfigured stream)."""
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    return encoding == "utf8"


def main(argv=None, cli=None) -> None:
    """Console-script entry: ``coredump run …`` fast, the rest through `cli` (the click
    group, ``coredump.cli.main`` by default)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["run"]:
        parsed = parse_run_args(argv[1:])
        if parsed is not None:
            sys.exit(_run_fast(parsed))
    elif argv[:1] == ["analyze"] and _plain_stdout():
        from coredump.cli.analyze import parse_analyze_args, run_fast

        parsed = parse_analyze_args(argv[1:])
        if parsed is not None:
            sys.exit(run_fast(parsed))
    if cli is None:
        from coredump.cli.main import main as cli

    cli(args=argv, prog_name="coredump")
