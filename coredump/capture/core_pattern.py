"""
Core pattern
============

Parse ``/proc/sys/kernel/core_pattern`` the way the kernel's ``format_corename``
(fs/coredump.c) expands it, and turn it into the names and directories to search.
"""

from __future__ import annotations

import os
import re

__all__ = (
    "SPECIFIERS", "CorePattern", "parse_core_pattern", "read_core_pattern", "describe_core_pattern",
    "GENERIC_CORE_NAME", "pipe_kind",
)

PROC_CORE_PATTERN = "/proc/sys/kernel/core_pattern"
PROC_CORE_USES_PID = "/proc/sys/kernel/core_uses_pid"

# The specifiers of Documentation/admin-guide/sysctl/kernel.rst ("core_pattern"), with
# the regular expression that matches what format_corename writes for each.
_DIGITS = r"\d+"
_NAME = r"[^/]+"  # cn_esc_printf: '/' becomes '!', an empty value becomes '!'
SPECIFIERS = {
    "p": ("PID in the process's own PID namespace", _DIGITS),
    "P": ("PID in the initial PID namespace", _DIGITS),
    "i": ("TID of the crashing thread", _DIGITS),
    "I": ("TID in the initial PID namespace", _DIGITS),
    "u": ("real UID", _DIGITS),
    "g": ("real GID", _DIGITS),
    "d": ("dump mode (suid_dumpable)", _DIGITS),
    "s": ("signal number", _DIGITS),
    "t": ("time of dump, seconds since the epoch", _DIGITS),
    "h": ("hostname", _NAME),
    "e": ("executable name (comm, at most 15 characters)", _NAME),
    "f": ("executable file name", _NAME),
    "E": ("executable path with '/' replaced by '!'", _NAME),
    "c": ("soft RLIMIT_CORE", _DIGITS),
    "C": ("CPU the task ran on", _DIGITS),
    "F": ("pidfd number", _DIGITS),
}

# Names a core may have whatever the pattern: core, core.PID, core.PID.EXE (core_uses_pid,
# or an earlier pattern), and the names of the test fixtures and common CI setups.
GENERIC_CORE_NAME = re.compile(r"core(\.[^/]*)?")


class CorePattern:
    """A parsed core_pattern.

    ``pipe`` is the program argv when the pattern starts with ``|`` (the kernel then
    writes no file); otherwise ``path`` is the file-name template, absolute or relative to
    the crashing process's working directory, ``regex`` matches the names it produces and
    ``directory`` is the longest leading directory without a specifier. (A plain class,
    not a dataclass: ``dataclasses`` imports ``inspect``, too slow for the run wrapper.)
    """

    __slots__ = ("raw", "uses_pid", "pipe", "path", "regex")

    def __init__(self, raw: str, uses_pid: bool = False, pipe: tuple[str, ...] | None = None,
                 path: str = "", regex: re.Pattern | None = None):
        self.raw, self.uses_pid, self.pipe, self.path, self.regex = raw, uses_pid, pipe, path, regex

    def __repr__(self) -> str:
        return f"CorePattern({self.raw!r}, uses_pid={self.uses_pid})"

    @property
    def is_pipe(self) -> bool:
        return self.pipe is not None

    @property
    def is_absolute(self) -> bool:
        return self.path.startswith("/")

    @property
    def directory(self) -> str | None:
        """The fixed directory an absolute pattern writes into (or below), else None."""
        if not self.is_absolute:
            return None
        fixed = []
        for part in self.path.split("/")[:-1]:
            if "%" in part:
                break
            fixed.append(part)
        return "/".join(fixed) or "/"

    @property
    def depth(self) -> int:
        """How many path components below ``directory`` (or the cwd) a core lies."""
        base = self.directory
        rest = self.path[len(base):] if base else self.path
        return len([p for p in rest.split("/") if p])

    def dumping_cwd(self, core: str) -> str | None:
        """The crashing process's working directory, proved by where the kernel wrote `core`:
        a relative pattern's name is opened relative to the dumping task's cwd (fs/coredump.c
        do_coredump, "cn.corename" without a leading '/'), so the cwd is `core`'s path less
        the pattern's components; None for a pipe or an absolute pattern."""
        if self.is_pipe or not self.path or self.is_absolute:
            return None
        path = os.path.abspath(core)
        for _ in range(self.depth):
            path = os.path.dirname(path)
        return path

    def matches(self, path: str) -> bool:
        """Whether `path` (absolute for an absolute pattern, else a name relative to the
        crashing process's cwd) is a name this pattern produces."""
        return self.regex is not None and self.regex.fullmatch(path) is not None

    @property
    def program(self) -> str | None:
        return self.pipe[0] if self.pipe else None


