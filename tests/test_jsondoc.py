"""read_document: the artifact directory's JSON documents, or one StorageError naming the file."""

import pytest

from coredump.errors import StorageError
from coredump.jsondoc import read_document
from coredump.model import CRASH_SCHEMA, SUMMARY_SCHEMA


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
