"""
S3 URLs
=======

Parse and join ``s3://BUCKET/PREFIX`` URLs, the one spelling every store command takes.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from coredump.errors import StorageError
from coredump.record import dataclass

__all__ = ("S3Url", "parse_s3_url", "http_url")

# Bucket naming rules (S3 User Guide, "General purpose bucket naming rules"), relaxed to
# upper case and underscores, which S3-compatible stores such as Ceph accept.
_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")


@dataclass(frozen=True)
class S3Url:
    """A bucket and a key prefix without leading or trailing ``/``.

    >>> S3Url("ci", "nightly").join("job1", "index.html")
    S3Url(bucket='ci', prefix='nightly/job1/index.html')
    >>> str(S3Url("ci", ""))
    's3://ci/'
    """

    bucket: str
    prefix: str = ""

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def key_prefix(self) -> str:
        """The prefix as keys under it start: ``''`` or ``'a/b/'``."""
        return f"{self.prefix}/" if self.prefix else ""

    @property
    def name(self) -> str:
        """The last path component of the prefix (a job or crash id)."""
        return self.prefix.rsplit("/", 1)[-1]

    def join(self, *parts: str) -> S3Url:
        extra = "/".join(p.strip("/") for p in parts if p.strip("/"))
        return S3Url(self.bucket, f"{self.key_prefix}{extra}".strip("/"))

    def parent(self) -> S3Url:
        return S3Url(self.bucket, self.prefix.rpartition("/")[0])

    def key(self, relative: str) -> str:
        """The object key of ``relative`` under this prefix."""
        return self.key_prefix + relative


def parse_s3_url(url: str) -> S3Url:
    """Split ``s3://BUCKET/PREFIX`` (the prefix may be empty).

    >>> parse_s3_url("s3://ci/nightly/")
    S3Url(bucket='ci', prefix='nightly')
    """
    if not url.startswith("s3://"):
        raise StorageError(f"not an S3 URL (expected s3://BUCKET/PREFIX): {url}")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    if not _BUCKET_RE.match(bucket):
        raise StorageError(f"invalid bucket name {bucket!r} in {url}")
    prefix = prefix.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise StorageError(f"invalid prefix {prefix!r} in {url}: empty, '.' or '..' component")
    return S3Url(bucket, prefix)


def http_url(endpoint: str, bucket: str, key: str) -> str:
    """The path-style HTTP(S) address of an object, for a browser."""
    return f"{endpoint.rstrip('/')}/{bucket}/{quote(key)}"


def upload_problem(url: str):
    """Why an upload to `url` cannot work, found before a step runs (a malformed URL, boto3
    not installed), or None. Imports nothing heavy: ``find_spec`` locates boto3 without
    loading it."""
    import importlib.util

    try:
        parse_s3_url(url)
    except StorageError as exc:
        return f"--upload {url}: {exc}"
    if importlib.util.find_spec("boto3") is None:
        return "--upload needs S3 support, which is not installed: pip install 'coredump[s3]' (boto3)"
    return None
