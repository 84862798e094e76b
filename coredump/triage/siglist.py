"""
Signature lists
===============

The frame and module lists of ``siglists/`` (one regular expression per line, as Socorro's
``siglists``), matched whole against a name. Compiling the lists as one alternation costs
more than the rest of a signature (9 ms of re compilation per analysis), so each line is
compiled only when a name could match it: a line's literal prefix (the characters before
its first metacharacter) must start the name, and a line without metacharacters is a plain
string comparison.
"""

from __future__ import annotations

import os
import re
from functools import cache

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Optional, Pattern, Tuple, Union
    StrPath = Union[str, "os.PathLike[str]"]

__all__ = ("SIGLISTS", "Siglist", "load_siglist", "read_lines", "literal_prefix")

# A str, not a pathlib.Path: pathlib (with urllib.parse) is ~5 ms of analyze's start-up.
SIGLISTS = os.path.join(os.path.dirname(os.path.realpath(__file__)), "siglists")
_META = set("\\.^$*+?{}[]()|")
_QUANTIFIERS = set("*+?{")


def literal_prefix(pattern: str) -> str:
    """The text every full match of `pattern` starts with: the characters before the first
    metacharacter, less the last one when a quantifier follows it (``ab?c`` -> ``a``); empty
    when the pattern has a top-level ``|`` (its alternatives start differently)."""
    depth = 0
    escaped = False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            return ""
    for i, ch in enumerate(pattern):
        if ch in _META:
            return pattern[:i - 1] if ch in _QUANTIFIERS and i else pattern[:i]
    return pattern


class Siglist:
    """One siglist file: ``fullmatch(name)`` is true when any line matches all of `name`."""

    def __init__(self, lines: Tuple[str, ...]):
        self._literals = frozenset(line for line in lines if not _META.intersection(line))
        self._patterns = tuple((literal_prefix(line), line) for line in lines if _META.intersection(line))

    def fullmatch(self, name: str) -> bool:
        if name in self._literals:
            return True
        for prefix, line in self._patterns:
            if name.startswith(prefix) and _compiled(line).fullmatch(name):
                return True
        return False


@cache
def _compiled(line: str) -> Pattern:
    return re.compile(line)


@cache
def read_lines(name: str, directory: Optional[StrPath] = None) -> Tuple[str, ...]:
    """The lines of ``siglists/<name>`` in file order, stripped, less blank lines and
    comments (a line whose first non-blank character is ``#``)."""
    with open(os.path.join(directory or SIGLISTS, name), encoding="utf-8") as f:
        text = f.read()
    return tuple(s for s in (raw.strip() for raw in text.splitlines()) if s and not s.startswith("#"))


@cache
def load_siglist(name: str, directory: Optional[StrPath] = None) -> Siglist:
    """The non-comment lines of ``siglists/<name>`` (:func:`read_lines`)."""
    return Siglist(read_lines(name, directory))
