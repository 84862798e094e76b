"""
S3 store
========

Upload an artifact directory to ``s3://BUCKET/PREFIX/<job>/`` and list the jobs under a
prefix, with boto3 (imported lazily: install ``coredump[s3]``).

Credentials, region and endpoint come from boto3's usual chain; ``AWS_ENDPOINT_URL``
points it at MinIO, Ceph or any S3-compatible store (path-style addressing is then used).
Retries use botocore's ``standard`` mode, which retries throttling (503 SlowDown), 5xx and
connection errors with exponential backoff and jitter, capped at 20 s; ``AWS_RETRY_MODE``
and ``AWS_MAX_ATTEMPTS`` override it. Every attempt has short connect and read timeouts, and
an upload or fetch as a whole a deadline (:mod:`coredump.store.s3deadline`).

A job id is claimed before anything is written under it, with a conditional write of
``<job>/.coredump-job.json`` (``If-None-Match: *``: S3 has honoured it since 2024-08 and moto
does, answering 412 PreconditionFailed when the key exists, or 409 ConditionalRequestConflict
to a write racing another), then read back, for a store that ignores the header. Default ids
also end in a random part, so two jobs that start in one second on one host (a matrix, a
re-run) never even compete for one id.
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
import secrets
import socket
from datetime import datetime, timezone
from pathlib import Path

from coredump.errors import StorageError
from coredump.store.s3deadline import CONNECT_TIMEOUT, DEFAULT_TIMEOUT, READ_TIMEOUT, Deadline
from coredump.store.s3url import S3Url, http_url, parse_s3_url

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable, List, Optional, Tuple
    Progress = Callable[[int, int], None]

__all__ = ("upload_artifacts", "list_jobs", "make_client", "transfer_config", "default_job_id",
           "read_summary", "storage_errors", "get_json", "get_json_document", "ByteCounter", "Progress",
           "MULTIPART_THRESHOLD", "MAX_ATTEMPTS", "MAX_JSON", "CLAIM", "DEFAULT_TIMEOUT")

#: ``progress(bytes_done, bytes_total)``, called from transfer threads.

MiB = 1024 * 1024
#: Files above this go up in parts of ``MULTIPART_CHUNKSIZE`` (S3's minimum part is 5 MiB).
MULTIPART_THRESHOLD = 8 * MiB
MULTIPART_CHUNKSIZE = 8 * MiB
MAX_ATTEMPTS = 5
#: The largest summary.json (or other JSON document) read from a bucket.
MAX_JSON = 64 * MiB
SUMMARY = "summary.json"
#: The object that claims a job id for one upload (never part of the artifact directory).
CLAIM = ".coredump-job.json"

# Browsers render an object by its Content-Type: index.html and report.html must be text/html.
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".xml": "application/xml",
    ".zst": "application/zstd",
    ".txt": "text/plain; charset=utf-8",
}


def make_client(deadline: Optional[Deadline] = None):
    """An S3 client from the default credential chain, with standard-mode retries, short
    timeouts, and every request (retries included) within ``deadline`` when given."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise StorageError("S3 support needs boto3: pip install 'coredump[s3]'") from exc
    # total_max_attempts counts the first try, as AWS_MAX_ATTEMPTS does; the client config's
    # max_attempts would count retries only (botocore PR #1972).
    attempts = os.environ.get("AWS_MAX_ATTEMPTS", str(MAX_ATTEMPTS))
    if not attempts.isdigit() or int(attempts) < 1:
        raise StorageError(f"AWS_MAX_ATTEMPTS must be a positive integer, not {attempts!r}")
    retries = {"mode": os.environ.get("AWS_RETRY_MODE", "standard"), "total_max_attempts": int(attempts)}
    s3 = {"addressing_style": "path"} if os.environ.get("AWS_ENDPOINT_URL") else {}
    timeouts = deadline.timeouts() if deadline else {"connect_timeout": CONNECT_TIMEOUT,
                                                      "read_timeout": READ_TIMEOUT}
    config = Config(retries=retries, s3=s3, **timeouts)
    with storage_errors("cannot create an S3 client"):
        client = boto3.client("s3", config=config)
    if deadline:
        deadline.attach(client)
    return client


def transfer_config():
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_CHUNKSIZE,
                          max_concurrency=4, preferred_transfer_client="classic")


