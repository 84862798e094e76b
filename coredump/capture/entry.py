"""
Console entry
=============

The ``coredump`` console script's first stop: ``coredump run`` with plain options is
parsed here and started without importing click (the wrapper's success path must cost
almost nothing); everything else goes to the click command line.
"""

from __future__ import annotations

import re
import sys

__all__ = ("main", "parse_run_args", "parse_size", "RunArgs")

_SIZE = re.compile(r"(?i)\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*")


def parse_size(text: str) -> int:
    """Bytes from ``512``, ``100M``, ``2G``, ``1.5GiB`` (powers of 1024).

    >>> parse_size("2G"), parse_size("100MiB"), parse_size("512")
    (2147483648, 104857600, 512)
    """
    m = _SIZE.fullmatch(text)
    if m is None:
        raise ValueError(f"not a size: {text!r} (use e.g. 512M or 2G)")
    return int(float(m[1]) * 1024 ** " KMGT".index(m[2].upper() or " "))


class RunArgs:
    """The options of ``coredump run`` (the same names as the click command's)."""

    def __init__(self):
        self.output = "coredump-artifacts"
        self.core_dirs = []
        self.keep_cores = False
        self.no_binaries = False
        self.max_core_size = None
        self.upload = None
        self.upload_timeout = None
        self.command = []

    def as_options(self) -> dict:
        return {"output": self.output, "core_dirs": tuple(self.core_dirs),
                "keep_cores": self.keep_cores, "no_binaries": self.no_binaries,
                "max_core_size": self.max_core_size, "upload": self.upload,
                "upload_timeout": self.upload_timeout}


_VALUED = {"-o": "output", "--output": "output", "--core-dir": "core_dirs",
           "--max-core-size": "max_core_size", "--upload": "upload", "--upload-timeout": "upload_timeout"}
_FLAGS = {"--keep-cores": "keep_cores", "--no-binaries": "no_binaries"}


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
            if name == "core_dirs":
                out.core_dirs.append(value)
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

    def make_options():
        from coredump.cli_capture import _harvest_options

        return _harvest_options(**parsed.as_options())

    return run(parsed.command, parsed.output, parsed.core_dirs, make_options)


def main(argv=None, cli=None) -> None:
    """Console-script entry: ``coredump run …`` fast, the rest through `cli` (the click
    group, ``coredump.cli.main`` by default)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["run"]:
        parsed = parse_run_args(argv[1:])
        if parsed is not None:
            sys.exit(_run_fast(parsed))
    if cli is None:
        from coredump.cli import main as cli

    cli(args=argv, prog_name="coredump")
