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

import functools
import os

try:  # the json package's C encoder without the package: ``import json`` (its decoder, its
    # scanner, six regular expressions compiled) is ~2 ms of an analysis, which only writes JSON
    from _json import encode_basestring, encode_basestring_ascii, make_encoder
except ImportError:  # an interpreter without it: json.JSONEncoder (below)
    make_encoder = None

from coredump.errors import StorageError
from coredump.model import CRASH_SCHEMA
from coredump.patterns import lazy_compile

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Any, BinaryIO, Dict, Iterator, Optional

__all__ = ("read_document", "dumps_document", "dumps_compact", "escape_undecodable", "json_safe",
           "crash_type_error")

# PEP 383: surrogateescape decodes byte 0xNN (>= 0x80) of invalid UTF-8 as U+DCNN; any other
# lone surrogate (from a JSON "\\ud800" escape) is no Unicode scalar value either (RFC 3629).
_SURROGATES = lazy_compile("[\ud800-\udfff]")


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
    """`value` as JSON text that encodes to valid UTF-8 (the one writer of our documents):
    the text of ``json.dumps(json_safe(value), indent=indent, ensure_ascii=False)``, made by
    CPython's C encoder (which runs only without `indent`: each container of scalars is one
    call of it) and with lone surrogates escaped in the finished text."""
    try:
        text = _encode(value, 0, indent) if indent is not None else _flat_encoder(None).encode(value)
    except _NotPlain:
        import json

        return json.dumps(json_safe(value), indent=indent, ensure_ascii=False)
    if text.isascii() or _SURROGATES.search(text) is None:
        return text
    if _keys_collide(value):  # json_safe merges keys that escape alike; keep its one key
        import json

        return json.dumps(json_safe(value), indent=indent, ensure_ascii=False)
    # in a JSON string, escape_undecodable's backslash is itself escaped (RFC 8259 §7)
    return _SURROGATES.sub(lambda m: "\\" + _escape(m), text)


class _NotPlain(Exception):
    """A key that is no string in an object of containers: the reference encoder spells it."""


_CONTAINERS = (dict, list, tuple)


def dumps_compact(value: Any) -> str:
    """``json.dumps(value, separators=(",", ":"))``: ASCII, no spaces."""
    return _encoder(",", ":", True).encode(value)


@functools.cache
def _flat_encoder(indent: Optional[str]):
    # json.dumps(indent=N) separates items by "," and a newline indented one level deeper
    return _encoder(", " if indent is None else ",\n" + indent, ": ", False)


@functools.cache
def _encoder(item_separator: str, key_separator: str, ensure_ascii: bool):
    """What ``json.JSONEncoder(ensure_ascii=ensure_ascii, separators=(item_separator,
    key_separator), check_circular=False)`` is for ``encode``."""
    if make_encoder is not None:
        try:
            return _CEncoder(item_separator, key_separator, ensure_ascii)
        except TypeError:  # another interpreter's make_encoder takes other arguments
            pass
    import json

    return json.JSONEncoder(ensure_ascii=ensure_ascii, separators=(item_separator, key_separator),
                            check_circular=False)


class _CEncoder:
    """json.JSONEncoder.encode as CPython's json.encoder runs it without `indent`: a string
    alone through the string encoder, anything else through ``_json.make_encoder``."""

    def __init__(self, item_separator: str, key_separator: str, ensure_ascii: bool):
        self._string = encode_basestring_ascii if ensure_ascii else encode_basestring
        # (markers, default, encoder, indent, key_separator, item_separator, sort_keys, skipkeys,
        # allow_nan), as json.encoder.JSONEncoder.iterencode passes them
        self._iterencode = make_encoder(None, _not_serializable, self._string, None, key_separator, item_separator,
                                        False, False, True)

    def encode(self, value: Any) -> str:
        if isinstance(value, str):
            return self._string(value)
        return "".join(self._iterencode(value, 0))


def _not_serializable(value):
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def _encode(value: Any, depth: int, indent: int) -> str:
    """json.dumps(value, indent=indent)'s text at nesting `depth`: each run of scalars in a
    container is one call of the C encoder, with json.dumps' separators for that depth."""
    if not isinstance(value, _CONTAINERS):
        return _flat_encoder(None).encode(value)
    is_dict = isinstance(value, dict)
    if not value:
        return "{}" if is_dict else "[]"
    inner = " " * (indent * (depth + 1))
    flat = _flat_encoder(inner)
    for child in value.values() if is_dict else value:
        if isinstance(child, _CONTAINERS):
            break
    else:  # scalars only: the whole container in one call
        text = flat.encode(value)
        return f"{text[0]}\n{inner}{text[1:-1]}\n{' ' * (indent * depth)}{text[-1]}"
    if not is_dict and all(isinstance(v, dict) and v and not _has_containers(v) for v in value):
        return _records(value, depth, indent)
    parts = []
    run: Any = {} if is_dict else []
    for item in value.items() if is_dict else value:
        child = item[1] if is_dict else item
        if not isinstance(child, _CONTAINERS):
            if is_dict:
                run[item[0]] = child
            else:
                run.append(child)
            continue
        if run:
            parts.append(flat.encode(run)[1:-1])
            run = {} if is_dict else []
        if not is_dict:
            parts.append(_encode(child, depth + 1, indent))
        elif isinstance(item[0], str):
            parts.append(f"{flat.encode(item[0])}: {_encode(child, depth + 1, indent)}")
        else:
            raise _NotPlain
    if run:
        parts.append(flat.encode(run)[1:-1])
    open_, close = "{}" if is_dict else "[]"
    separator = ",\n" + inner
    return f"{open_}\n{inner}{separator.join(parts)}\n{' ' * (indent * depth)}{close}"


