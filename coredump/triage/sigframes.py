"""
Signature frames
================

Frames as signatures see them: a function name normalized so that the same code has the same
name in every build (``-O0`` or ``-O2``, debug info or symbols only, v0 or legacy Rust
mangling) and a module file name (see ``siglists/README.md``).
"""

from __future__ import annotations

import os
import re

from coredump.model import Frame
from coredump.patterns import lazy_compile
from coredump.record import dataclass
from coredump.triage.siglist import load_siglist
from coredump.unwind.tailcall import CLONE_RE

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Optional, Tuple

__all__ = ("SigFrame", "normalize_function", "module_name", "sig_frame", "is_rust_symbol")

_CLONE_DEMANGLED_RE = lazy_compile(r"\s*\[clone [^\]]*\]", needs=("[clone ",))
# Rust v0/legacy symbol hashes (Socorro's fixup_hash).
_RUST_HASH_RE = lazy_compile(r"::h[0-9a-f]{16}$", needs=("::h",))
# A legacy Rust symbol ends in its hash: _ZN...17h0123456789abcdefE.
_RUST_LEGACY_RE = lazy_compile(r"_ZN.*17h[0-9a-f]{16}E$", needs=("17h",))
# What only a Rust name has: closures, DWARF's impl namespaces, turbofish, <Type as Trait>.
_RUST_NAME_RE = lazy_compile(r"\{\{?closure|\{impl#|\{shim|::<|^<.*>::", needs=("{", "<"))
# glibc's ifunc variants of one string function: __strlen_avx2, __memmove_avx_unaligned_erms.
_IFUNC_RE = lazy_compile(r"__((?:raw)?(?:mem|str|stp|wcs|wmem)[a-z]*?)(?:_chk)?_"
                         r"(?:avx|sse|ssse|evex|erms|unaligned|aligned|rtm|nocacheline|no_bsf|ifunc)\w*",
                         needs=("__mem", "__str", "__stp", "__wcs", "__wmem", "__raw"))
# A Go method's receiver between two dots, as the Go linker names it (cmd/link's symbol names:
# ``pkg.(*T).M`` for a pointer receiver, generics ``pkg.(*T[...]).M``); C++ never puts a
# parenthesis after a dot, so it is kept as the name's own text, not a parameter list.
_GO_RECEIVER_RE = lazy_compile(r"(?<=\.)\(\*?[^()\s]+\)(?=\.)", needs=(".(",))
_OPERATORS = ("operator<=>", "operator<<=", "operator>>=", "operator<<", "operator>>", "operator<=",
              "operator>=", "operator->*", "operator->", "operator<", "operator>", "operator()")


def _collapse(text: str, open_ch: str, close_ch: str, replacement: str) -> str:
    """Replace every outermost ``open_ch … close_ch`` group with `replacement`."""
    out, depth = [], 0
    for ch in text:
        if ch == open_ch:
            if depth == 0:
                out.append(replacement)
            depth += 1
        elif ch == close_ch and depth:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _split_qualified_self(name: str) -> Tuple[Optional[str], Optional[str], str]:
    """``<Type as Trait>::rest`` → (Type, Trait, rest); ``<Type>::rest`` → (Type, None, rest);
    anything else → (None, None, name). Only ``as`` at the outermost level separates."""
    if not name.startswith("<"):
        return None, None, name
    depth = 0
    for i, ch in enumerate(name):
        if ch == "<" or (ch == ">" and name[i - 1] != "-"):  # not the arrow of fn() -> T
            depth += 1 if ch == "<" else -1
        if depth == 0:
            inner, rest = name[1:i], name[i + 1:]
            break
    else:
        return None, None, name
    depth, split = 0, None
    for i, ch in enumerate(inner):
        depth += {"<": 1, ">": -1, "(": 1, ")": -1, "[": 1, "]": -1}.get(ch, 0)
        if depth == 0 and inner.startswith(" as ", i):
            split = i
    if split is None:
        return inner, None, rest
    return inner[:split], inner[split + 4:], rest


def _normalize_rust(name: str, provided: bool = False) -> str:
    """A Rust path without its function's generic arguments, the same from DWARF
    (``rust_panic::Config::value_of<&str>``, ``validate::{closure#0}<Config>``) and from v0
    or legacy symbols (``<rust_panic::Config>::value_of::<&str>``, ``validate::<Config>::{closure#0}``).
    The self type of ``<Type as Trait>`` stays (generics collapsed): it is what tells two
    impls apart. A trait's provided method (v0 ``Y``, `provided`) is named ``Trait::method`` as
    DWARF and legacy symbols name it, whatever type it runs for."""
    name = name.replace("{{closure}}", "{closure}")
    self_ty, trait, rest = _split_qualified_self(name)
    rest = _collapse(rest.replace("::<", "\x00<"), "<", ">", "<T>").replace("\x00<T>", "")
    rest = re.sub(r"<T>$", "", rest)  # DWARF: a function's (and its impl's) generics follow its name
    if self_ty is None:
        return rest
    self_ty = _collapse(self_ty, "<", ">", "<T>")
    if trait is None:
        return self_ty + rest
    trait = _collapse(trait, "<", ">", "<T>")
    if provided:
        return re.sub(r"<T>$", "", trait) + rest
    return f"<{self_ty} as {trait}>{rest}"


