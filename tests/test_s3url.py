"""s3:// URL parsing and joining."""

import pytest

from coredump.errors import StorageError
from coredump.store.s3url import S3Url, http_url, parse_s3_url


@pytest.mark.parametrize("url, bucket, prefix", [
    ("s3://ci", "ci", ""),
    ("s3://ci/", "ci", ""),
    ("s3://ci/a/b/", "ci", "a/b"),
    ("s3://my.bucket-1/nightly", "my.bucket-1", "nightly"),
])
def test_parse(url, bucket, prefix):
    assert parse_s3_url(url) == S3Url(bucket, prefix)


@pytest.mark.parametrize("url, message", [
    ("https://ci/x", "not an S3 URL"),
    ("s3:///x", "invalid bucket"),
    ("s3://a/x", "invalid bucket"),
    ("s3://ci/a//b", "invalid prefix"),
    ("s3://ci/a/../b", "invalid prefix"),
])
def test_parse_refuses(url, message):
    with pytest.raises(StorageError, match=message):
        parse_s3_url(url)


def test_join_parent_key():
    job = S3Url("ci", "").join("nightly", "j1/")
    assert job == S3Url("ci", "nightly/j1")
    assert job.key("c1/core.zst") == "nightly/j1/c1/core.zst"
    assert job.parent() == S3Url("ci", "nightly") and job.name == "j1"
    assert str(job.parent().parent()) == "s3://ci/"
    assert S3Url("ci").key_prefix == ""


def test_http_url_quotes_the_key():
    assert http_url("http://h:9000/", "b", "p/a b#1.html") == "http://h:9000/b/p/a%20b%231.html"
