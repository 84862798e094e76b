"""
JSON documents
==============

Reading the documents of the artifact directory (``summary.json``, ``<id>/crash.json``): one
JSON object with the expected ``schema``, or one ``StorageError`` that names the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO, Dict, Optional

from coredump.errors import StorageError

__all__ = ("read_document",)


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
    if schema is not None and not str(data.get("schema", "")).startswith(schema.split("/", 1)[0] + "/"):
        raise StorageError(f"{path} is not a {schema} document")
    return data