class storage_errors:
    """Turn boto3/botocore failures inside the block into one ``StorageError`` line."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, StorageError):
            return False
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError
        from s3transfer import exceptions as transfer

        failures = (BotoCoreError, ClientError, Boto3Error, OSError, transfer.RetriesExceededError,
                    transfer.S3UploadFailedError, transfer.S3DownloadFailedError, transfer.CancelledError)
        if isinstance(exc, failures):
            message = " ".join(str(exc).split())
            raise StorageError(f"{self.what}: {message}") from exc
        return False


def default_job_id(summary: dict) -> str:
    """``<started as YYYYmmddTHHMMSSZ>-<CI build or host>-<8 random hex digits>``, from the
    summary (now and "unknown" if absent): the CI's build number where summary.json's ``ci``
    has one (a CI host name is a container id), else the host; the random part keeps two
    uploads from sharing an id.

    >>> default_job_id({"started": "2024-05-01T12:34:56+02:00", "host": "ci runner/7"})[:-9]
    '20240501T103456Z-ci-runner-7'
    >>> default_job_id({"started": "2024-05-01T10:34:56Z", "host": "f00d",
    ...                 "ci": {"provider": "circleci", "build_number": "1234"}})[:-9]
    '20240501T103456Z-circleci-1234'
    """
    from coredump.store.ci_metadata import ci_job_id

    started = summary.get("started")
    when = None
    if isinstance(started, (int, float)):
        when = datetime.fromtimestamp(started, timezone.utc)
    elif isinstance(started, str):
        try:
            when = datetime.fromisoformat(started.replace("Z", "+00:00"))
        except ValueError:
            when = None
    if when is None:
        when = datetime.now(timezone.utc)
    elif when.tzinfo is None:
        when = when.astimezone()
    ci = summary.get("ci") if isinstance(summary.get("ci"), dict) else None
    host = ci_job_id(ci) if ci and isinstance(ci.get("provider"), str) else None
    host = host or re.sub(r"[^A-Za-z0-9._-]+", "-", str(summary.get("host") or "unknown")).strip("-.")
    return f"{when.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}-{host or 'unknown'}-{secrets.token_hex(4)}"


def read_summary(directory: Path) -> dict:
    if not directory.is_dir():
        raise StorageError(f"{directory} is not a directory")
    try:
        summary = json.loads((directory / SUMMARY).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StorageError(f"{directory} is not an artifact directory: it has no {SUMMARY}") from None
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot read {directory / SUMMARY}: {exc}") from exc
    if not isinstance(summary, dict):
        raise StorageError(f"{directory / SUMMARY} is not a JSON object")
    return summary


def iter_upload_files(directory: Path) -> List[Tuple[str, Path, int]]:
    """``(relative key, path, size)`` of every regular file, ``summary.json`` last: a job
    whose summary is in the bucket is complete (``ls`` and ``fetch`` read it first). A local
    ``.coredump-job.json`` would replace the job's claim: it stays behind."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            path = Path(root, name)
            rel = path.relative_to(directory).as_posix()
            if path.is_symlink() or not path.is_file() or rel == CLAIM:
                continue
            found.append((rel, path, path.stat().st_size))
    found.sort(key=lambda item: (item[0] == SUMMARY, item[0] != "index.html", item[0]))
    return found


def content_type(name: str) -> str:
    suffix = os.path.splitext(name)[1].lower()
    return _CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


class ByteCounter:
    """Adds up transferred bytes from s3transfer's threads for one ``Progress`` callback."""

    def __init__(self, progress: Optional[Progress], total: int):
        import threading

        self.progress, self.total, self.done, self.lock = progress, total, 0, threading.Lock()

    def __call__(self, nbytes: int) -> None:
        with self.lock:
            self.done += nbytes  # negative when s3transfer rewinds a retried part
            if self.progress:
                self.progress(self.done, self.total)


