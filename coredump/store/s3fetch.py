"""
S3 fetch
========

Download a job (or one crash with the binaries it needs) from S3 into a local directory
laid out like the artifact directory it came from. Only the files summary.json records with
a size and sha256 are fetched, and each is checked against them: an object added to the job
later (a planted library under ``files/``) or changed after upload never lands in DEST.
Every key and every name in summary.json is hostile: none becomes a path outside DEST.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from coredump.errors import StorageError
from coredump.store.hashing import hash_file
from coredump.store.s3 import (
    CLAIM,
    SUMMARY,
    ByteCounter,
    get_json_document,
    make_client,
    storage_errors,
    transfer_config,
)
from coredump.store.s3deadline import DEFAULT_TIMEOUT, Deadline
from coredump.store.s3url import S3Url, parse_s3_url
from coredump.store.safe_extract import check_relative_key, commit_tempfile, open_safe_tempfile, safe_target

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Any, Callable, Dict, List, Optional, Tuple

    from coredump.store.s3 import Progress
    Digests = Dict[str, Dict[str, Any]]
    Plan = List[Tuple[str, str, int]]  # (relative name, key, size)

__all__ = ("fetch_artifacts", "expected_digests", "wanted_files")

_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_SHOWN = 10  # skipped names a warning spells out


def expected_digests(summary: dict) -> Digests:
    """Every file the summary records with both ``size`` and ``sha256``: each crash's ``core``
    (the crash's own ``size``/``sha256``), its ``file_digests``, and the top-level
    ``digests`` (crash.json, report.html, index.html, junit.xml).

    >>> expected_digests({"crashes": [{"id": "c1", "core": "c1/core.zst", "size": 42, "sha256": "ab" * 32}]})
    {'c1/core.zst': {'size': 42, 'sha256': 'abababababababababababababababababababababababababababababababab'}}
    """
    out: Digests = {}
    for crash in _crashes(summary):
        if isinstance(crash.get("core"), str):
            out[crash["core"]] = _digest(crash)
        out.update(_digest_map(crash.get("file_digests")))
    out.update(_digest_map(summary.get("digests")))
    # summary.json is written from the bytes checked here; the claim is the bucket's, not the job's.
    return {rel: d for rel, d in out.items() if d and rel not in (SUMMARY, CLAIM)}


def _crashes(summary: dict) -> List[dict]:
    crashes = summary.get("crashes")
    return [c for c in crashes if isinstance(c, dict)] if isinstance(crashes, list) else []


def _digest_map(value) -> Digests:
    items = value.items() if isinstance(value, dict) else ()
    return {rel: _digest(d) for rel, d in items if isinstance(rel, str) and isinstance(d, dict)}


def _digest(entry: dict) -> Dict[str, Any]:
    size, sha256 = entry.get("size"), entry.get("sha256")
    if isinstance(size, int) and not isinstance(size, bool) and size >= 0 \
            and isinstance(sha256, str) and _SHA256_RE.match(sha256):
        return {"size": size, "sha256": sha256.lower()}
    return {}


def wanted_files(summary: dict, crash: Optional[str]) -> Digests:
    """What a fetch brings: every recorded file of the job, or for one crash its own folder's
    files and the bundled files its summary entry lists."""
    expected = expected_digests(summary)
    if crash is None:
        return expected
    entry = next(c for c in _crashes(summary) if c.get("id") == crash)
    mine = set(_digest_map(entry.get("file_digests"))) | {entry.get("core")}
    return {rel: d for rel, d in expected.items() if rel in mine or rel.startswith(f"{crash}/")}


def _locate(client, base: S3Url) -> Tuple[S3Url, bytes, dict, Optional[str]]:
    """``(job, summary bytes, summary, crash id or None)``: ``base`` is a job, or a crash inside one."""
    found = get_json_document(client, base.bucket, base.key(SUMMARY)) if base.prefix else None
    if found is not None:
        return (base, *found, None)
    job = base.parent()
    found = get_json_document(client, job.bucket, job.key(SUMMARY)) if job.prefix else None
    if found is None or base.name not in [c.get("id") for c in _crashes(found[1])]:
        raise StorageError(f"no coredump job or crash at {base} (no {SUMMARY} found)")
    return (job, *found, base.name)


def _list(client, job: S3Url) -> Dict[str, Tuple[str, int]]:
    """``{relative name: (key, size)}`` of every object of the job that could be a file."""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=job.bucket, Prefix=job.key_prefix):
        for obj in page.get("Contents", []):
            found[obj["Key"][len(job.key_prefix):]] = (obj["Key"], obj["Size"])
    return found


def _refuse_unsafe(wanted: Digests, dest: Path, job: S3Url) -> None:
    """StorageError, before anything is written, if summary.json names a file that would land
    outside DEST (``..``, absolute, NUL) or on a symlink planted in it."""
    refused = []
    for rel in wanted:
        try:
            safe_target(dest, rel)
        except StorageError as exc:
            refused.append(f"{job.key(rel)!r} ({exc.args[0].rpartition(': ')[2]})")
    if refused:
        raise StorageError(f"refused {len(refused)} name(s) in {job.key(SUMMARY)} that would write outside "
                           f"the destination; nothing was downloaded: {'; '.join(refused)}")


def _plan(listing: Dict[str, Tuple[str, int]], wanted: Digests, recorded: Digests,
          job: S3Url) -> Tuple[Plan, List[str]]:
    """What to download, and the objects left in the bucket (named for a warning);
    StorageError if one recorded file is absent or of another size."""
    plan = []
    for rel, digest in sorted(wanted.items()):
        if rel not in listing:
            raise StorageError(f"{job.key(rel)}: {SUMMARY} records it but the bucket has no such object; "
                               "nothing was downloaded")
        key, size = listing[rel]
        if size != digest["size"]:
            raise StorageError(f"{key} is {size} bytes but {SUMMARY} records {digest['size']}; "
                               "nothing was downloaded")
        plan.append((rel, key, size))
    # "notes/" is the 0-byte object the S3 console makes for a folder: no file, nothing to say.
    # A key never becomes a path unless summary.json records it, so a hostile one is only named.
    skipped = [_describe_key(rel) for rel, (_, size) in listing.items()
               if rel not in recorded and rel not in (SUMMARY, CLAIM) and not (rel.endswith("/") and size == 0)]
    return plan, skipped


def _describe_key(rel: str) -> str:
    reason = check_relative_key(rel)
    shown = rel.encode("unicode_escape").decode("ascii")  # NUL, controls and ESC stay visible and inert
    return f"{shown} ({reason})" if reason and not rel.endswith("/") else shown


def fetch_artifacts(url: str, dest, progress: Optional[Progress] = None, client=None,
                    timeout: float = DEFAULT_TIMEOUT, warn: Optional[Callable[[str], None]] = None) -> List[Path]:
    """Download the job at ``url`` (``s3://B/PREFIX/JOB``), or one crash
    (``s3://B/PREFIX/JOB/ID``) with summary.json and the ``files/`` its summary entry lists,
    into ``dest``; return the paths written. For one crash, summary.json lists that crash
    only. Objects summary.json does not record are left in the bucket, named to ``warn``."""
    dest = Path(dest)
    base = parse_s3_url(url)
    client = client or make_client(Deadline(timeout, f"fetch of {base}"))
    with storage_errors(f"fetch of {base} failed"):
        job, raw, summary, crash = _locate(client, base)
        wanted = wanted_files(summary, crash)
        _refuse_unsafe(wanted, dest, job)
        plan, skipped = _plan(_list(client, job), wanted, expected_digests(summary), job)
        if crash:  # the copy lists the one crash fetched, so DEST is an artifact directory itself
            raw = json.dumps(dict(summary, crashes=[c for c in _crashes(summary) if c.get("id") == crash]),
                             indent=2).encode() + b"\n"
        with _Staging(dest) as staging:
            counter = ByteCounter(progress, sum(size for _, _, size in plan))
            _download_all(client, job, plan, staging, counter, wanted)
            staging.add(SUMMARY, raw)
            written = staging.commit()
    if skipped and warn:
        names = ", ".join(skipped[:_SHOWN]) + (f" and {len(skipped) - _SHOWN} more" if len(skipped) > _SHOWN else "")
        warn(f"not fetched, {SUMMARY} does not record them: {names}")
    return written


class _Staging:
    """Temporary files beside their final names under DEST, renamed into place only when all
    are complete; on failure the temporary files and the directories made for them go."""

    def __init__(self, dest: Path):
        self.dest, self.pending, self.created = dest, [], []

    def __enter__(self):
        missing = [p for p in [self.dest, *self.dest.parents] if not os.path.lexists(p)]
        self.dest.mkdir(parents=True, exist_ok=True)
        self.created += reversed(missing)
        return self

    def open(self, relative: str):
        out, tmp, _ = open_safe_tempfile(self.dest, relative, created=self.created)
        self.pending.append((relative, out, tmp))
        return out, tmp

    def add(self, relative: str, data: bytes) -> None:
        out, _ = self.open(relative)
        with out:
            out.write(data)

    def commit(self) -> List[Path]:
        for relative, out, _ in self.pending:
            out.close()
            safe_target(self.dest, relative)  # every name checked again before the first rename
        written = [commit_tempfile(tmp, self.dest, relative) for relative, _, tmp in self.pending]
        self.pending, self.created = [], []
        return written

    def __exit__(self, kind, exc, tb):
        for _, out, tmp in self.pending:
            out.close()
            if tmp.exists():
                tmp.unlink()
        for directory in reversed(self.created):
            try:
                os.rmdir(directory)
            except OSError:  # not empty: something else is in it now
                break
        return False


def _verify(job: S3Url, key: str, tmp: Path, size: int, digest: Dict[str, Any]) -> None:
    """The received bytes against the listing's size and the summary's sha256."""
    received = os.path.getsize(tmp)
    if received != size:
        raise StorageError(f"s3://{job.bucket}/{key}: received {received} bytes, the listing says {size}")
    if hash_file(tmp) != digest["sha256"]:
        raise StorageError(f"s3://{job.bucket}/{key}: sha256 differs from the one {SUMMARY} records "
                           "(the object was changed after upload); nothing was kept")


def _download_all(client, job: S3Url, plan: Plan, staging: _Staging, counter: ByteCounter,
                  wanted: Digests) -> None:
    """Download every planned object into ``staging`` and check each."""
    from boto3.s3.transfer import ProgressCallbackInvoker, create_transfer_manager

    subscribers = [ProgressCallbackInvoker(counter)]
    with create_transfer_manager(client, transfer_config()) as manager:
        pending = []
        for relative, key, size in plan:
            out, tmp = staging.open(relative)
            future = manager.download(job.bucket, key, out, subscribers=subscribers)
            # The listing's size spares a HEAD per object; received bytes are checked below.
            future.meta.provide_transfer_size(size)
            pending.append((relative, key, size, out, tmp, future))
        for relative, key, size, out, tmp, future in pending:
            with storage_errors(f"download of s3://{job.bucket}/{key} failed"):
                future.result()
            out.close()
            _verify(job, key, tmp, size, wanted[relative])
