"""
Patterns
========

Regular expressions compiled on first use. ``re.compile`` at import costs 0.1-4 ms a pattern
(sre's parser and compiler are Python); most of the patterns a module holds serve cases one
analysis never meets (an assertion message, a Rust or Go name, a JUnit flag), and ``analyze``
imports ~40 of them. ``re`` itself (with ``enum``, ``functools`` and ``collections``, ~5 ms) is
imported at the first compile: a C crash's analysis may compile none.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from typing import Tuple

__all__ = ("lazy_compile", "LazyPattern")


class LazyPattern:
    """A ``re.Pattern`` stand-in for the methods the project calls on its patterns. `needs`:
    strings one of which every match holds; a text without any has no match, and the
    pattern is not compiled for it (most names an analysis normalizes are plain C names)."""

    __slots__ = ("_args", "_compiled", "_needs")

    def __init__(self, pattern, flags: int = 0, needs: Tuple[str, ...] = ()):
        self._args = (pattern, flags)
        self._compiled = None
        self._needs = needs

    @property
    def compiled(self) -> re.Pattern:
        if self._compiled is None:
            import re

            self._compiled = re.compile(*self._args)
        return self._compiled

    @property
    def pattern(self):
        return self._args[0]

    def _absent(self, string) -> bool:
        return bool(self._needs) and isinstance(string, str) and not any(n in string for n in self._needs)

    def match(self, string, *args):
        return None if self._absent(string) else self.compiled.match(string, *args)

    def fullmatch(self, string, *args):
        return None if self._absent(string) else self.compiled.fullmatch(string, *args)

    def search(self, string, *args):
        return None if self._absent(string) else self.compiled.search(string, *args)

    def sub(self, repl, string, *args, **kwargs):
        return string if self._absent(string) else self.compiled.sub(repl, string, *args, **kwargs)

    def findall(self, string, *args):
        return [] if self._absent(string) else self.compiled.findall(string, *args)

    def finditer(self, string, *args):
        return iter(()) if self._absent(string) else self.compiled.finditer(string, *args)

    def split(self, string, *args, **kwargs):
        return [string] if self._absent(string) else self.compiled.split(string, *args, **kwargs)


def lazy_compile(pattern, flags: int = 0, needs: Tuple[str, ...] = ()) -> LazyPattern:
    return LazyPattern(pattern, flags, needs)
