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

__all__ = ("lazy_compile", "LazyPattern")


class LazyPattern:
    """A ``re.Pattern`` stand-in for the methods the project calls on its patterns."""

    __slots__ = ("_args", "_compiled")

    def __init__(self, pattern, flags: int = 0):
        self._args = (pattern, flags)
        self._compiled = None

    @property
    def compiled(self) -> re.Pattern:
        if self._compiled is None:
            import re

            self._compiled = re.compile(*self._args)
        return self._compiled

    @property
    def pattern(self):
        return self._args[0]

    def match(self, *args):
        return self.compiled.match(*args)

    def fullmatch(self, *args):
        return self.compiled.fullmatch(*args)

    def search(self, *args):
        return self.compiled.search(*args)

    def sub(self, *args, **kwargs):
        return self.compiled.sub(*args, **kwargs)

    def findall(self, *args):
        return self.compiled.findall(*args)

    def finditer(self, *args):
        return self.compiled.finditer(*args)

    def split(self, *args, **kwargs):
        return self.compiled.split(*args, **kwargs)


def lazy_compile(pattern, flags: int = 0) -> LazyPattern:
    return LazyPattern(pattern, flags)
