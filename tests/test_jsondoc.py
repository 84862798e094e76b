"""read_document: the artifact directory's JSON documents, or one StorageError naming the file;
dumps_document: the text the old writer (json.dumps of json_safe, indent=2) gave."""

import json

import pytest

from coredump.analysis import AnalyzeOptions, analyze_core
from coredump.errors import StorageError
from coredump.jsondoc import dumps_compact, dumps_document, json_safe, read_document
from coredump.model import CRASH_SCHEMA, SUMMARY_SCHEMA
from coredump.report.json import crash_to_dict
from tests.cores import BUILD


def test_reads_a_document_of_the_schema_family(tmp_path):
    p = tmp_path / "summary.json"
    p.write_text('{"schema": "coredump.summary/2", "crashes": []}')
    assert read_document(p, SUMMARY_SCHEMA)["crashes"] == []


@pytest.mark.parametrize("text,message", [
    ("{not json", "cannot read"),
    ("[1, 2]", "not a JSON object"),
    ('{"schema": "coredump.summary/1"}', "not a coredump.crash/1 document"),
    ('{"no": "schema"}', "not a coredump.crash/1 document"),
])
def test_bad_documents_name_the_file(tmp_path, text, message):
    p = tmp_path / "crash.json"
    p.write_text(text)
    with pytest.raises(StorageError, match=message) as exc:
        read_document(p, CRASH_SCHEMA)
    assert str(p) in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(StorageError, match="cannot read"):
        read_document(tmp_path / "nope.json")


# dumps_document: json.dumps(indent=2) runs CPython's pure-Python encoder; ours makes the
# same text with the C encoder. The reference is the old writer, kept here.
def _old_writer(value, indent=2):
    return json.dumps(json_safe(value), indent=indent, ensure_ascii=False)


_UNDECODABLE = b"caf\xe9 \xff".decode("utf-8", "surrogateescape")
_HOSTILE = {
    "schema": "coredump.crash/1",
    "argv\udce9": [_UNDECODABLE, "\ud800 lone", "", "ok"],
    "threads": [
        {"tid": 1, "frames": [{"index": 0, "function": "f\udc80", "args": [
            {"name": "s", "type": "char *", "value": '0x1 "\udcfe\\"\n,{}[]"', "raw": "0x1"}],
            "inline": False, "line": None, "ratio": 0.5}, {}], "registers": {"rip\udce9": "0x0"}},
        [], [[{"deep": ["\udce9", 1, True, None, {"k\udcff": {}}]}]],
    ],
    "tuple": (1, ("\udce9", [])),
    "empty": {},
}


@pytest.mark.parametrize("doc", [
    _HOSTILE, {}, [], "\udce9", 7, None, [[[]]], {"a": {"b": {"c": []}}},
    {"n": {1: "int key", None: "null key", 2.5: "float key", False: "bool key"}},  # keys json.dumps converts
    {"mixed": [{"x": 1}], 3: "an int key beside a container"},
    # lists of objects of scalars, whose text is made in one piece: braces, commas and
    # newlines inside their strings, an empty object among them, a list inside one
    {"a": [{"v": "a},\n    {", "w": "}"}, {"v": "{"}, {"x": "}, {"}], "b": [[{"k": 1}, {"k": 2}]],
     "c": [{"k": 1}, {}], "d": [{"k": 1}, {"l": [2]}], "e": [{1: "x", None: 2}, {"z": (3, 4)}]},
], ids=["hostile", "empty-object", "empty-array", "string", "int", "null", "nested-arrays", "nested-objects",
        "non-string-keys", "non-string-key-beside-container", "lists-of-objects"])
@pytest.mark.parametrize("indent", [2, 0, 4, None])
def test_writer_text_is_the_old_writers(doc, indent):
    assert dumps_document(doc, indent) == _old_writer(doc, indent)


def test_keys_that_escape_alike_are_one_key_as_before():
    doc = {"list": [{"\udce9": 1, "\\xe9": 2}]}
    assert dumps_document(doc) == _old_writer(doc)
    assert dumps_document(doc).count("xe9") == 1


def test_writer_output_is_valid_utf8_and_names_the_bytes():
    text = dumps_document(_HOSTILE)
    text.encode("utf-8")  # no lone surrogate left (RFC 8259 §8.1)
    assert json.loads(text)["argv\\xe9"][0] == "caf\\xe9 \\xff"


def test_a_real_crash_document_is_written_as_before(make_core):
    core = make_core("O0", "threads")
    crash = crash_to_dict(analyze_core(str(core), AnalyzeOptions(exe=str(BUILD / "O0" / "threads"))))
    assert len(crash["threads"]) > 1
    assert dumps_document(crash) == _old_writer(crash)


@pytest.mark.parametrize("value", [
    ["SIGSEGV in f", [["segv", "store_value"], ["libc.so", None], [None, "0x1139"]], "mutual recursion"],
    ["héad \u2028 \x00 \"q\" \\", [["\udce9", "operator<<"]]],
    {"k": 1, "n": [1.5, -0.0, 1e300, True, None], "": {}}, "a string", 7, [],
])
def test_compact_text_is_json_dumps_with_compact_separators(value):
    assert dumps_compact(value) == json.dumps(value, separators=(",", ":"))
