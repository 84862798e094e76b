"""
History links
=============

Browser links to crashes stored in S3, for the history page (``report --db --link-base``).
An ``s3://`` location opens nowhere by itself; a team serves its bucket through CloudFront,
an S3 website endpoint or a proxy, or opens objects in the AWS console. A link base maps an
S3 prefix to one of those: ``s3://BUCKET/PREFIX=https://BASE`` (an object's key below
PREFIX is appended to BASE) or ``s3://BUCKET/PREFIX=console[:REGION]`` (the console's
object page). Locations and report paths come from the database and are hostile: a link is
made only for a location below a configured prefix whose every path component is plain,
each percent-encoded (RFC 3986 §3.3), and the result is checked once more as a web URL.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlencode

from coredump.record import dataclass
from coredump.report.sanitize import safe_web_url

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Optional, Sequence

__all__ = ("LinkBase", "parse_link_base", "s3_report_href", "CONSOLE")

CONSOLE = "https://s3.console.aws.amazon.com/s3/object/"  # the S3 console's page of one object
_CONSOLE_TARGET = re.compile(r"console(?::[a-z0-9-]+)?")  # an AWS region name: us-east-1
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,254}")  # as store.s3url: S3's naming rules, relaxed


@dataclass(frozen=True)
class LinkBase:
    """S3 objects below ``s3://bucket/prefix`` open at ``base`` + key below the prefix, or
    in the console (``base`` None) of ``region``."""

    bucket: str
    prefix: str  # without leading or trailing "/"
    base: Optional[str] = None
    region: Optional[str] = None

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def _plain_parts(path: str) -> Optional[List[str]]:
    """The components of a relative path, None when one is empty, ``.`` or ``..``."""
    parts = path.split("/")
    return None if any(p in ("", ".", "..") for p in parts) or "\\" in path else parts


def _split(text: str):
    """S3PREFIX and TARGET, split at the first "=" a target follows (S3 keys may hold "=",
    as in Hive-style ``date=2026-12-01`` prefixes); None without one."""
    at = text.find("=")
    while at >= 0:
        target = text[at + 1:]
        if target.startswith(("https://", "http://")) or _CONSOLE_TARGET.fullmatch(target):
            return text[:at], target
        at = text.find("=", at + 1)
    return None


def parse_link_base(text: str) -> LinkBase:
    """``s3://BUCKET/PREFIX=https://BASE`` or ``…=console[:REGION]``; ValueError saying
    what is wrong.

    >>> parse_link_base("s3://ci/runs=https://crashes.example.com/runs/")
    LinkBase(bucket='ci', prefix='runs', base='https://crashes.example.com/runs', region=None)
    """
    split = _split(text)
    if split is None or not split[0].startswith("s3://"):
        raise ValueError(f"{text!r}: use s3://BUCKET/PREFIX=https://BASE or s3://BUCKET/PREFIX=console[:REGION]")
    s3, target = split
    bucket, _, prefix = s3[len("s3://"):].partition("/")
    prefix = prefix.strip("/")
    if not _BUCKET.fullmatch(bucket) or (prefix and _plain_parts(prefix) is None):
        raise ValueError(f"{s3!r}: not an S3 bucket and prefix")
    if target.startswith("console"):
        return LinkBase(bucket, prefix, None, target.partition(":")[2] or None)
    base = target.rstrip("/")
    if safe_web_url(base) is None or "#" in base:
        raise ValueError(f"{target!r}: not a plain http(s) URL (no query, fragment, quote or space)")
    return LinkBase(bucket, prefix, base)


def _key_below(location: str, base: LinkBase) -> Optional[List[str]]:
    """The key components of `location` below `base`'s prefix, None when it is not there."""
    root = f"s3://{base.bucket}/" + (f"{base.prefix}/" if base.prefix else "")
    if not location.startswith(root):
        return None
    rest = location[len(root):].strip("/")
    return _plain_parts(rest) if rest else []


def s3_report_href(location: Optional[str], report: Optional[str], bases: Sequence[LinkBase]) -> Optional[str]:
    """A browser link to the report at `report` (relative) in the job at S3 `location`,
    through the longest matching link base; None without one.

    >>> s3_report_href("s3://ci/runs/job 7", "c1/report.html", [parse_link_base("s3://ci/runs=https://cdn.test")])
    'https://cdn.test/job%207/c1/report.html'
    >>> s3_report_href("s3://ci/runs/j", "javascript:alert(1)", [parse_link_base("s3://ci=https://cdn.test")])
    """
    if not isinstance(location, str) or not isinstance(report, str) or len(location) + len(report) > 2048:
        return None
    rel = _plain_parts(report) if not report.startswith("/") and ":" not in report.split("/")[0] else None
    if rel is None:
        return None
    for base in sorted(bases, key=lambda b: -len(b.prefix)):
        below = _key_below(location, base)
        if below is None:
            continue
        if base.base is None:
            key = "/".join(filter(None, [base.prefix, *below, *rel]))
            query = {"region": base.region, "prefix": key} if base.region else {"prefix": key}
            return CONSOLE + quote(base.bucket, safe="") + "?" + urlencode(query, quote_via=quote)
        return safe_web_url(base.base + "/" + "/".join(quote(p, safe="") for p in [*below, *rel]))
    return None
