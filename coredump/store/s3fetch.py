"""
S3 fetch
========

Download a job (or one crash with the binaries it needs) from S3 into a local directory
laid out like the artifact directory it came from, refusing unsafe keys and wrong sizes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from coredump.errors import StorageError
from coredump.store.hashing import hash_file
from coredump.store.s3 import (
    SUMMARY,
    ByteCounter,
    Progress,
    get_json,
    make_client,
    storage_errors,
    transfer_config,
)
from coredump.store.s3deadline import DEFAULT_TIMEOUT, Deadline
from coredump.store.s3url import S3Url, parse_s3_url
from coredump.store.safe_extract import check_relative_key, commit_tempfile, open_safe_tempfile, safe_target

__all__ = ("fetch_artifacts", "expected_sizes", "expected_digests")

_BUILD_ID_RE = re.compile(r"^[0-9a-fA-F]{2,128}$")
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
Listing = List[Tuple[str, str, int]]  # (relative name, key, size from the listing)


def expected_digests(summary: dict) -> Dict[str, Dict[str, Any]]:
    """What the summary records of its stored files: a crash's ``size`` and ``sha256`` are
    those of its ``core`` file, ``file_digests`` those of its bundled ``files``.

    >>> expected_digests({"crashes": [{"id": "c1", "core": "c1/core.zst", "size": 42, "sha256": "ab"}]})
    {'c1/core.zst': {'size': 42, 'sha256': 'ab'}}
    """
    out: Dict[str, Dict[str, Any]] = {}
    for crash in summary.get("crashes") or []:
        if not isinstance(crash, dict):
            continue
        if isinstance(crash.get("core"), str):
            out[crash["core"]] = _digest(crash)
        digests = crash.get("file_digests")
        for rel, digest in (digests.items() if isinstance(digests, dict) else ()):
            if isinstance(rel, str) and isinstance(digest, dict):
                out[rel] = _digest(digest)
    return {rel: d for rel, d in out.items() if d}


def _digest(entry: dict) -> Dict[str, Any]:
    size, sha256 = entry.get("size"), entry.get("sha256")
    out: Dict[str, Any] = {}
    if isinstance(size, int) and not isinstance(size, bool):
        out["size"] = size
    if isinstance(sha256, str) and _SHA256_RE.match(sha256):
        out["sha256"] = sha256.lower()
    return out


def expected_sizes(summary: dict) -> Dict[str, int]:
    """Sizes the summary records, by relative path.

    >>> expected_sizes({"crashes": [{"id": "c1", "core": "c1/core.zst", "size": 42}]})
    {'c1/core.zst': 42}
    """
    return {rel: d["size"] for rel, d in expected_digests(summary).items() if "size" in d}


def _list(client, where: S3Url, under: S3Url) -> Listing:
    """Every object below ``where``, named relative to ``under`` (the job)."""
    found = []
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=where.bucket, Prefix=where.key_prefix)
    for page in pages:
        for obj in page.get("Contents", []):
            found.append((obj["Key"][len(under.key_prefix):], obj["Key"], obj["Size"]))
    return found


def _locate(client, base: S3Url) -> Tuple[S3Url, dict, Optional[str]]:
    """``(job, summary, crash id or None)``: ``base`` is a job, or a crash inside one."""
    summary = get_json(client, base.bucket, base.key(SUMMARY)) if base.prefix else None
    if summary is not None:
        return base, summary, None
    job = base.parent()
    summary = get_json(client, job.bucket, job.key(SUMMARY)) if job.prefix else None
    ids = [c.get("id") for c in (summary or {}).get("crashes") or [] if isinstance(c, dict)]
    if summary is None or base.name not in ids:
        raise StorageError(f"no coredump job or crash at {base} (no {SUMMARY} found)")
    return job, summary, base.name


def _crash_listing(client, job: S3Url, crash: str) -> Listing:
    """The crash directory plus ``files/<build-id>/`` of each module its crash.json names."""
    listing = _list(client, job.join(crash), job)
    analysis = get_json(client, job.bucket, job.key(f"{crash}/crash.json")) or {}
    build_ids = sorted({m.get("build_id") for m in analysis.get("modules") or []
                        if isinstance(m, dict) and isinstance(m.get("build_id"), str)})
    for build_id in build_ids:
        if _BUILD_ID_RE.match(build_id):
            listing += _list(client, job.join("files", build_id), job)
    return listing


def _check(listing: Listing, dest: Path, summary: dict, job: S3Url) -> None:
    """Refuse the whole fetch, before writing anything, if one key is unsafe or one size wrong."""
    refused = []
    for relative, key, _ in listing:
        reason = check_relative_key(relative)
        if reason is None:
            try:
                safe_target(dest, relative)
            except StorageError as exc:
                reason = str(exc).rpartition(": ")[2]
        if reason:
            refused.append(f"{key!r} ({reason})")
    if refused:
        raise StorageError(f"refused {len(refused)} key(s) under {job} that would write outside the "
                           f"destination; nothing was downloaded: {'; '.join(refused)}")
    sizes = {relative: size for relative, _, size in listing}
    for relative, size in expected_sizes(summary).items():
        if relative in sizes and sizes[relative] != size:
            raise StorageError(f"{job.key(relative)} is {sizes[relative]} bytes but {SUMMARY} records {size}")


def fetch_artifacts(url: str, dest, progress: Optional[Progress] = None, client=None,
                    timeout: float = DEFAULT_TIMEOUT) -> List[Path]:
    """Download the job at ``url`` (``s3://B/PREFIX/JOB``), or one crash
    (``s3://B/PREFIX/JOB/ID``) with summary.json and the ``files/`` its modules need, into
    ``dest``; return the paths written. For one crash, summary.json lists that crash only."""
    dest = Path(dest)
    base = parse_s3_url(url)
    client = client or make_client(Deadline(timeout, f"fetch of {base}"))
    with storage_errors(f"fetch of {base} failed"):
        job, summary, crash = _locate(client, base)
        if crash:
            listing = [item for item in _crash_listing(client, job, crash) if item[0] != SUMMARY]
            check = listing + [(SUMMARY, job.key(SUMMARY), 0)]
        else:
            listing = check = _list(client, job, job)
        dest.mkdir(parents=True, exist_ok=True)
        _check(check, dest, summary, job)
        counter = ByteCounter(progress, sum(size for _, _, size in listing))
        written = _download_all(client, job, listing, dest, counter, expected_digests(summary))
        if crash:  # the copy lists the one crash fetched, so DEST is an artifact directory itself
            written.append(_write_summary(dest, dict(summary, crashes=[
                c for c in summary["crashes"] if isinstance(c, dict) and c.get("id") == crash])))
    return written


def _write_summary(dest: Path, summary: dict) -> Path:
    out, tmp, _ = open_safe_tempfile(dest, SUMMARY)
    with out:
        out.write(json.dumps(summary, indent=2).encode() + b"\n")
    return commit_tempfile(tmp, dest, SUMMARY)


def _verify(job: S3Url, key: str, relative: str, tmp: Path, size: int, expected: Dict[str, Dict[str, Any]]) -> None:
    """The received bytes against the listing's size and the summary's sha256."""
    received = os.path.getsize(tmp)
    if received != size:
        raise StorageError(f"s3://{job.bucket}/{key}: received {received} bytes, the listing says {size}")
    want = expected.get(relative, {}).get("sha256")
    if want is not None and hash_file(tmp) != want:
        raise StorageError(f"s3://{job.bucket}/{key}: sha256 differs from the one {SUMMARY} records "
                           "(the object was changed after upload); nothing was kept")


def _download_all(client, job: S3Url, listing: Listing, dest: Path, counter: ByteCounter,
                  expected: Dict[str, Dict[str, Any]]) -> List[Path]:
    """Download every object to a temporary file, check each, then rename them all into
    place: a wrong object leaves nothing behind."""
    from boto3.s3.transfer import ProgressCallbackInvoker, create_transfer_manager

    written, pending = [], []
    subscribers = [ProgressCallbackInvoker(counter)]
    try:
        with create_transfer_manager(client, transfer_config()) as manager:
            for relative, key, size in listing:
                out, tmp, _ = open_safe_tempfile(dest, relative)
                future = manager.download(job.bucket, key, out, subscribers=subscribers)
                # The listing's size spares a HEAD per object; received bytes are checked below.
                future.meta.provide_transfer_size(size)
                pending.append((relative, key, size, out, tmp, future))
            for relative, key, size, out, tmp, future in pending:
                with storage_errors(f"download of s3://{job.bucket}/{key} failed"):
                    future.result()
                out.close()
                _verify(job, key, relative, tmp, size, expected)
        for relative, _key, _size, _out, tmp, _future in pending:
            written.append(commit_tempfile(tmp, dest, relative))
    finally:
        for *_, out, tmp, _future in pending:  # what a failure left behind
            out.close()
            if tmp.exists():
                tmp.unlink()
    return written
