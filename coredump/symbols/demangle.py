"""
Demangling
==========

C++ (Itanium C++ ABI §5.1, ``_Z…``) symbol names shown the way c++filt and gdb show them,
and Rust's (v0 ``_R…`` and legacy, in :mod:`coredump.symbols.demangle_rust`) without their
crate disambiguators and hashes; ``None`` for a name that is not mangled or not understood.
"""

from __future__ import annotations

import re
from typing import List, Optional

from coredump.symbols.demangle_rust import demangle_legacy, demangle_v0

__all__ = ("demangle",)

_BUILTIN = {
    "v": "void", "w": "wchar_t", "b": "bool", "c": "char", "a": "signed char",
    "h": "unsigned char", "s": "short", "t": "unsigned short", "i": "int", "j": "unsigned int",
    "l": "long", "m": "unsigned long", "x": "long long", "y": "unsigned long long",
    "n": "__int128", "o": "unsigned __int128", "f": "float", "d": "double",
    "e": "long double", "g": "__float128", "z": "...",
}
_BUILTIN_D = {"d": "decimal64", "e": "decimal128", "f": "decimal32", "h": "half", "i": "char32_t",
              "s": "char16_t", "u": "char8_t", "a": "auto", "c": "decltype(auto)", "n": "decltype(nullptr)"}
# c++filt runs with DMGL_VERBOSE: the full expansions of ABI §5.1.10's abbreviations.
_STD_SUBST = {
    "a": "std::allocator", "b": "std::basic_string",
    "s": "std::basic_string<char, std::char_traits<char>, std::allocator<char> >",
    "i": "std::basic_istream<char, std::char_traits<char> >",
    "o": "std::basic_ostream<char, std::char_traits<char> >",
    "d": "std::basic_iostream<char, std::char_traits<char> >",
}
_OPERATORS = {
    "nw": "new", "na": "new[]", "dl": "delete", "da": "delete[]", "ps": "+", "ng": "-",
    "ad": "&", "de": "*", "co": "~", "pl": "+", "mi": "-", "ml": "*", "dv": "/", "rm": "%",
    "an": "&", "or": "|", "eo": "^", "aS": "=", "pL": "+=", "mI": "-=", "mL": "*=",
    "dV": "/=", "rM": "%=", "aN": "&=", "oR": "|=", "eO": "^=", "ls": "<<", "rs": ">>",
    "lS": "<<=", "rS": ">>=", "eq": "==", "ne": "!=", "lt": "<", "gt": ">", "le": "<=",
    "ge": ">=", "ss": "<=>", "nt": "!", "aa": "&&", "oo": "||", "pp": "++", "mm": "--",
    "cm": ",", "pm": "->*", "pt": "->", "cl": "()", "ix": "[]", "qu": "?",
}
_SPECIAL = {"TV": "vtable for ", "TT": "VTT for ", "TI": "typeinfo for ",
            "TS": "typeinfo name for ", "GV": "guard variable for ", "TH": "TLS init function for ",
            "TW": "TLS wrapper function for ", "GR": "reference temporary for "}


class _Fail(Exception):
    pass


class _Type:
    """A demangled type as the text before and after the declarator (``int (*)(char)``)."""

    __slots__ = ("left", "right", "ref")

    def __init__(self, left: str, right: str = "", ref: bool = False):
        self.left, self.right, self.ref = left, right, ref

    def __str__(self) -> str:
        return self.left + self.right


