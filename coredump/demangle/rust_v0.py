"""
Rust v0 demangling
==================

Rust's v0 mangling (RFC 2603, ``_R…``) printed in one pass as it is parsed, the way
libiberty's rust-demangle.c prints it (the text of c++filt and gdb): paths, types, generic
arguments and constants, over the terminals of :mod:`coredump.demangle.rust_v0_lexer`.
"""

from __future__ import annotations

from coredump.demangle.rust_v0_lexer import Invalid, Lexer, punycode_decode
from coredump.patterns import lazy_compile

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Optional, Tuple

__all__ = ("demangle_v0", "MAX_DEPTH", "MAX_OUTPUT", "MAX_STEPS")

# rustc-demangle's v0.rs MAX_DEPTH is 500; counted here on every path, type, const and
# generic argument, each a Python frame or two, so it stays far below the interpreter's limit.
MAX_DEPTH = 200
# Backrefs let a short name print an exponentially long one; rustc-demangle stops at 1e6.
MAX_OUTPUT = 64 * 1024
# ... and a bound on the work done, output or not (a backref re-reads what it points at).
MAX_STEPS = 100_000
# RFC 2603 "Basic types"
_BASIC = {
    "b": "bool", "c": "char", "e": "str", "u": "()", "a": "i8", "s": "i16", "l": "i32",
    "x": "i64", "n": "i128", "i": "isize", "h": "u8", "t": "u16", "m": "u32", "y": "u64",
    "o": "u128", "j": "usize", "f": "f32", "d": "f64", "z": "!", "p": "_", "v": "...",
}
_V0_SYMBOL = lazy_compile(r"[_0-9A-Za-z]+")


