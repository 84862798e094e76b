"""
Analyze
=======

``coredump analyze``'s body, shared by the click command (``cli.main``) and the click-free
entry (``cli.entry``): a developer waits for this one, and click's import alone is a third
of a warm analysis. ``parse_analyze_args`` takes the plain spellings of the command's options
and gives up (None) on anything else (``--help``, an unknown option, a value click would
refuse), which the click command then parses, so help text and usage errors stay click's.
"""

from __future__ import annotations

import math
import os
import sys

from coredump.patterns import lazy_compile

__all__ = ("AnalyzeArgs", "parse_analyze_args", "make_options", "explain", "run_fast", "FORMATS")

FORMATS = ("text", "json", "html", "junit")


class AnalyzeArgs:
    """The parameters of the click command ``analyze`` (the same names and defaults)."""

    def __init__(self):
        self.core = None
        self.fmt = "text"
        self.max_core_size = None
        self.show_source = True
        self.source_dirs = []
        self.prefix_maps = []
        self.opts = {"exe": None, "sysroot": None, "search_paths": [], "debug_dirs": [], "max_frames": 1024,
                     "debuginfod_timeout": None, "no_values": False}


# option -> (parameter, repeatable): what takes a value.
_VALUED = {"--exe": ("exe", False), "--sysroot": ("sysroot", False), "--search-path": ("search_paths", True),
           "--debug-dir": ("debug_dirs", True), "--max-frames": ("max_frames", False),
           "--debuginfod-timeout": ("debuginfod_timeout", False), "--format": ("fmt", False),
           "--max-core-size": ("max_core_size", False), "--source-dir": ("source_dirs", True),
           "--source-prefix-map": ("prefix_maps", True)}
_FILE_ONLY = ("exe",)  # click.Path(dir_okay=False)
_DIR_ONLY = ("sysroot", "search_paths", "debug_dirs", "source_dirs")  # click.Path(file_okay=False)


def _convert(name: str, value: str):
    """`value` as the click option `name` converts it; None where click would refuse it (or
    where its answer is not plain: an empty path, a value that looks like an option)."""
    if not value or value.startswith("-"):
        return None
    if (name in _FILE_ONLY and os.path.isdir(value)) or (name in _DIR_ONLY and os.path.isfile(value)):
        return None  # click.Path's "is a directory" / "is a file"
    try:
        if name == "max_frames":
            number = int(value)
            return number if 1 <= number <= 1 << 20 else None  # click.IntRange(1, 1 << 20)
        if name == "debuginfod_timeout":
            seconds = float(value)
            return seconds if math.isfinite(seconds) and seconds >= 0 else None  # click.FloatRange(0)
        if name == "max_core_size":
            from coredump.cli.sizes import parse_size

            return parse_size(value)
        if name == "prefix_maps":  # (symbols.sources is for text and html reports only)
            from coredump.symbols.sources import parse_prefix_map

            return parse_prefix_map(value)
    except ValueError:
        return None
    if name == "fmt" and value not in FORMATS:
        return None
    return value


def parse_analyze_args(args) -> AnalyzeArgs | None:
    """`args` after ``analyze``, parsed; None for anything unusual, which click then handles.

    >>> parse_analyze_args(["core", "--format", "json", "--exe=prog"]).opts["exe"]
    'prog'
    """
    out = AnalyzeArgs()
    cores = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            cores.extend(args[i + 1:])
            break
        if arg in ("--source", "--no-source"):
            out.show_source = arg == "--source"
        elif arg == "--no-values":
            out.opts["no_values"] = True
        elif arg.startswith("-"):
            option, eq, value = arg.partition("=")
            if option not in _VALUED or (not eq and i + 1 >= len(args)):
                return None
            if not eq:
                i += 1
                value = args[i]
            name, repeatable = _VALUED[option]
            converted = _convert(name, value)
            if converted is None:
                return None
            target = out.opts if name in out.opts else out.__dict__
            if repeatable:
                target[name].append(converted)
            else:
                target[name] = converted
        else:  # click interleaves options and the one argument
            cores.append(arg)
        i += 1
    if len(cores) != 1:
        return None
    out.core = cores[0]
    return out