class _Parser:
    def __init__(self, text: str):
        self.s = text
        self.i = 0
        self.subs: List[_Type] = []
        self.tmpl: List[_Type] = []
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
            raise _Fail(self.i)

    def number(self) -> int:
        m = re.compile(r"n?\d+").match(self.s, self.i)
        if not m:
            raise _Fail(self.i)
        self.i = m.end()
        text = m.group()
        return -int(text[1:]) if text[0] == "n" else int(text)

    def seq_id(self, end: str) -> int:
        """<seq-id> in base 36, the empty id being 0 and the rest 1-based (ABI §5.1.10)."""
        j = self.s.index(end, self.i)
        digits = self.s[self.i:j]
        self.i = j + 1
        return 0 if not digits else int(digits, 36) + 1

    # <encoding> ::= <name> <bare-function-type> | <name> | <special-name>
    def encoding(self, local: bool = False) -> str:
        for code, text in _SPECIAL.items():
            if self.take(code):
                inner = self.encoding() if code[0] in "GT" and code in ("GV", "TH", "TW", "GR") \
                    else str(self.type())
                return text + inner
        if self.take("GTt"):
            return "transaction clone for " + self.encoding()
        if self.take("Th") or self.take("Tv"):
            kind = self.s[self.i - 1]
            self.call_offset(kind)
            return ("non-virtual thunk to " if kind == "h" else "virtual thunk to ") + self.encoding()
        if self.take("Tc"):
            self.call_offset(self.s[self.i]) if False else None
            raise _Fail(self.i)
        name, cv, is_template, ctor = self.name()
        if self.i >= len(self.s) or self.peek() in ("E", "."):
            return name
        ret = ""
        if is_template and not ctor:
            ret = str(self.type()) + " "
            if local:
                ret = ""  # c++filt omits the return type of a local name's function
        params = self.params()
        return ret + name + params + cv

    def call_offset(self, kind: str) -> None:
        self.number()
        self.expect("_")
        if kind == "v":
            self.number()
            self.expect("_")

    def params(self) -> str:
        types = []
        while self.i < len(self.s) and self.peek() not in ("E", "."):
            types.append(str(self.type()))
        if types == ["void"]:
            types = []
        return "(" + ", ".join(types) + ")"

    # <name>: returns (text, cv-qualifiers of a member function, ends in template args, is ctor/dtor)
    def name(self):
        if self.take("N"):
            return self.nested_name()
        if self.take("Z"):
            return self.local_name()
        if self.peek(2) == "St":
            self.i += 2
            text, _ = self.unqualified_name("std")
            text = "std::" + text
        elif self.peek() == "S":
            text = str(self.substitution())
            if self.peek() != "I":
                raise _Fail(self.i)
        else:
            text, _ = self.unqualified_name(None)
        if self.peek() == "I":
            self.subs.append(_Type(text))
            args = self.template_args()
            return _join_args(text, args), "", True, False
        self.subs.append(_Type(text)) if False else None
        return text, "", False, False

    def local_name(self):
        outer = self.encoding(local=True)
        self.expect("E")
        if self.take("s"):
            self.discriminator()
            return outer + "::string literal", "", False, False
        name, cv, tmpl, ctor = self.name()
        self.discriminator()
        return outer + "::" + name, cv, tmpl, ctor

    def discriminator(self) -> None:
        if self.take("__"):
            self.seq_id("_") if False else self.number()
            self.take("_")
        elif self.take("_"):
            self.number()

    def cv(self) -> str:
        out = []
        for code, word in (("r", "restrict"), ("V", "volatile"), ("K", "const")):
            if self.take(code):
                out.append(word)
        return "".join(" " + w for w in reversed(out)) if out else ""

    def nested_name(self):
        cv = self.cv()
        if self.take("R"):
            cv += " &"
        elif self.take("O"):
            cv += " &&"
        parts: Optional[str] = None
        last = ""
        is_template = ctor = False
        while not self.take("E"):
            is_template = False
            if self.peek() == "S" and self.peek(2) != "St" or self.peek() == "T" and parts is None \
                    and self.peek(2) != "Ts":
                is_sub = self.peek() == "S"
                parts = str(self.substitution() if is_sub else self.template_param())
                last = parts
                if is_sub:
                    continue  # a substitution is not a new candidate (ABI §5.1.10)
            elif self.take("St"):
                parts = "std"
                continue
            elif self.peek() == "I":
                if parts is None:
                    raise _Fail(self.i)
                parts = _join_args(parts, self.template_args())
                is_template = True
            elif self.take("DT") or self.take("Dt"):
                raise _Fail(self.i)
            else:
                text, ctor = self.unqualified_name(last)
                last = text.split("<")[0] if not ctor else last
                parts = text if parts is None else parts + "::" + text
                if not ctor:
                    last = text
            if self.peek() != "E" or True:
                self.subs.append(_Type(parts))
        if parts is None:
            raise _Fail(self.i)
        if self.subs and self.subs[-1].left == parts:
            self.subs.pop()  # the whole nested name is not a substitution candidate by itself
        return parts, cv, is_template, ctor

    def unqualified_name(self, enclosing: Optional[str]):
        """(text, is ctor/dtor) of one name component (ABI <unqualified-name>)."""
        ch = self.peek()
        if ch.isdigit():
            text = self.source_name()
        elif self.take("C"):
            self.take("I")
            self.i += 1
            return _base_name(enclosing), True
        elif self.take("D") and self.peek() in "012345":
            self.i += 1
            return "~" + _base_name(enclosing), True
        elif self.take("Ut"):
            n = self.seq_id("_")
            text = "{unnamed type#" + str(n + 1) + "}"
        elif self.take("Ul"):
            sig = self.params_until("E")
            n = self.seq_id("_")
            text = "{lambda" + sig + "#" + str(n + 1) + "}"
        elif self.take("L"):
            text = self.source_name()
            self.discriminator()
        else:
            text = self.operator_name()
        while self.take("B"):
            text += f"[abi:{self.source_name()}]"
        return text, False

    def params_until(self, end: str) -> str:
        types = []
        while not self.take(end):
            types.append(str(self.type()))
        if types == ["void"]:
            types = []
        return "(" + ", ".join(types) + ")"

    def source_name(self) -> str:
        n = self.number()
        text = self.s[self.i:self.i + n]
        if len(text) != n:
            raise _Fail(self.i)
        self.i += n
        return "(anonymous namespace)" if text.startswith("_GLOBAL__N") else text

    def operator_name(self) -> str:
        code = self.peek(2)
        if code == "cv":
            self.i += 2
            return "operator " + str(self.type())
        if code == "li":
            self.i += 2
            return 'operator"" ' + self.source_name()
        if code in _OPERATORS:
            self.i += 2
            op = _OPERATORS[code]
            return "operator" + (" " if op[0].isalpha() else "") + op
        raise _Fail(self.i)

    def template_args(self) -> str:
        self.expect("I")
        args = []
        while not self.take("E"):
            arg = self.template_arg()
            if arg:  # an empty pack (J E) prints nothing
                args.append(arg)
        if self.depth == 0:
            self.tmpl = [_Type(a) for a in args]
        text = "<" + ", ".join(args)
        return text + (" >" if text.endswith(">") else ">")

    def template_arg(self) -> str:
        if self.take("L"):
            return self.literal()
        if self.take("X"):
            raise _Fail(self.i)
        if self.take("J"):
            inner = []
            while not self.take("E"):
                inner.append(self.template_arg())
            return ", ".join(inner)
        return str(self.type())

    def literal(self) -> str:
        if self.take("_Z"):
            text = self.encoding()
            self.expect("E")
            return text
        ty = self.type()
        m = re.compile(r"n?[0-9a-f]*").match(self.s, self.i)
        self.i = m.end()
        self.expect("E")
        value = m.group().replace("n", "-")
        if str(ty) == "bool":
            return {"0": "false", "1": "true"}.get(value, value)
        suffix = {"unsigned int": "u", "long": "l", "unsigned long": "ul",
                  "long long": "ll", "unsigned long long": "ull"}.get(str(ty))
        if str(ty) == "int":
            return value
        return value + suffix if suffix else f"({ty}){value}"

    def template_param(self) -> _Type:
        self.expect("T")
        n = self.seq_id("_")
        if n >= len(self.tmpl):
            raise _Fail(self.i)
        return self.tmpl[n]

    def substitution(self) -> _Type:
        self.expect("S")
        ch = self.peek()
        if ch in _STD_SUBST:
            self.i += 1
            return _Type(_STD_SUBST[ch])
        n = self.seq_id("_")
        if n >= len(self.subs):
            raise _Fail(self.i)
        return self.subs[n]

    # <type>
    def type(self) -> _Type:
        self.depth += 1
        try:
            return self._type()
        finally:
            self.depth -= 1

    def _type(self) -> _Type:
        ch = self.peek()
        if ch in _BUILTIN:
            self.i += 1
            return _Type(_BUILTIN[ch])
        if ch == "D" and self.peek(2)[1:] in _BUILTIN_D:
            self.i += 2
            return _Type(_BUILTIN_D[self.s[self.i - 1]])
        if ch == "u":
            self.i += 1
            return _Type(self.source_name())
        if ch in "rVK":
            cv = self.cv()
            inner = self.type()
            if inner.right.startswith("("):  # a function type: qualifiers go after it
                t = _Type(inner.left, inner.right + cv)
            else:
                t = _Type(inner.left + cv, inner.right)
            self.subs.append(t)
            return t
        if ch in "PRO":
            self.i += 1
            inner = self.type()
            mark = {"P": "*", "R": "&", "O": "&&"}[ch]
            t = self.indirect(inner, mark)
            self.subs.append(t)
            return t
        if ch == "F":
            t = self.function_type()
            self.subs.append(t)
            return t
        if ch == "A":
            self.i += 1
            m = re.compile(r"\d*").match(self.s, self.i)
            self.i = m.end()
            self.expect("_")
            inner = self.type()
            t = _Type(inner.left, f" [{m.group()}]" + inner.right)
            self.subs.append(t)
            return t
        if ch == "M":
            self.i += 1
            cls = self.type()
            member = self.type()
            if member.right.startswith("("):
                t = _Type(member.left + "(" + str(cls) + "::*", ")" + member.right)
            else:
                t = _Type(member.left + " " + str(cls) + "::*")
            self.subs.append(t)
            return t
        if ch == "T":
            t = self.template_param()
            if self.peek() == "I":
                self.subs.append(t)
                t = _Type(str(t) + self.template_args())
            self.subs.append(t)
            return t
        if self.take("Dp"):
            return self.type()
        if ch == "S" and self.peek(2) != "St":
            t = self.substitution()
            if self.peek() == "I":
                if self.s[self.i - 2:self.i] not in ("Sa", "Sb", "Ss", "Si", "So", "Sd") or True:
                    pass
                t = _Type(str(t) + self.template_args())
                self.subs.append(t)
            return t
        name, _, _, _ = self.name()
        t = _Type(name)
        self.subs.append(t)
        return t

    def indirect(self, inner: _Type, mark: str) -> _Type:
        if inner.right.startswith("(") or inner.right.startswith(" ["):
            space = "" if inner.left.endswith(("(", " ")) else " "
            if inner.right.startswith(" ["):
                return _Type(inner.left + " (" + mark, ")" + inner.right)
            return _Type(inner.left + space + "(" + mark, ")" + inner.right)
        if inner.left.endswith("&") and mark.startswith("&"):
            return inner  # reference collapsing (C++11 [dcl.ref])
        return _Type(inner.left + mark, inner.right)

    def function_type(self) -> _Type:
        self.expect("F")
        self.take("Y")
        ret = self.type()
        params = self.params_until("E") if True else ""
        return _Type(str(ret) + " ", params)