def _has_containers(record: dict) -> bool:
    return any(isinstance(v, _CONTAINERS) for v in record.values())


def _records(value, depth: int, indent: int) -> str:
    """A list of non-empty objects of scalars (a frame's arguments) in one call of the C
    encoder: its separators are those inside the objects, and one between two objects
    (``},`` a newline and ``{``: a newline is no character of JSON text's strings, RFC 8259
    §7) is given the list's indentation."""
    inner, record = " " * (indent * (depth + 1)), " " * (indent * (depth + 2))
    text = _flat_encoder(record).encode(value)
    body = text[2:-2].replace(f"}},\n{record}{{", f"\n{inner}}},\n{inner}{{\n{record}")
    return f"[\n{inner}{{\n{record}{body}\n{inner}}}\n{' ' * (indent * depth)}]"


def _keys_collide(value: Any) -> bool:
    """Whether some object in `value` has two keys that json_safe spells alike."""
    if isinstance(value, dict):
        keys = [escape_undecodable(k) if isinstance(k, str) else k for k in value]
        return len(set(keys)) < len(keys) or any(_keys_collide(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_keys_collide(v) for v in value)
    return False


def read_document(path, schema: Optional[str] = None, file: Optional[BinaryIO] = None) -> Dict[str, Any]:
    """The JSON object in `path` (read from `file` when given: a binary file already open on
    it); with `schema`, its ``schema`` field must name that family (``coredump.summary/1``
    accepts any ``coredump.summary/N``)."""
    import json

    path = os.fspath(path)  # not pathlib: ~5 ms of analyze's start-up
    try:
        if file is None:
            with open(path, encoding="utf-8") as f:
                data = json.loads(f.read())
        else:
            data = json.loads(file.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise StorageError(f"{path} is not a JSON object")
    data = json_safe(data)  # a "\\udce9" escape in the file is a lone surrogate once parsed
    problem = crash_type_error(data) if schema == CRASH_SCHEMA else None
    if problem:
        raise StorageError(f"{path} is not a {schema} document: {problem}")
    if schema is not None and not str(data.get("schema", "")).startswith(schema.split("/", 1)[0] + "/"):
        raise StorageError(f"{path} is not a {schema} document")
    return data


class _Map:
    """A JSON object with any keys whose values are all of one kind (registers)."""

    def __init__(self, kind):
        self.kind = kind


_FRAME = {"index": int, "pc": str, "function": str, "offset": int, "module": str, "module_offset": str,
          "file": str, "line": int, "inline": bool, "tailcall": bool, "trust": str, "mangled": str,
          "source_path": str}
# docs/json-schema.md, coredump.crash/1: each field may be null or absent, and has this type
# when present; fields not listed are not read by the renderers and are not checked.
_CRASH = {
    "schema": str,
    "core": {"path": str, "size": int, "truncated": bool},
    "process": {"pid": int, "executable": str, "argv": [str], "arch": str},
    "signal": {"number": int, "name": str, "code": int, "code_name": str, "address": str,
               "description": str, "sender_pid": int},
    "crashing_thread": int,
    "threads": [{"tid": int, "status": str, "truncated": bool, "frames_omitted": int,
                 "registers": _Map(str), "frames": [_FRAME]}],
    "modules": [{"path": str, "start": str, "end": str, "build_id": str, "file_build_id": str,
                 "debug_file": str, "file": str, "status": str}],
    "assertion": str, "reason": str, "classification": str, "signature": str, "fingerprint": str,
    "warnings": [str],
}
_KINDS = {bool: "true or false", int: "an integer", float: "a fraction", str: "a string", list: "an array",
          dict: "an object"}


def _kind(value) -> str:
    return next(name for kind, name in _KINDS.items() if isinstance(value, kind))


def _type_errors(value, spec, where: str) -> Iterator[str]:
    if value is None:
        return
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            yield f"{where} is {_kind(value)}, not an object"
            return
        for key, sub in spec.items():
            yield from _type_errors(value.get(key), sub, f"{where}.{key}")
    elif isinstance(spec, (list, _Map)):
        container = list if isinstance(spec, list) else dict
        if not isinstance(value, container):
            yield f"{where} is {_kind(value)}, not {_KINDS[container]}"
            return
        items = enumerate(value) if container is list else value.items()
        item_spec = spec[0] if isinstance(spec, list) else spec.kind
        for key, item in items:
            yield from _type_errors(item, item_spec, f"{where}[{key!r}]" if container is dict else f"{where}[{key}]")
    elif not isinstance(value, spec) or (spec is int and isinstance(value, bool)):
        yield f"{where} is {_kind(value)}, not {_KINDS[spec]}"


def crash_type_error(doc: Dict[str, Any]) -> Optional[str]:
    """The first field of a crash document whose type is not the schema's, or None.

    >>> crash_type_error({"core": 5})
    'core is an integer, not an object'
    """
    return next((e.lstrip(".") for e in _type_errors(doc, _CRASH, "")), None)
