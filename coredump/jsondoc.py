"""
JSON documents
==============

Reading the documents of the artifact directory (``summary.json``, ``<id>/crash.json``): one
JSON object with the expected ``schema``, or one ``StorageError`` that names the file; and
the one rule for text that is no UTF-8, applied by every writer and printer.

Names read from a core (argv, NT_FILE, the link map) are decoded with ``surrogateescape``
(PEP 383), so a file lookup still finds the file; what is shown or written spells each
such byte ``\\xNN``, and JSON we write is always valid UTF-8 (RFC 8259 §8.1).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, BinaryIO, Dict, Optional

from coredump.errors import StorageError

__all__ = ("read_document", "dumps_document", "escape_undecodable", "json_safe")

# PEP 383: surrogateescape decodes byte 0xNN (>= 0x80) of invalid UTF-8 as U+DCNN; any other
# lone surrogate (from a JSON "\\ud800" escape) is no Unicode scalar value either (RFC 3629).
_SURROGATES = re.compile("[\ud800-\udfff]")


def _escape(match) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def escape_undecodable(text: str) -> str:
    """`text` with each byte that was no UTF-8 (and any lone surrogate) spelled as an escape.

    >>> escape_undecodable(b"caf\\xe9".decode("utf-8", "surrogateescape"))
    'caf\\\\xe9'
    """
    return _SURROGATES.sub(_escape, text)


def json_safe(value: Any) -> Any:
    """`value` (JSON-shaped: dicts, lists, scalars) with :func:`escape_undecodable` applied
    to every string, keys included."""
    if isinstance(value, str):
        return escape_undecodable(value)
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def dumps_document(value: Any, indent: Optional[int] = 2) -> str:
    """`value` as JSON text that encodes to valid UTF-8 (the one writer of our documents)."""
    return json.dumps(json_safe(value), indent=indent, ensure_ascii=False)


def read_document(path, schema: Optional[str] = None, file: Optional[BinaryIO] = None) -> Dict[str, Any]:
    """The JSON object in `path` (read from `file` when given: a binary file already open on
    it); with `schema`, its ``schema`` field must name that family (``coredump.summary/1``
    accepts any ``coredump.summary/N``)."""
    path = Path(path)
    try:
        data = json.loads(file.read().decode("utf-8") if file is not None else path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise StorageError(f"{path} is not a JSON object")
    data = json_safe(data)  # a "\\udce9" escape in the file is a lone surrogate once parsed
    if schema is not None and not str(data.get("schema", "")).startswith(schema.split("/", 1)[0] + "/"):
        raise StorageError(f"{path} is not a {schema} document")
    return data
