"""
Itanium reader
==============

The cursor over an Itanium C++ ABI (§5.1) mangled name and the two tables a name refers back
into, substitutions and template parameters (§5.1.10), as cpp_demangle's ``index_str`` and
``subs`` modules and LLVM's ``AbstractManglingParser`` state keep them.
"""

from __future__ import annotations

from coredump.patterns import lazy_compile

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List

__all__ = ("Fail", "Type", "Reader", "STD_SUBST")

# c++filt runs with DMGL_VERBOSE: the full expansions of ABI §5.1.10's abbreviations.
STD_SUBST = {
    "a": "std::allocator", "b": "std::basic_string",
    "s": "std::basic_string<char, std::char_traits<char>, std::allocator<char> >",
    "i": "std::basic_istream<char, std::char_traits<char> >",
    "o": "std::basic_ostream<char, std::char_traits<char> >",
    "d": "std::basic_iostream<char, std::char_traits<char> >",
}
_NUMBER = lazy_compile(r"n?\d+")


class Fail(Exception):
    """The name is not one the grammar (or this subset of it) accepts."""


class Type:
    """A demangled type as the text before and after the declarator (``int (*)(char)``)."""

    __slots__ = ("left", "right", "ref")

    def __init__(self, left: str, right: str = "", ref: bool = False):
        self.left, self.right, self.ref = left, right, ref

    def __str__(self) -> str:
        return self.left + self.right


class Reader:
    """Position in the mangled text, and what a later ``S_``/``T_`` may name."""

    def __init__(self, text: str):
        self.s = text
        self.i = 0
        self.subs: List[Type] = []
        self.tmpl: List[Type] = []
        self.depth = 0  # > 0 inside a <type>: template args there are not the function's

    def peek(self, n: int = 1) -> str:
        return self.s[self.i:self.i + n]

    def take(self, prefix: str) -> bool:
        if self.s.startswith(prefix, self.i):
            self.i += len(prefix)
            return True
        return False

    def expect(self, prefix: str) -> None:
        if not self.take(prefix):
            raise Fail(self.i)

    def number(self) -> int:
        """<number> ::= [n] <non-negative decimal integer>"""
        m = _NUMBER.match(self.s, self.i)
        if not m:
            raise Fail(self.i)
        self.i = m.end()
        text = m.group()
        return -int(text[1:]) if text[0] == "n" else int(text)

    def seq_id(self, end: str) -> int:
        """<seq-id> in base 36, the empty id being 0 and the rest 1-based (ABI §5.1.10)."""
        j = self.s.index(end, self.i)
        digits = self.s[self.i:j]
        self.i = j + 1
        return 0 if not digits else int(digits, 36) + 1

    def source_name(self) -> str:
        """<source-name> ::= <positive length number> <identifier>"""
        n = self.number()
        text = self.s[self.i:self.i + n]
        if len(text) != n:
            raise Fail(self.i)
        self.i += n
        return "(anonymous namespace)" if text.startswith("_GLOBAL__N") else text

    def template_param(self) -> Type:
        """<template-param> ::= T [<seq-id>] _"""
        self.expect("T")
        n = self.seq_id("_")
        if n >= len(self.tmpl):
            raise Fail(self.i)
        return self.tmpl[n]

    def substitution(self) -> Type:
        """<substitution> ::= S [<seq-id>] _ | St | Sa | Sb | Ss | Si | So | Sd"""
        self.expect("S")
        ch = self.peek()
        if ch in STD_SUBST:
            self.i += 1
            return Type(STD_SUBST[ch])
        n = self.seq_id("_")
        if n >= len(self.subs):
            raise Fail(self.i)
        return self.subs[n]