def normalize_function(name: str, rust: Optional[bool] = None, provided: bool = False) -> str:
    """The part of a function name that names the same code in every build: no parameters,
    template arguments collapsed to ``<T>`` (Socorro's rule), no GCC clone suffix, no Rust
    hash, no glibc ``__GI_`` alias prefix or ifunc variant suffix. `rust` (None: guessed from
    the name) selects Rust's rules, :func:`_normalize_rust`.

    >>> normalize_function("store_value.constprop.0")
    'store_value'
    >>> normalize_function("std::vector<int, std::allocator<int> >::at(unsigned long) const")
    'std::vector<T>::at'
    >>> normalize_function("__memmove_avx_unaligned_erms")
    'memmove'
    >>> normalize_function("<app::Foo<u8> as core::fmt::Display>::fmt")
    '<app::Foo<T> as core::fmt::Display>::fmt'
    >>> normalize_function("main.(*ledger).post")
    'main.(*ledger).post'
    """
    name = name.strip()
    if name.startswith("<") and name.endswith(">") and "::" not in name:
        return name  # gdb-style pseudo-frames: <signal handler called>
    name = _RUST_HASH_RE.sub("", name)
    if rust or (rust is None and _RUST_NAME_RE.search(name)):
        return _normalize_rust(name, provided)
    name = _CLONE_DEMANGLED_RE.sub("", name)
    name = CLONE_RE.sub("", name)
    if name.startswith("__GI_"):
        name = name[len("__GI_"):]
    m = _IFUNC_RE.fullmatch(name)
    if m:
        name = m.group(1)
    name = name.replace("[abi:cxx11]", "")
    saved = {}
    for i, token in enumerate(("(anonymous namespace)", *_OPERATORS, *_GO_RECEIVER_RE.findall(name))):
        if token in name:
            key = f"\x00{i}\x00"
            saved[key] = token
            name = name.replace(token, key)
    name = _collapse(name, "(", ")", "")
    name = _collapse(name, "<", ">", "<T>")
    if name.rstrip().endswith(("const", "volatile", "&")):  # what the pattern strips
        name = re.sub(r"\s*(?:const|volatile|&&|&)\s*$", "", name)
    name = name.strip()
    if " " in name and "\x00" not in name and "operator" not in name:
        name = name.rsplit(" ", 1)[1]  # a return type before a template function's name
    for key, token in saved.items():
        name = name.replace(key, token)
    return name


def is_rust_symbol(mangled: Optional[str]) -> bool:
    """Whether `mangled` is a Rust symbol: v0 (``_R…``, RFC 2603) or legacy (``_ZN…17h<hash>E``)."""
    return bool(mangled) and (mangled.startswith(("_R", "__R")) or bool(_RUST_LEGACY_RE.match(mangled)))


def _v0_root(mangled: str) -> str:
    """The tag of a v0 path's root after its nested (``N``) and generic (``I``) prefixes:
    ``C`` crate, ``M`` inherent impl, ``X`` trait impl, ``Y`` ``<T as Trait>`` (RFC 2603)."""
    m = re.match(r"_{1,2}R(?:\d+_)?(?:I|N[A-Za-z])*(.)", mangled)
    return m.group(1) if m else ""


def _rust_name(frame: Frame) -> str:
    """DWARF names a trait impl's namespace ``{impl#N}``, which symbols never show and which
    changes when impls are added above it: name such a frame from its linkage name."""
    name = frame.function or ""
    if "{impl#" in _collapse(name, "<", ">", "") and frame.mangled:
        from coredump.demangle import demangle

        name = demangle(frame.mangled) or name
    return name


# -- frames -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SigFrame:
    """One frame as signatures see it: a normalized function name and a module file name."""

    function: Optional[str]
    module: Optional[str]
    module_offset: Optional[int] = None

    @property
    def text(self) -> str:
        if self.function:
            return self.function
        if self.module:
            return f"{self.module}+{self.module_offset:#x}" if self.module_offset is not None else self.module
        return "??"

    @property
    def key(self) -> Tuple[Optional[str], str]:
        """What identifies the frame's code: module and name (the offset only when unnamed)."""
        return self.module, self.text

    @property
    def is_system(self) -> bool:
        return bool(self.module) and bool(load_siglist("system_modules.txt").fullmatch(self.module))

    @property
    def is_irrelevant(self) -> bool:
        if self.function is None:
            return False
        return bool(load_siglist("irrelevant_frames.txt").fullmatch(self.function))

    @property
    def is_tail(self) -> bool:
        return self.function is not None and bool(load_siglist("tail_frames.txt").fullmatch(self.function))


# A shared object's version suffix changes with every library update: libstdc++.so.6.0.30.
_SO_VERSION_RE = lazy_compile(r"(\.so)(?:\.\d+)+$", needs=(".so.",))


def module_name(path: Optional[str]) -> Optional[str]:
    """A module as signatures name it: the file name without the shared-object version.

    >>> module_name("/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30")
    'libstdc++.so'
    """
    return _SO_VERSION_RE.sub(r"\1", os.path.basename(path)) if path else None


def sig_frame(frame: Frame) -> SigFrame:
    module = module_name(frame.module)
    function = None
    if frame.function and is_rust_symbol(frame.mangled):
        function = normalize_function(_rust_name(frame), True, _v0_root(frame.mangled) == "Y")
    elif frame.function:
        function = normalize_function(frame.function)
    return SigFrame(function or None, module, frame.module_offset)


