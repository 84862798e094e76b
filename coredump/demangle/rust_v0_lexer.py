"""
Rust v0 lexer
=============

The terminals of Rust's v0 mangling (RFC 2603): base-62 numbers, hex nibbles, identifiers
(Punycode-decoded, RFC 3492) and backrefs, as rustc-demangle's v0 ``Parser`` reads them.
"""

from __future__ import annotations

from coredump.patterns import lazy_compile

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Tuple

__all__ = ("Invalid", "Lexer", "punycode_decode")

_DECIMAL = lazy_compile(r"0|[1-9]\d*")
# RFC 3492 §5 "Parameter values for Punycode"
_BASE, _T_MIN, _T_MAX, _SKEW, _DAMP, _INITIAL_BIAS, _INITIAL_N = 36, 1, 26, 38, 700, 72, 0x80


class Invalid(Exception):
    """Not a v0 symbol, or one past the demangler's bounds."""


class Lexer:
    """Position in a v0 symbol (after ``_R``) and the terminals read there."""

    def __init__(self, sym: str):
        self.s, self.i = sym, 0

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def eat(self, ch: str) -> bool:
        if self.peek() == ch:
            self.i += 1
            return True
        return False

    def next(self) -> str:
        ch = self.peek()
        if not ch:
            raise Invalid
        self.i += 1
        return ch

    def integer_62(self) -> int:
        """<base-62-number>: ``_`` is 0, else the digits' value plus one."""
        if self.eat("_"):
            return 0
        x = 0
        while not self.eat("_"):
            ch = self.next()
            if ch.isdigit():
                d = ord(ch) - 48
            elif "a" <= ch <= "z":
                d = 10 + ord(ch) - 97
            elif "A" <= ch <= "Z":
                d = 36 + ord(ch) - 65
            else:
                raise Invalid
            x = x * 62 + d
        return x + 1

    def opt_integer_62(self, tag: str) -> int:
        return self.integer_62() + 1 if self.eat(tag) else 0

    def hex_nibbles(self) -> str:
        start = self.i
        while not self.eat("_"):
            if self.next() not in "0123456789abcdef":
                raise Invalid
        return self.s[start:self.i - 1]

    def ident(self) -> Tuple[str, str]:
        """<identifier> = [``u``] <decimal-number> [``_``] <bytes>: (ascii, punycode)."""
        punycode = self.eat("u")
        m = _DECIMAL.match(self.s, self.i)
        if not m:
            raise Invalid
        self.i = m.end()
        self.eat("_")
        n = int(m.group())
        text = self.s[self.i:self.i + n]
        if len(text) != n:
            raise Invalid
        self.i += n
        if not punycode:
            return text, ""
        ascii_part, _, code = text.rpartition("_")
        if not code:
            raise Invalid
        return ascii_part, code

    def backref(self) -> int:
        """<backref> = ``B`` <base-62-number>: a position before this one (RFC 2603)."""
        start = self.i - 1
        target = self.integer_62()
        if target >= start:
            raise Invalid
        return target


def punycode_decode(ascii_part: str, code: str) -> str:
    """RFC 3492 §6.2 decoding with RFC 2603's ``_`` delimiter already split off."""
    out = list(ascii_part)
    i, n, pos, bias, first = 0, _INITIAL_N, 0, _INITIAL_BIAS, True
    while pos < len(code):
        delta, pos = _variable_integer(code, pos, bias)
        i += delta
        n += i // (len(out) + 1)
        i %= len(out) + 1
        if n > 0x10FFFF or len(out) > 1024:
            raise Invalid
        out.insert(i, chr(n))
        i += 1
        bias = _adapt(delta, len(out), first)
        first = False
    return "".join(out)


def _variable_integer(code: str, pos: int, bias: int) -> Tuple[int, int]:
    """RFC 3492 §6.2's generalized variable-length integer at `pos`: (value, next pos)."""
    delta, w, k = 0, 1, 0
    while True:
        k += _BASE
        t = min(max(k - bias, _T_MIN), _T_MAX)
        if pos >= len(code):
            raise Invalid
        ch = code[pos]
        pos += 1
        if "a" <= ch <= "z":
            d = ord(ch) - 97
        elif ch.isdigit():
            d = 26 + ord(ch) - 48
        else:
            raise Invalid
        delta += d * w
        if d < t:
            return delta, pos
        w *= _BASE - t


def _adapt(delta: int, numpoints: int, first: bool) -> int:
    """RFC 3492 §6.1 bias adaptation."""
    delta //= _DAMP if first else 2
    delta += delta // numpoints
    k = 0
    while delta > ((_BASE - _T_MIN) * _T_MAX) // 2:
        delta //= _BASE - _T_MIN
        k += _BASE
    return k + ((_BASE - _T_MIN + 1) * delta) // (delta + _SKEW)
