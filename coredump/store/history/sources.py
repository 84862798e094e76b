"""
Sources
=======

The jobs to record: artifact directories (one with a ``summary.json``, or a folder of them,
as ``coredump fetch`` or a CI download leaves them) and S3 prefixes (a job, or a prefix of
jobs, as ``coredump upload`` lays them out). A job whose summary cannot be read is skipped
with a warning naming it; the others are still given. Reads are bounded in size, and a
crash.json is read only below its own job (no ``..``, no absolute path, no symlink out).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from coredump.errors import CoreDumpError, StorageError
from coredump.model import SUMMARY_SCHEMA
from coredump.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Any, Callable, Dict, Iterator, List, Optional

__all__ = ("JobInput", "iter_jobs", "read_summary_dir", "MAX_DOCUMENT")

MAX_DOCUMENT = 64 << 20  # bytes of one summary.json or crash.json
SUMMARY = "summary.json"


@dataclass
class JobInput:
    location: str  # the artifact directory (absolute) or the job's s3:// prefix
    summary: Dict[str, Any]
    read_crash: Callable[[str], Optional[Dict[str, Any]]]


def _document(data: bytes, name: str) -> Dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise StorageError(f"{name}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise StorageError(f"{name}: not a JSON object")
    return value


def _summary(data: bytes, name: str) -> Dict[str, Any]:
    summary = _document(data, name)
    if not str(summary.get("schema", "")).startswith(SUMMARY_SCHEMA.split("/")[0] + "/"):
        raise StorageError(f"{name}: not a {SUMMARY_SCHEMA} document")
    if not isinstance(summary.get("crashes", []), list):
        raise StorageError(f"{name}: its crashes are not a list")
    return summary


def _inner(rel: str) -> bool:
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and "\\" not in rel and ".." not in parts and len(rel) < 1024


def _read_file(path: Path, limit: int = MAX_DOCUMENT) -> bytes:
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise StorageError(f"{path}: larger than {limit >> 20} MiB")
    return data


def read_summary_dir(root: Path) -> JobInput:
    """The job of one artifact directory; StorageError when its summary is unreadable."""
    root = Path(os.path.abspath(root))
    try:
        summary = _summary(_read_file(root / SUMMARY), str(root / SUMMARY))
    except OSError as exc:
        raise StorageError(f"{root / SUMMARY}: {exc.strerror or exc}") from None
    real_root = os.path.join(os.path.realpath(root), "")

    def read_crash(rel: str) -> Optional[Dict[str, Any]]:
        path = root / rel
        if not _inner(rel) or not os.path.realpath(path).startswith(real_root):
            return None
        try:
            return _document(_read_file(path), str(path))
        except (OSError, StorageError):
            return None  # the summary's own fields are still recorded

    return JobInput(str(root), summary, read_crash)


def _dir_jobs(path: Path, warnings: List[str]) -> Iterator[JobInput]:
    if not path.is_dir():
        raise StorageError(f"{path}: no such directory")
    if (path / SUMMARY).exists():
        dirs = [path]
    else:
        dirs = sorted(p for p in path.iterdir() if (p / SUMMARY).exists())
        if not dirs:
            raise StorageError(f"{path}: no {SUMMARY} in it or in its folders")
    for d in dirs:
        try:
            yield read_summary_dir(d)
        except StorageError as exc:
            warnings.append(f"skipped {exc}")


def _s3_get(client, bucket: str, key: str) -> Optional[bytes]:
    from botocore.exceptions import ClientError

    try:
        obj = client.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            return None
        raise
    if int(obj.get("ContentLength") or 0) > MAX_DOCUMENT:
        raise StorageError(f"s3://{bucket}/{key}: larger than {MAX_DOCUMENT >> 20} MiB")
    return obj["Body"].read(MAX_DOCUMENT + 1)


def _s3_job(client, job, warnings: List[str]) -> Optional[JobInput]:
    data = _s3_get(client, job.bucket, job.key(SUMMARY))
    if data is None:
        return None
    try:
        summary = _summary(data, str(job.join(SUMMARY)))
    except StorageError as exc:
        warnings.append(f"skipped {exc}")
        return None

    def read_crash(rel: str) -> Optional[Dict[str, Any]]:
        if not _inner(rel):
            return None
        try:
            raw = _s3_get(client, job.bucket, job.key(rel))
            return _document(raw, rel) if raw is not None else None
        except (CoreDumpError, Exception):  # noqa: BLE001 - the summary's own fields still count
            return None

    return JobInput(str(job), summary, read_crash)


def _s3_jobs(url: str, warnings: List[str]) -> Iterator[JobInput]:
    from coredump.store.s3 import make_client, storage_errors
    from coredump.store.s3url import S3Url, parse_s3_url

    base = parse_s3_url(url)
    client = make_client()
    with storage_errors(f"cannot list {base}"):
        own = _s3_job(client, base, warnings) if base.prefix else None
        if own is not None:
            yield own
            return
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=base.bucket, Prefix=base.key_prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                job = _s3_job(client, S3Url(base.bucket, common["Prefix"].rstrip("/")), warnings)
                if job is not None:
                    yield job


def iter_jobs(inputs, warnings: List[str]) -> Iterator[JobInput]:
    """Every job the inputs name, in order; an input that cannot be read, or names no job,
    is a warning and the next is read."""
    for item in inputs:
        try:
            if str(item).startswith("s3://"):
                yield from _s3_jobs(str(item), warnings)
            else:
                yield from _dir_jobs(Path(item), warnings)
        except StorageError as exc:
            warnings.append(f"skipped {exc}")