def _template_regex(template: str) -> str:
    out = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch == "%" and i + 1 < len(template):
            spec = template[i + 1]
            i += 2
            if spec == "%":
                out.append("%")
            elif spec in SPECIFIERS:
                out.append(SPECIFIERS[spec][1])
            # format_corename: an unknown specifier expands to nothing.
            continue
        if ch == "%":  # a trailing lone '%' is dropped too
            i += 1
            continue
        out.append(re.escape(ch))
        i += 1
    return "".join(out)


def parse_core_pattern(raw: str, uses_pid: bool = False) -> CorePattern:
    """Parse a core_pattern value.

    >>> parse_core_pattern("core.%p.%E").matches("core.1234.!tmp!prog")
    True
    >>> parse_core_pattern("|/usr/lib/systemd/systemd-coredump %P %u").pipe
    ('/usr/lib/systemd/systemd-coredump', '%P', '%u')
    """
    pattern = raw.rstrip("\n")
    if pattern.startswith("|"):
        # fs/coredump.c: a pipe's arguments are split on spaces, each expanded alone.
        argv = tuple(a for a in pattern[1:].lstrip().split(" ") if a)
        return CorePattern(raw=pattern, uses_pid=uses_pid, pipe=argv)
    # An empty pattern makes format_corename write nothing, so no core is dumped.
    template = pattern
    if template and uses_pid and not re.search(r"(?<!%)(?:%%)*%p", template):
        # format_corename: "Backward compatibility with core_uses_pid: If core_pattern
        # does not include a %p (as is the default) and core_uses_pid is set, then .%pid
        # will be appended to the filename." (%P does not count).
        template += ".%p"
    regex = re.compile(_template_regex(template)) if template else None
    return CorePattern(raw=pattern, uses_pid=uses_pid, path=template, regex=regex)


def read_core_pattern(proc_dir: str = "/proc/sys/kernel") -> CorePattern:
    """The pattern this machine's kernel uses now (OSError when /proc is unreadable)."""
    with open(os.path.join(proc_dir, "core_pattern")) as f:
        raw = f.read()
    try:
        with open(os.path.join(proc_dir, "core_uses_pid")) as f:
            uses_pid = f.read().strip() not in ("", "0")
    except OSError:
        uses_pid = False
    return parse_core_pattern(raw, uses_pid)


def _pipe_kind(program: str) -> str:
    name = os.path.basename(program)
    if "systemd-coredump" in name:
        return "systemd-coredump"
    if "apport" in name:
        return "apport"
    return "other"


def describe_core_pattern(pattern: CorePattern) -> str:
    """What the pattern means, in plain words.

    >>> describe_core_pattern(parse_core_pattern("core"))
    "cores are written as 'core' in the crashing process's working directory"
    """
    if pattern.is_pipe:
        kind = _pipe_kind(pattern.program or "")
        where = {
            "systemd-coredump": "systemd-coredump, which keeps them in the journal or "
                                "/var/lib/systemd/coredump (read them back with coredumpctl)",
            "apport": "apport, which writes crash reports to /var/crash (and a core only "
                      "for packaged programs)",
            "other": f"the program {pattern.program}",
        }[kind]
        return f"cores are piped to {where}; the kernel writes no core file"
    if not pattern.path:
        return "core_pattern is empty: the kernel writes no core at all"
    # Specifiers read left to right as the kernel does (fs/coredump.c format_corename): "%%"
    # is a literal percent sign, so "%%core" holds no %c.
    used = set(re.findall(r"%(.)", pattern.path))
    parts = [f"%{s} = {d}" for s, (d, _) in SPECIFIERS.items() if s in used]
    legend = f" ({'; '.join(parts)})" if parts else ""
    if pattern.is_absolute:
        return f"cores are written as {pattern.path!r}{legend}"
    return f"cores are written as {pattern.path!r} in the crashing process's working directory{legend}"


def pipe_kind(pattern: CorePattern) -> str | None:
    """'systemd-coredump', 'apport' or 'other' for a pipe; None for a file pattern."""
    return _pipe_kind(pattern.program or "") if pattern.is_pipe else None