class _V0(Lexer):
    """One pass over a v0 symbol that parses and prints at once (libiberty's demangle_path &c)."""

    def __init__(self, sym: str, verbose: bool):
        super().__init__(sym)
        self.verbose = verbose
        self.out: List[str] = []
        self.size = 0
        self.depth = 0
        self.steps = 0
        self.skipping = 0  # > 0 inside an impl's own path and the instantiating crate: print nothing
        self.bound_lifetimes = 0

    # -- printing --------------------------------------------------------------------------
    def emit(self, text: str) -> None:
        if self.skipping:
            return
        self.size += len(text)
        if self.size > MAX_OUTPUT:
            raise Invalid
        self.out.append(text)

    def emit_ident(self, ident: Tuple[str, str]) -> None:
        ascii_part, code = ident
        self.emit(punycode_decode(ascii_part, code) if code else ascii_part)

    def enter(self) -> None:
        self.depth += 1
        self.steps += 1
        if self.depth > MAX_DEPTH or self.steps > MAX_STEPS:
            raise Invalid

    def follow(self, method, *args):
        """Print what a backref points at, then carry on after the backref."""
        target = self.backref()
        if self.skipping:
            return None
        saved, self.i = self.i, target
        try:
            return method(*args)
        finally:
            self.i = saved

    def lifetime(self, index: int) -> None:
        """A lifetime: 0 is ``'_``; 1.. count back from the innermost binder, ``'a`` first."""
        if index == 0:
            self.emit("'_")
            return
        depth = self.bound_lifetimes - index
        if depth < 0:
            raise Invalid
        self.emit("'" + (chr(97 + depth) if depth < 26 else f"_{depth}"))

    def binder(self) -> None:
        """``G`` <base-62-number>: ``for<'a, 'b> `` late-bound lifetimes."""
        count = self.opt_integer_62("G")
        if count > 1024:
            raise Invalid
        if count:
            self.emit("for<")
            for k in range(count):
                if k:
                    self.emit(", ")
                self.bound_lifetimes += 1
                self.lifetime(1)
            self.emit("> ")

    # -- grammar (RFC 2603 "Syntax of mangled names") ---------------------------------------
    def path(self, in_value: bool) -> None:
        self.enter()
        tag = self.next()
        if tag == "C":  # crate root
            dis = self.opt_integer_62("s")
            self.emit_ident(self.ident())
            if self.verbose:
                self.emit(f"[{dis:x}]")
        elif tag == "N":  # nested path
            ns = self.next()
            if not ns.isalpha() or not ns.isascii():
                raise Invalid
            self.path(in_value)
            dis = self.opt_integer_62("s")
            ident = self.ident()
            self.nested(ns, dis, ident)
        elif tag in "MX":  # inherent impl, trait impl: the impl's own path is not shown
            self.opt_integer_62("s")
            self.skipping += 1
            try:
                self.path(in_value)
            finally:
                self.skipping -= 1
            self.qualified(tag)
        elif tag == "Y":  # trait definition
            self.qualified(tag)
        elif tag == "I":  # generic arguments
            self.path(in_value)
            self.emit("::<" if in_value else "<")
            self.generic_args()
            self.emit(">")
        elif tag == "B":
            self.follow(self.path, in_value)
        else:
            raise Invalid
        self.depth -= 1

    def nested(self, ns: str, dis: int, ident: Tuple[str, str]) -> None:
        if ns.isupper():  # special namespaces: closures, shims
            kind = {"C": "closure", "S": "shim"}.get(ns, ns)
            self.emit("::{" + kind)
            if ident[0] or ident[1]:
                self.emit(":")
                self.emit_ident(ident)
            self.emit(f"#{dis}}}")
        elif ident[0] or ident[1]:
            self.emit("::")
            self.emit_ident(ident)

    def qualified(self, tag: str) -> None:
        self.emit("<")
        self.type()
        if tag != "M":
            self.emit(" as ")
            self.path(False)
        self.emit(">")

    def items(self, item, separator: str = ", ") -> int:
        """`item` repeated up to the list's closing ``E``, separated; how many there were."""
        n = 0
        while not self.eat("E"):
            if n:
                self.emit(separator)
            item()
            n += 1
        return n

    def generic_args(self) -> None:
        self.items(self.generic_arg)

    def generic_arg(self) -> None:
        if self.eat("L"):
            self.lifetime(self.integer_62())
        elif self.eat("K"):
            self.const()
        else:
            self.type()

    def type(self) -> None:
        self.enter()
        tag = self.next()
        if tag in _BASIC:
            self.emit(_BASIC[tag])
        elif tag in "RQ":
            self.emit("&")
            if self.eat("L"):
                lt = self.integer_62()
                if lt:
                    self.lifetime(lt)
                    self.emit(" ")
            if tag == "Q":
                self.emit("mut ")
            self.type()
        elif tag in "PO":
            self.emit("*const " if tag == "P" else "*mut ")
            self.type()
        elif tag in "AS":
            self.emit("[")
            self.type()
            if tag == "A":
                self.emit("; ")
                self.const()
            self.emit("]")
        elif tag == "T":
            self.tuple()
        elif tag == "F":
            self.fn_type()
        elif tag == "D":
            self.dyn_type()
        elif tag == "B":
            self.follow(self.type)
        else:
            self.i -= 1  # a path names the type
            self.path(False)
        self.depth -= 1

    def tuple(self) -> None:
        self.emit("(")
        n = self.items(self.type)
        self.emit(",)" if n == 1 else ")")

    def fn_type(self) -> None:
        saved = self.bound_lifetimes
        self.binder()
        if self.eat("U"):
            self.emit("unsafe ")
        if self.eat("K"):
            abi = "C" if self.eat("C") else None
            if abi is None:
                ascii_part, code = self.ident()
                if not ascii_part or code:
                    raise Invalid
                abi = ascii_part.replace("_", "-")  # `-` in an ABI name is mangled as `_`
            self.emit(f'extern "{abi}" ')
        self.emit("fn(")
        self.items(self.type)
        self.emit(")")
        if not self.eat("u"):  # a `()` return type is not printed
            self.emit(" -> ")
            self.type()
        self.bound_lifetimes = saved

    def dyn_type(self) -> None:
        self.emit("dyn ")
        saved = self.bound_lifetimes
        self.binder()
        self.items(self.dyn_trait, " + ")
        self.bound_lifetimes = saved
        if not self.eat("L"):
            raise Invalid
        lt = self.integer_62()
        if lt:
            self.emit(" + ")
            self.lifetime(lt)

    def dyn_trait(self) -> None:
        """A trait object's trait, its ``<…>`` kept open for ``Assoc = T`` bindings (``p``)."""
        is_open = self.open_generics()
        while self.eat("p"):
            self.emit(", " if is_open else "<")
            is_open = True
            self.emit_ident(self.ident())
            self.emit(" = ")
            self.type()
        if is_open:
            self.emit(">")

    def open_generics(self) -> bool:
        self.enter()
        try:
            if self.eat("B"):
                return bool(self.follow(self.open_generics))
            if self.eat("I"):
                self.path(False)
                self.emit("<")
                self.generic_args()
                return True
            self.path(False)
            return False
        finally:
            self.depth -= 1

    def const(self) -> None:
        self.enter()
        if self.eat("B"):
            self.follow(self.const)
            self.depth -= 1
            return
        tag = self.next()
        if tag == "p":  # placeholder
            self.emit("_")
        elif tag in "htmyoj" or tag in "aslxni":
            negative = tag in "aslxni" and self.eat("n")
            digits = self.hex_nibbles()
            if not digits:
                raise Invalid
            text = "0x" + digits if len(digits) > 16 else str(int(digits, 16))
            self.emit(("-" if negative else "") + text)
        elif tag == "b":
            digits = self.hex_nibbles()
            if digits not in ("0", "1"):
                raise Invalid
            self.emit("true" if digits == "1" else "false")
        elif tag == "c":
            digits = self.hex_nibbles()
            if not 0 < len(digits) <= 8:
                raise Invalid
            self.emit(_char_literal(int(digits, 16)))
        else:
            raise Invalid
        if self.verbose and tag != "p":
            self.emit(": " + _BASIC[tag])
        self.depth -= 1