def _base_name(enclosing: Optional[str]) -> str:
    if not enclosing:
        raise _Fail(0)
    enclosing = re.sub(r"\[abi:[^\]]*\]", "", enclosing)
    depth = 0
    for i in range(len(enclosing) - 1, -1, -1):
        if enclosing[i] == ">":
            depth += 1
        elif enclosing[i] == "<":
            depth -= 1
        elif enclosing[i] == ":" and depth == 0:
            enclosing = enclosing[i + 1:]
            break
    return enclosing.split("<")[0].split("[abi:")[0]


def _join_args(name: str, args: str) -> str:
    """``operator<< <char>``: a space keeps ``<<`` and ``<`` apart, as c++filt prints it."""
    return name + (" " if name.endswith("<") else "") + args


def _itanium(name: str) -> Optional[str]:
    p = _Parser(name[2:] if name.startswith("_Z") else name[3:])
    try:
        text = p.encoding()
    except (_Fail, IndexError, ValueError, RecursionError):
        return None
    rest = p.s[p.i:]
    # GCC clone suffixes (.cold, .isra.0, .constprop.1) print as " [clone .cold]".
    while rest.startswith("."):
        m = re.match(r"\.[A-Za-z_]+(?:\.\d+)*|\.\d+", rest)
        if not m:
            return None
        text += f" [clone {m.group()}]"
        rest = rest[m.end():]
    return text if not rest else None


def demangle(name: str) -> Optional[str]:
    """The demangled form of `name`, or None when it is not a mangled name we understand.

    >>> demangle("_ZN5store11load_configERKNS_6ConfigE")
    'store::load_config(store::Config const&)'
    >>> demangle("_RINvCs1234_7mycrate3fooReEB2_")
    'mycrate::foo::<&str>'
    """
    if not name:
        return None
    if name.startswith(("_R", "__R")):
        return demangle_v0(name)
    if not name.startswith(("_Z", "__Z")):
        return None
    if name.startswith("_ZN") and "17h" in name:
        rust = demangle_legacy(name)
        if rust is not None:
            return rust
    return _itanium(name[1:] if name.startswith("__Z") else name)
