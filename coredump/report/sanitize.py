"""
Sanitize
========

Crash data (argv, file and function names, assertion messages) is untrusted: strip what
could drive a terminal or break an XML document before it is printed or written, and spell
bytes that were no UTF-8 as ``\\xNN`` (the rule of ``coredump.jsondoc``).
"""

from __future__ import annotations

from urllib.parse import quote

from coredump.jsondoc import escape_undecodable
from coredump.patterns import lazy_compile

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Optional

__all__ = ("clean_text", "clean_xml", "show_controls", "safe_href", "safe_web_url")

# ECMA-48: CSI (ESC [ or 8-bit 0x9b) params/intermediates/final; OSC, DCS, SOS, PM, APC
# strings end with BEL or ST (ESC \); any other ESC takes one following byte (Fe/Fp/Fs).
_ESCAPES = lazy_compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -~]?"
)
# C0 and C1 controls and DEL; bidirectional overrides and isolates (Unicode TR#9), which
# reorder what a terminal shows ("Trojan Source", CVE-2021-42574).
_CONTROLS = lazy_compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROLS_KEEP_NL = lazy_compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# XML 1.0 §2.2 Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]
_NOT_XML = lazy_compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean_text(value, keep_newlines: bool = False) -> str:
    """Crash data made safe for a terminal: no escape sequences, no control characters.

    Tabs and (unless `keep_newlines`) line breaks become a space, so a function name
    cannot forge extra report lines. None becomes the empty string.

    >>> clean_text("ok\\x1b[31mred\\x1b[0m\\x07")
    'okred'
    >>> clean_text("a\\nb")
    'a b'
    """
    if value is None:
        return ""
    text = _ESCAPES.sub("", escape_undecodable(str(value)))
    text = text.replace("\t", " ").replace("\r\n", "\n")
    if keep_newlines:
        return _CONTROLS_KEEP_NL.sub("", text)
    return _CONTROLS.sub("", text.replace("\n", " "))


def _visible(match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def show_controls(value, keep_newlines: bool = True) -> str:
    """Crash data for a page: every control character and bidirectional override written
    as its escape (``\\x1b``, ``\\u202e``), so it is seen, neither obeyed nor hidden; line
    breaks stay (unless `keep_newlines` is false: one line for a log), a tab becomes a space.
    A backslash is not doubled: the text is for reading.

    >>> show_controls("esc\\x1b[31mprog\\x07")
    'esc\\\\x1b[31mprog\\\\x07'
    """
    if value is None:
        return ""
    text = escape_undecodable(str(value)).replace("\t", " ")
    if not keep_newlines:
        return _CONTROLS.sub(_visible, text)
    return _CONTROLS_KEEP_NL.sub(_visible, text.replace("\r\n", "\n"))


def clean_xml(value) -> str:
    """Crash data made safe for an XML 1.0 text node or attribute (before escaping).

    >>> clean_xml("a\\x00b\\x1b[1mc")
    'abc'
    """
    if value is None:
        return ""
    return _NOT_XML.sub("", _ESCAPES.sub("", escape_undecodable(str(value))))


def safe_href(path: Optional[str]) -> Optional[str]:
    """A relative link (to a file of the artifact directory), or None.

    Absolute paths and anything with a scheme are refused; every path segment is
    percent-encoded (RFC 3986 §3.3), so ``javascript:`` or quotes in a crash id cannot
    turn into a live URL.

    >>> safe_href("a b/crash.json")
    'a%20b/crash.json'
    >>> safe_href("javascript:alert(1)") is None
    True
    """
    if not path or not isinstance(path, str):
        return None
    parts = path.replace("\\", "/").split("/")
    if path.startswith("/") or ":" in parts[0] or "" in parts:
        return None
    return "/".join(quote(p, safe="") if p != ".." else p for p in parts)


_WEB_URL = lazy_compile(r"https?://[A-Za-z0-9.-]+(?::\d+)?(?:/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?(?:#[A-Za-z0-9._~/-]*)?")


def safe_web_url(url) -> Optional[str]:
    """An absolute http(s) link to a CI's job page, or None: only the characters RFC 3986
    allows unencoded in a host, port, path and fragment, so no quote, space or ``javascript:``.

    >>> safe_web_url("https://app.circleci.com/pipelines/workflows/1f2")
    'https://app.circleci.com/pipelines/workflows/1f2'
    >>> safe_web_url('https://x/"onmouseover=1') is None
    True
    """
    if not isinstance(url, str) or len(url) > 2048:
        return None
    return url if _WEB_URL.fullmatch(url) else None