def make_options(exe, sysroot, search_paths, debug_dirs, max_frames, debuginfod_timeout=None, no_values=False,
                 **extra):
    from coredump.analysis import AnalyzeOptions
    from coredump.errors import MissingFileError
    from coredump.symbols.finder import DEFAULT_DEBUG_DIRS

    # A mistyped path would otherwise read as "no symbols": say so before analysing.
    if exe is not None and not os.path.isfile(exe):
        raise MissingFileError(f"--exe {exe}: no such file")
    # (--debug-dir stays lenient, as gdb's debug-file-directory: scripts pass the usual ones.)
    for flag, paths in (("--sysroot", (sysroot,) if sysroot else ()), ("--search-path", search_paths)):
        missing = next((p for p in paths if not os.path.isdir(p)), None)
        if missing is not None:
            raise MissingFileError(f"{flag} {missing}: no such directory")

    return AnalyzeOptions(exe=exe, sysroot=sysroot, search_paths=tuple(search_paths),
                          debug_dirs=tuple(debug_dirs) or DEFAULT_DEBUG_DIRS, max_frames=max_frames,
                          debuginfod_timeout=debuginfod_timeout, values=not no_values, **extra)


def explain(core, fmt, max_core_size=None, show_source=True, source_dirs=(), prefix_maps=(), **opts):
    """(text, newline after it, colour kept) of the report of `core` in format `fmt`."""
    from coredump.analysis import analyze_core
    from coredump.record import replace
    from coredump.store.bundle import open_input

    with open_input(core, max_core_size) as (core_path, overrides):
        crash = analyze_core(core_path, make_options(**opts, **overrides), name=core if core_path != core else None)
    if core_path != core:  # the temporary decompressed core is gone: name the input
        crash = replace(crash, core=replace(crash.core, path=os.path.abspath(core)))
    finder = _source_finder(core, source_dirs, prefix_maps) if show_source and fmt in ("text", "html") else None
    if fmt == "json":
        from coredump.report.json import dumps

        return dumps(crash), True, False
    if fmt in ("html", "junit"):
        from coredump.report.json import crash_to_dict

        data = crash_to_dict(crash)
        if fmt == "html":
            from coredump.report.html import render_crash_html

            return render_crash_html(data, sources=_excerpts(data, finder)), False, False
        from coredump.report.junit import render_junit

        return render_junit([(None, data)]), False, False
    from coredump.report.text import render_text, use_color

    color = use_color(sys.stdout)
    return render_text(crash, color=color, sources=_excerpts(crash, finder)), False, color


def _source_finder(core, source_dirs, prefix_maps):
    """Where analyze reads sources: DWARF's paths, the options, then the copies stored with
    the crash (an artifact directory's ``sources/``)."""
    from coredump.errors import MissingFileError
    from coredump.store.bundle import stored_source_files
    from coredump.symbols.sources import SourceFinder

    missing = next((d for d in source_dirs if not os.path.isdir(d)), None)
    if missing is not None:  # a mistyped path would otherwise read as "no source"
        raise MissingFileError(f"--source-dir {missing}: no such directory")
    root, stored = stored_source_files(core)
    return SourceFinder(source_dirs=tuple(source_dirs), prefix_maps=tuple(prefix_maps), stored=stored,
                        stored_root=root)


def _excerpts(crash, finder):
    """``report.source.source_excerpts`` of a Crash or crash dict; {} without a finder."""
    if finder is None:
        return {}
    from coredump.report.json import crash_to_dict
    from coredump.report.source import source_excerpts

    return source_excerpts(crash if isinstance(crash, dict) else crash_to_dict(crash), finder)


# click.echo's rule for a message printed without colour (click/_compat.py, _ansi_re).
_ANSI = lazy_compile(r"\033\[[;?0-9]*[a-zA-Z]", needs=("\033[",))


def run_fast(parsed: AnalyzeArgs) -> int:
    """``coredump analyze`` without click: the report on stdout, as click.echo writes it."""
    from coredump.cli.failure import run_guarded

    def body():
        text, newline, color = explain(parsed.core, parsed.fmt, parsed.max_core_size, parsed.show_source,
                                       parsed.source_dirs, parsed.prefix_maps, **parsed.opts)
        sys.stdout.write((text if color else _ANSI.sub("", text)) + ("\n" if newline else ""))
        sys.stdout.flush()

    return run_guarded(body)