def _object_exists(client, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        # S3 answers 403 for a missing key when the caller may not s3:ListBucket; a role
        # allowed only s3:PutObject must still upload, so "cannot tell" counts as absent.
        if exc.response.get("Error", {}).get("Code") in ("403", "404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def upload_artifacts(directory, url: str, progress: Optional[Progress] = None, job: Optional[str] = None,
                     presign: Optional[int] = None, client=None, timeout: float = DEFAULT_TIMEOUT) -> List[str]:
    """Upload the artifact directory to ``url/<job>/``; return the HTTP(S) addresses of its
    index.html, each report.html and summary.json (what a person opens), presigned for
    ``presign`` seconds when given (a private bucket answers 403 to a plain address).

    ``job`` defaults to :func:`default_job_id`. A job id already claimed by another upload,
    finished or not, is refused, so two uploads never mix; a failed upload is repeated under
    a new id. Everything is sent within ``timeout`` seconds (when this makes the client).
    """
    directory = Path(directory)
    summary = read_summary(directory)
    job = job or default_job_id(summary)
    if "/" in job or job in (".", ".."):
        raise StorageError(f"invalid job id {job!r}: it must be one path component")
    target = parse_s3_url(url).join(job)
    files = iter_upload_files(directory)
    client = client or make_client(Deadline(timeout, f"upload to {target}"))
    with storage_errors(f"upload to {target} failed"):
        if _object_exists(client, target.bucket, target.key(SUMMARY)):
            raise StorageError(f"{target} already holds a job; choose another with --job")
        _claim(client, target)
        counter = ByteCounter(progress, sum(size for _, _, size in files))
        # summary.json goes up only after everything else has, as the job's commit mark.
        _upload_batch(client, target, [f for f in files if f[0] != SUMMARY], counter)
        _upload_batch(client, target, [f for f in files if f[0] == SUMMARY], counter)
    keys = [target.key(rel) for rel, _, _ in files
            if rel in ("index.html", SUMMARY) or rel.endswith("/report.html")]
    if presign:
        return [client.generate_presigned_url("get_object", Params={"Bucket": target.bucket, "Key": key},
                                              ExpiresIn=presign) for key in keys]
    return [http_url(client.meta.endpoint_url, target.bucket, key) for key in keys]


def _claim(client, target: S3Url) -> None:
    """Create ``<job>/.coredump-job.json`` only if absent (``If-None-Match: *``), then read it
    back: a store that ignores the condition lets the last writer win, and the loser sees
    another upload's token."""
    from botocore.exceptions import ClientError

    token = secrets.token_hex(16)
    body = json.dumps({"token": token, "host": socket.gethostname(), "pid": os.getpid(),
                       "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}).encode()
    taken = StorageError(f"{target} is claimed by another upload (finished or still running); "
                         "choose another with --job")
    try:
        client.put_object(Bucket=target.bucket, Key=target.key(CLAIM), Body=body, IfNoneMatch="*",
                          ContentType="application/json")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
            raise taken from None
        raise
    try:
        stored = client.get_object(Bucket=target.bucket, Key=target.key(CLAIM))["Body"].read(64 * 1024)
    except ClientError as exc:  # a role allowed s3:PutObject only cannot read it back
        if exc.response.get("Error", {}).get("Code") in ("403", "AccessDenied"):
            return
        raise
    if token.encode() not in stored:
        raise taken


def _upload_batch(client, target: S3Url, files, counter: ByteCounter) -> None:
    from boto3.s3.transfer import ProgressCallbackInvoker, create_transfer_manager

    with create_transfer_manager(client, transfer_config()) as manager:
        futures = [(path, manager.upload(str(path), target.bucket, target.key(rel),
                                         extra_args={"ContentType": content_type(rel)},
                                         subscribers=[ProgressCallbackInvoker(counter)]))
                   for rel, path, _ in files]
        for path, future in futures:
            # A StorageError leaving the block makes the manager cancel the files still queued.
            with storage_errors(f"upload of {path} to {target} failed"):
                future.result()


def get_json_document(client, bucket: str, key: str) -> Optional[Tuple[bytes, dict]]:
    """``(bytes, object)`` of a JSON object stored at ``key``, None if there is none; one
    larger than ``MAX_JSON`` is refused unread (a hostile summary.json costs no memory)."""
    from botocore.exceptions import ClientError

    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            return None
        raise
    body = response["Body"].read(MAX_JSON + 1)
    response["Body"].close()
    if len(body) > MAX_JSON:
        raise StorageError(f"s3://{bucket}/{key} is larger than {MAX_JSON // MiB} MiB; not read")
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise StorageError(f"s3://{bucket}/{key} is not JSON: {exc}") from exc
    return (body, value) if isinstance(value, dict) else None


def get_json(client, bucket: str, key: str) -> Optional[dict]:
    found = get_json_document(client, bucket, key)
    return found[1] if found else None


# At most this many jobs are read by one listing (each costs a GET of its summary.json).
MAX_LISTED_JOBS = 10_000


def list_jobs(url: str, client=None, warnings: Optional[List[str]] = None) -> List[dict]:
    """The jobs at any depth under ``url`` (or the job at ``url``), each its summary plus
    ``job`` (its path below ``url``) and ``url``: a job is a prefix holding summary.json, so
    ``s3://b/ci`` finds ``s3://b/ci/myproj/<job>``; prefixes without one are incomplete
    uploads, skipped. More than MAX_LISTED_JOBS jobs: the first ones, and a warning."""
    base = parse_s3_url(url)
    client = client or make_client()
    with storage_errors(f"cannot list {base}"):
        own = get_json(client, base.bucket, base.key(SUMMARY)) if base.prefix else None
        if own is not None:
            return [dict(own, job=base.name, url=str(base))]
        jobs = []
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=base.bucket, Prefix=base.key_prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if not key.endswith("/" + SUMMARY) or len(key) <= len(base.key_prefix) + len(SUMMARY):
                    continue
                if len(jobs) >= MAX_LISTED_JOBS:
                    if warnings is not None:
                        warnings.append(f"more than {MAX_LISTED_JOBS} jobs under {base}: listed the first ones")
                    break
                job = S3Url(base.bucket, key[:-len(SUMMARY) - 1])
                summary = get_json(client, job.bucket, job.key(SUMMARY))
                if isinstance(summary, dict):
                    jobs.append(dict(summary, job=key[len(base.key_prefix):-len(SUMMARY) - 1], url=str(job)))
            else:
                continue
            break
    jobs.sort(key=lambda s: (str(s.get("started", "")), s["job"]))
    return jobs
