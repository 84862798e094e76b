"""
Rust legacy demangling
======================

Rust's legacy mangling: an Itanium nested name (``_ZN…E``) whose last element is a
``17h<hash>``, with rustc's ``$..$`` escapes, printed as libiberty's rust-demangle.c does.
"""

from __future__ import annotations

import re

from coredump.patterns import lazy_compile

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Optional

__all__ = ("demangle_legacy",)

_LEGACY_ESCAPES = {"SP": "@", "BP": "*", "RF": "&", "LT": "<", "GT": ">", "LP": "(", "RP": ")", "C": ","}
_LEGACY_ESCAPE = lazy_compile(r"\$(SP|BP|RF|LT|GT|LP|RP|C|u[0-7][0-9a-f])\$")
_LEGACY_HASH = lazy_compile(r"h[0-9a-f]{16}")


class _BadEscape(Exception):
    pass


def _legacy_element(part: str) -> str:
    """One element with rustc's ``$..$`` escapes and ``..`` decoded (libiberty print_ident)."""
    if part.startswith("_$"):
        part = part[1:]  # rustc puts `_` before an escape that would start an identifier

    def unescape(m: re.Match) -> str:
        code = m.group(1)
        if code[0] == "u":
            value = int(code[1:], 16)
            if value < 0x20:
                raise _BadEscape
            return chr(value)
        return _LEGACY_ESCAPES[code]

    try:
        part = _LEGACY_ESCAPE.sub(unescape, part)
    except _BadEscape:
        return part
    return part.replace("..", "::")


def demangle_legacy(name: str, verbose: bool = False) -> Optional[str]:
    """Rust's legacy mangling: an Itanium nested name whose last element is ``h<hash>``.

    >>> demangle_legacy("_ZN3std2rt10lang_start17h0123456789abcdefE")
    'std::rt::lang_start'
    """
    if not name.startswith("_ZN") or not name.endswith("E") or name[-20:-17] != "17h":
        return None
    body, i, parts = name[3:-1], 0, []
    if not re.fullmatch(r"[_0-9A-Za-z$.:]+", body):
        return None
    while i < len(body):
        m = re.compile(r"0|[1-9]\d*").match(body, i)
        if not m:
            return None
        n, i = int(m.group()), m.end()
        if n == 0 or i + n > len(body):
            return None
        parts.append(body[i:i + n])
        i += n
    # libiberty: the hash has at least 5 distinct hex digits
    if not _LEGACY_HASH.fullmatch(parts[-1]) or len(set(parts[-1][1:])) < 5:
        return None
    shown = [_legacy_element(p) for p in parts[:-1]]
    if verbose:
        shown.append(parts[-1])
    return "::".join(shown)
