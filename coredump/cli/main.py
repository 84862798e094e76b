"""
Command line
============

The ``coredump`` command: parse arguments, call the library, and turn every
``CoreDumpError`` into one ``Error: …`` line and a non-zero exit status.
"""

from __future__ import annotations

import click

from coredump.cli.errors import handle_errors

__all__ = ("main", "handle_errors")


# Commands that live in their own modules, imported only when named (click's "lazily loading
# subcommands"): `analyze` then pays for none of them (about 8 ms of imports).
_LAZY_COMMANDS = {
    "run": "coredump.cli.capture:run", "harvest": "coredump.cli.capture:harvest",
    "doctor": "coredump.cli.capture:doctor", "report": "coredump.cli.report:report",
    "gdb": "coredump.cli.bundle:gdb", "slim": "coredump.cli.bundle:slim",
    "diff": "coredump.cli.triage:diff", "record": "coredump.cli.history:record",
    "top": "coredump.cli.history:top", "history": "coredump.cli.history:history",
}
_LAZY_GROUPS = ("coredump.cli.store:COMMANDS",)  # modules that list several commands


class LazyGroup(click.Group):
    """A group whose commands outside this module are imported on first use."""

    def list_commands(self, ctx):
        self._load_groups()
        return sorted(set(super().list_commands(ctx)) | set(_LAZY_COMMANDS))

    def get_command(self, ctx, cmd_name):
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _LAZY_COMMANDS:
            command = _load(_LAZY_COMMANDS[cmd_name])
            self.add_command(command, cmd_name)
        if command is None:
            self._load_groups()
            command = super().get_command(ctx, cmd_name)
        return command

    def format_commands(self, ctx, formatter):
        """Each command's whole first paragraph, wrapped, where click would cut it at ~45
        characters with "..."."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                text = command.short_help or (command.help or "").split("\n\n")[0]
                rows.append((name, " ".join(text.replace("\b", "").split())))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def _load_groups(self) -> None:
        for spec in _LAZY_GROUPS:
            for command in _load(spec):
                if command.name not in self.commands:
                    self.add_command(command)


def _load(spec: str):
    import importlib

    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="coredump")
def main():
    """Capture, explain and publish core dumps."""


def analysis_options(func):
    """The options every command that reads a core shares."""
    opts = [
        click.option("--exe", type=click.Path(dir_okay=False), help="The executable (overrides the core's path)."),
        click.option("--sysroot", type=click.Path(file_okay=False), help="Prefix for every module path."),
        click.option("--search-path", "search_paths", multiple=True, type=click.Path(file_okay=False),
                     help="Directory to search for modules by path suffix and name (repeatable)."),
        click.option("--debug-dir", "debug_dirs", multiple=True, type=click.Path(file_okay=False),
                     help="Debug-file directory (default /usr/lib/debug; repeatable)."),
        click.option("--max-frames", default=1024, show_default=True, type=click.IntRange(1, 1 << 20),
                     help="Frames per thread before the walk is cut."),
        click.option("--debuginfod-timeout", type=click.FloatRange(0),
                     help="Seconds in all one analysis waits for DEBUGINFOD_URLS servers (used only when set; "
                          "default: $DEBUGINFOD_TIMEOUT, else 5)."),
        click.option("--no-values", "no_values", is_flag=True,
                     help="Leave out the frames' arguments and locals (read from the crashed program's memory): "
                          "faster, and nothing of the program's data in the report."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _size(text):
    """Bytes for --max-core-size (``512M``, ``2G``), or None."""
    if text is None:
        return None
    from coredump.cli.sizes import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command()
@click.argument("core", type=click.Path())
@analysis_options
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html", "junit"]), default="text",
              show_default=True)
@click.option("--max-core-size", metavar="SIZE", callback=lambda ctx, param, value: _size(value),
              help="Decompress a core.zst to at most SIZE (e.g. 2G; default: what its zstd header "
                   "declares, within the space free in TMPDIR).")
@click.option("--source/--no-source", "show_source", default=True, show_default=True,
              help="Show the source lines around frame 0 and the start-here frame (text and html), "
                   "where the file is readable.")
@click.option("--source-dir", "source_dirs", multiple=True, type=click.Path(file_okay=False),
              help="Directory to search for source files by path suffix (repeatable).")
@click.option("--source-prefix-map", "prefix_maps", multiple=True, metavar="OLD=NEW",
              callback=lambda ctx, param, value: _prefix_maps(value),
              help="Read sources under NEW where the build's paths start with OLD (gcc's "
                   "-fdebug-prefix-map spelling; repeatable, the last matching one wins).")
@handle_errors
def analyze(core, fmt, max_core_size=None, show_source=True, source_dirs=(), prefix_maps=(), **opts):
    """Explain one crash (a core, a core.zst or a crash directory): signal, faulting
    address, every thread's backtrace, modules, and the source around the crash."""
    from coredump.cli.analyze import explain

    text, newline, color = explain(core, fmt, max_core_size, show_source, source_dirs, prefix_maps, **opts)
    click.echo(text, nl=newline, color=color)  # click strips colour off a TTY


def _prefix_maps(values):
    from coredump.symbols.sources import parse_prefix_map

    try:
        return tuple(parse_prefix_map(v) for v in values)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


if __name__ == "__main__":
    main()
