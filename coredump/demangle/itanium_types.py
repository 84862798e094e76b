"""
Itanium types
=============

The <type> and <template-args> productions of the Itanium C++ ABI (§5.1.5, §5.1.7), each
printed as it is read, with the declarator split c++filt needs (``int (*)(char)``).
"""

from __future__ import annotations

from coredump.demangle.itanium_reader import Fail, Reader, Type
from coredump.patterns import lazy_compile

__all__ = ("TypeParser",)

# ABI §5.1.5 <builtin-type>
_BUILTIN = {
    "v": "void", "w": "wchar_t", "b": "bool", "c": "char", "a": "signed char",
    "h": "unsigned char", "s": "short", "t": "unsigned short", "i": "int", "j": "unsigned int",
    "l": "long", "m": "unsigned long", "x": "long long", "y": "unsigned long long",
    "n": "__int128", "o": "unsigned __int128", "f": "float", "d": "double",
    "e": "long double", "g": "__float128", "z": "...",
}
_BUILTIN_D = {"d": "decimal64", "e": "decimal128", "f": "decimal32", "h": "half", "i": "char32_t",
              "s": "char16_t", "u": "char8_t", "a": "auto", "c": "decltype(auto)", "n": "decltype(nullptr)"}
# How c++filt prints an integer <expr-primary> literal of these types: 5u, 5ul, ...
_LITERAL_SUFFIX = {"unsigned int": "u", "long": "l", "unsigned long": "ul",
                   "long long": "ll", "unsigned long long": "ull"}
_ARRAY_BOUND = lazy_compile(r"\d*")
_LITERAL_VALUE = lazy_compile(r"n?[0-9a-f]*")


class TypeParser(Reader):
    """<type> and what it contains; a <class-enum-type>'s <name> and a literal's <encoding>
    come from the subclass, as in LLVM's CRTP ``AbstractManglingParser<Derived>``."""

    def name(self):
        raise NotImplementedError

    def encoding(self, local: bool = False) -> str:
        raise NotImplementedError

    def cv(self) -> str:
        """<CV-qualifiers> ::= [r] [V] [K], printed in source order."""
        out = []
        for code, word in (("r", "restrict"), ("V", "volatile"), ("K", "const")):
            if self.take(code):
                out.append(word)
        return "".join(" " + w for w in reversed(out)) if out else ""

    def type(self) -> Type:
        self.depth += 1
        try:
            return self._type()
        finally:
            self.depth -= 1

    def _type(self) -> Type:
        ch = self.peek()
        if ch in _BUILTIN:
            self.i += 1
            return Type(_BUILTIN[ch])
        if ch == "D" and self.peek(2)[1:] in _BUILTIN_D:
            self.i += 2
            return Type(_BUILTIN_D[self.s[self.i - 1]])
        if ch == "u":
            self.i += 1
            return Type(self.source_name())
        if ch in "rVK":  # also "" at the end of the text: recursion ends it, as before
            return self.candidate(self.qualified_type())
        if ch in "PRO":
            return self.candidate(self.pointer_type(ch))
        if ch == "F":
            return self.candidate(self.function_type())
        if ch == "A":
            return self.candidate(self.array_type())
        if ch == "M":
            return self.candidate(self.member_pointer_type())
        if ch == "T":
            return self.candidate(self.template_param_type())
        if self.take("Dp"):  # pack expansion: printed as its pattern
            return self.type()
        if ch == "S" and self.peek(2) != "St":
            return self.substitution_type()
        name, _, _, _ = self.name()
        return self.candidate(Type(name))

    def candidate(self, t: Type) -> Type:
        """`t`, appended to the substitution candidates (ABI §5.1.10)."""
        self.subs.append(t)
        return t

    def qualified_type(self) -> Type:
        cv = self.cv()
        inner = self.type()
        if inner.right.startswith("("):  # a function type: qualifiers go after it
            return Type(inner.left, inner.right + cv)
        return Type(inner.left + cv, inner.right)

    def pointer_type(self, ch: str) -> Type:
        self.i += 1
        inner = self.type()
        return self.indirect(inner, {"P": "*", "R": "&", "O": "&&"}[ch])

    def indirect(self, inner: Type, mark: str) -> Type:
        if inner.right.startswith("(") or inner.right.startswith(" ["):
            space = "" if inner.left.endswith(("(", " ")) else " "
            if inner.right.startswith(" ["):
                return Type(inner.left + " (" + mark, ")" + inner.right)
            return Type(inner.left + space + "(" + mark, ")" + inner.right)
        if inner.left.endswith("&") and mark.startswith("&"):
            return inner  # reference collapsing (C++11 [dcl.ref])
        return Type(inner.left + mark, inner.right)

    def function_type(self) -> Type:
        """<function-type> ::= F [Y] <bare-function-type> E"""
        self.expect("F")
        self.take("Y")
        ret = self.type()
        params = self.params_until("E")
        return Type(str(ret) + " ", params)

    def array_type(self) -> Type:
        """<array-type> ::= A [<dimension number>] _ <element type>"""
        self.i += 1
        m = _ARRAY_BOUND.match(self.s, self.i)
        self.i = m.end()
        self.expect("_")
        inner = self.type()
        return Type(inner.left, f" [{m.group()}]" + inner.right)

    def member_pointer_type(self) -> Type:
        """<pointer-to-member-type> ::= M <class type> <member type>"""
        self.i += 1
        cls = self.type()
        member = self.type()
        if member.right.startswith("("):
            return Type(member.left + "(" + str(cls) + "::*", ")" + member.right)
        return Type(member.left + " " + str(cls) + "::*")

    def template_param_type(self) -> Type:
        """<template-template-param> <template-args> is a candidate before its args too."""
        t = self.template_param()
        if self.peek() == "I":
            self.subs.append(t)
            t = Type(str(t) + self.template_args())
        return t

    def substitution_type(self) -> Type:
        t = self.substitution()
        if self.peek() == "I":
            t = Type(str(t) + self.template_args())
            self.subs.append(t)
        return t

    def params_until(self, end: str) -> str:
        types = []
        while not self.take(end):
            types.append(str(self.type()))
        if types == ["void"]:
            types = []
        return "(" + ", ".join(types) + ")"

    def template_args(self) -> str:
        """<template-args> ::= I <template-arg>+ E"""
        self.expect("I")
        args = []
        while not self.take("E"):
            arg = self.template_arg()
            if arg:  # an empty pack (J E) prints nothing
                args.append(arg)
        if self.depth == 0:
            self.tmpl = [Type(a) for a in args]
        text = "<" + ", ".join(args)
        return text + (" >" if text.endswith(">") else ">")

    def template_arg(self) -> str:
        if self.take("L"):
            return self.literal()
        if self.take("X"):
            raise Fail(self.i)
        if self.take("J"):
            inner = []
            while not self.take("E"):
                inner.append(self.template_arg())
            return ", ".join(inner)
        return str(self.type())

    def literal(self) -> str:
        """<expr-primary> after its L: an external name or a typed integer."""
        if self.take("_Z"):
            text = self.encoding()
            self.expect("E")
            return text
        ty = self.type()
        m = _LITERAL_VALUE.match(self.s, self.i)
        self.i = m.end()
        self.expect("E")
        value = m.group().replace("n", "-")
        if str(ty) == "bool":
            return {"0": "false", "1": "true"}.get(value, value)
        suffix = _LITERAL_SUFFIX.get(str(ty))
        if str(ty) == "int":
            return value
        return value + suffix if suffix else f"({ty}){value}"