def _char_literal(value: int) -> str:
    """A ``char`` const as libiberty prints it (Rust's Debug output, ASCII only)."""
    escapes = {9: "\\t", 13: "\\r", 10: "\\n"}
    if value in escapes:
        body = escapes[value]
    elif 0x20 < value < 0x7E:
        body = chr(value)
    else:
        body = f"\\u{{{value:x}}}"
    return f"'{body}'"


def demangle_v0(name: str, verbose: bool = False) -> Optional[str]:
    """A v0 symbol (``_R``, or ``__R`` on Mach-O) demangled, or None.

    >>> demangle_v0("_RNvCs1234_7mycrate3foo"), demangle_v0("_RNvCs1234_7mycrate3foo", verbose=True)
    ('mycrate::foo', 'mycrate[3c1c0]::foo')
    """
    body = name[3:] if name.startswith("__R") else name[2:] if name.startswith("_R") else None
    if not body:
        return None
    # A suffix after "." (LLVM's ".llvm.<n>", rustc's ".0" for a static's copies) is not
    # printed, as c++filt (binutils 2.40) does.
    body = body.split(".", 1)[0]
    if not _V0_SYMBOL.fullmatch(body) or not body[0].isupper():
        return None  # <symbol-name> = "_R" [<decimal-number>] <path> [<instantiating-crate>]
    p = _V0(body, verbose)
    try:
        p.path(True)
        if p.i < len(body):  # the instantiating crate is not shown
            p.skipping += 1
            p.path(False)
    except (Invalid, RecursionError, ValueError, OverflowError):
        return None
    if p.i != len(body):
        return None
    return "".join(p.out)
