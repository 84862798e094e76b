"""
Itanium names
=============

The <encoding> and <name> productions of the Itanium C++ ABI (§5.1.2-§5.1.4) and the entry
that demangles a whole ``_Z`` symbol, GCC's clone suffixes included, as c++filt prints it.
"""

from __future__ import annotations

from coredump.demangle.itanium_reader import Fail, Type
from coredump.demangle.itanium_types import TypeParser
from coredump.patterns import lazy_compile

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Optional

__all__ = ("demangle_itanium",)

# ABI §5.1.3 <operator-name>
_OPERATORS = {
    "nw": "new", "na": "new[]", "dl": "delete", "da": "delete[]", "ps": "+", "ng": "-",
    "ad": "&", "de": "*", "co": "~", "pl": "+", "mi": "-", "ml": "*", "dv": "/", "rm": "%",
    "an": "&", "or": "|", "eo": "^", "aS": "=", "pL": "+=", "mI": "-=", "mL": "*=",
    "dV": "/=", "rM": "%=", "aN": "&=", "oR": "|=", "eO": "^=", "ls": "<<", "rs": ">>",
    "lS": "<<=", "rS": ">>=", "eq": "==", "ne": "!=", "lt": "<", "gt": ">", "le": "<=",
    "ge": ">=", "ss": "<=>", "nt": "!", "aa": "&&", "oo": "||", "pp": "++", "mm": "--",
    "cm": ",", "pm": "->*", "pt": "->", "cl": "()", "ix": "[]", "qu": "?",
}
# ABI §5.1.4 <special-name>: the four G/T ones here name an <encoding>, the rest a <type>.
_SPECIAL = {"TV": "vtable for ", "TT": "VTT for ", "TI": "typeinfo for ",
            "TS": "typeinfo name for ", "GV": "guard variable for ", "TH": "TLS init function for ",
            "TW": "TLS wrapper function for ", "GR": "reference temporary for "}
_OF_ENCODING = ("GV", "TH", "TW", "GR")
# GCC clone suffixes (.cold, .isra.0, .constprop.1) print as " [clone .cold]".
_CLONE = lazy_compile(r"\.[A-Za-z_]+(?:\.\d+)*|\.\d+")
_ABI_TAG = lazy_compile(r"\[abi:[^\]]*\]")


class _Parser(TypeParser):
    # <encoding> ::= <name> <bare-function-type> | <name> | <special-name>
    def encoding(self, local: bool = False) -> str:
        special = self.special_name()
        if special is not None:
            return special
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

    def special_name(self) -> Optional[str]:
        """<special-name>, or None when the encoding is not one."""
        for code, text in _SPECIAL.items():
            if self.take(code):
                return text + (self.encoding() if code in _OF_ENCODING else str(self.type()))
        if self.take("GTt"):
            return "transaction clone for " + self.encoding()
        if self.take("Th") or self.take("Tv"):
            kind = self.s[self.i - 1]
            self.call_offset(kind)
            return ("non-virtual thunk to " if kind == "h" else "virtual thunk to ") + self.encoding()
        if self.take("Tc"):  # covariant return thunks: not handled
            raise Fail(self.i)
        return None

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
                raise Fail(self.i)
        else:
            text, _ = self.unqualified_name(None)
        if self.peek() == "I":
            self.subs.append(Type(text))
            args = self.template_args()
            return _join_args(text, args), "", True, False
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
            self.number()
            self.take("_")
        elif self.take("_"):
            self.number()

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
                    raise Fail(self.i)
                parts = _join_args(parts, self.template_args())
                is_template = True
            elif self.take("DT") or self.take("Dt"):
                raise Fail(self.i)
            else:
                parts, last, ctor = self.nested_component(parts, last)
            self.subs.append(Type(parts))
        if parts is None:
            raise Fail(self.i)
        if self.subs and self.subs[-1].left == parts:
            self.subs.pop()  # the whole nested name is not a substitution candidate by itself
        return parts, cv, is_template, ctor

    def nested_component(self, parts: Optional[str], last: str):
        """One <unqualified-name> of a nested name: (the name so far, the enclosing class a
        constructor is named after, is ctor/dtor)."""
        text, ctor = self.unqualified_name(last)
        last = text.split("<")[0] if not ctor else last
        parts = text if parts is None else parts + "::" + text
        if not ctor:
            last = text
        return parts, last, ctor

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
        raise Fail(self.i)


def _base_name(enclosing: Optional[str]) -> str:
    """The class a constructor or destructor is named after, without scope, args or tags."""
    if not enclosing:
        raise Fail(0)
    enclosing = _ABI_TAG.sub("", enclosing)
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


def demangle_itanium(name: str) -> Optional[str]:
    """An Itanium ``_Z…`` (or ``__Z…``) symbol demangled, or None when it is not understood.

    >>> demangle_itanium("_ZN5store11load_configERKNS_6ConfigE")
    'store::load_config(store::Config const&)'
    """
    p = _Parser(name[2:] if name.startswith("_Z") else name[3:])
    try:
        text = p.encoding()
    except (Fail, IndexError, ValueError, RecursionError):
        return None
    rest = p.s[p.i:]
    while rest.startswith("."):
        m = _CLONE.match(rest)
        if not m:
            return None
        text += f" [clone {m.group()}]"
        rest = rest[m.end():]
    return text if not rest else None
