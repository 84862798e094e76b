"""
CircleCI artifacts
==================

``coredump fetch circleci:PROJECT-SLUG/JOB-NUMBER DEST``: a job's crash artifacts (the
directory its ``store_artifacts`` step uploaded) downloaded through CircleCI's API v2
(``GET /api/v2/project/{project-slug}/{job-number}/artifacts``, paged by ``next_page_token``,
authenticated by the ``Circle-Token`` header), checked as an S3 fetch is: every name a
relative path inside DEST, every file's size and sha256 against the job's summary.json, and
nothing kept unless everything arrived whole.

The API's answer is untrusted: an artifact URL that is not http(s) is refused, and the token
goes only to the API host and CircleCI's artifact hosts (``*.circle-artifacts.com``), never to
a host an answer names. The host is ``--host`` or ``$CIRCLECI_HOST`` (CircleCI server), else
``https://circleci.com``.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import time
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from coredump.errors import MissingFileError, StorageError
from coredump.store.hashing import hash_file
from coredump.store.safe_extract import check_relative_key, commit_tempfile, open_safe_tempfile, safe_target

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable, Dict, List, Optional, Tuple

__all__ = ("CircleJob", "parse_circleci_url", "list_artifacts", "fetch_circleci", "DEFAULT_HOST", "TOKEN_VARIABLE")

DEFAULT_HOST = "https://circleci.com"
TOKEN_VARIABLE = "CIRCLE_TOKEN"
SUMMARY = "summary.json"
TIMEOUT = 30.0  # seconds per request (connect and each read)
MAX_PAGES = 1000
MAX_UNLISTED_BYTES = 256 << 20  # a file summary.json gives no size for (pages, crash.json)
_CHUNK = 1 << 20
# vcs-type/org/repo (gh/…, bb/…) or circleci/<org-id>/<project-id>: CircleCI's project slug.
_SLUG = re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+){2}")
_ARTIFACT_HOSTS = (".circle-artifacts.com",)


class CircleJob:
    """A CircleCI job: project slug and job number."""

    def __init__(self, slug: str, number: int):
        self.slug, self.number = slug, number

    def __str__(self) -> str:
        return f"circleci:{self.slug}/{self.number}"


def parse_circleci_url(url: str) -> CircleJob:
    """``circleci:gh/ORG/REPO/123`` -> CircleJob("gh/ORG/REPO", 123)."""
    rest = url[len("circleci:"):] if url.startswith("circleci:") else None
    slug, _, number = (rest or "").rpartition("/")
    if rest is None or not _SLUG.fullmatch(slug) or not number.isdigit():
        raise MissingFileError(f"{url!r}: expected circleci:PROJECT-SLUG/JOB-NUMBER, e.g. circleci:gh/acme/app/1234")
    return CircleJob(slug, int(number))


def _token(environ) -> str:
    token = (environ.get(TOKEN_VARIABLE) or "").strip()
    if not token:
        raise StorageError(f"${TOKEN_VARIABLE} is not set: create a personal API token in CircleCI "
                           "(User Settings > Personal API Tokens) and export it")
    return token


class _Client:
    """GET with the token where it belongs, a timeout, and one error line per failure."""

    def __init__(self, host: str, token: str):
        parts = urlsplit(host)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise MissingFileError(f"--host {host!r}: expected https://HOST (CircleCI server) or http://HOST:PORT")
        self.host = f"{parts.scheme}://{parts.netloc}"
        self.netloc = parts.netloc
        self.token = token

    def _headers(self, url: str) -> Dict[str, str]:
        netloc = urlsplit(url).netloc
        trusted = netloc == self.netloc or netloc.split(":")[0].endswith(_ARTIFACT_HOSTS)
        return {"Circle-Token": self.token, "Accept": "application/json"} if trusted else {}

    def open(self, url: str):
        import urllib.error

        if urlsplit(url).scheme not in ("http", "https"):
            raise StorageError(f"refused artifact URL {url!r}: not http(s)")
        try:
            return _urlopen(url, self._headers(url))
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise StorageError(f"CircleCI refused ${TOKEN_VARIABLE} (HTTP {exc.code}) for {_redact(url)}: "
                                   "check the token and that it can read this project") from None
            if exc.code == 404:
                raise StorageError(f"{_redact(url)}: not found (HTTP 404): check the project slug and "
                                   "job number") from None
            raise StorageError(f"{_redact(url)}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StorageError(f"{_redact(url)}: {reason}") from None

    def get_json(self, url: str):
        with self.open(url) as response:
            body = response.read(16 << 20)
        try:
            return json.loads(body)
        except ValueError:
            raise StorageError(f"{_redact(url)}: the answer is not JSON") from None


def _urlopen(url: str, headers: Dict[str, str]):
    import urllib.request

    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT)


def _redact(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def list_artifacts(job: CircleJob, client: _Client) -> List[Tuple[str, str]]:
    """(path, url) of every artifact of the job, over all pages."""
    base = f"{client.host}/api/v2/project/{quote(job.slug, safe='/')}/{job.number}/artifacts"
    out, token, seen = [], None, set()
    for _ in range(MAX_PAGES):
        page = client.get_json(base + (f"?{urlencode({'page-token': token})}" if token else ""))
        items = page.get("items") if isinstance(page, dict) else None
        if not isinstance(items, list):
            raise StorageError(f"{base}: unexpected answer (no 'items' list)")
        out += [(i["path"], i["url"]) for i in items
                if isinstance(i, dict) and isinstance(i.get("path"), str) and isinstance(i.get("url"), str)]
        token = page.get("next_page_token")
        if not token or not isinstance(token, str) or token in seen:
            return out
        seen.add(token)
    raise StorageError(f"{base}: more than {MAX_PAGES} pages of artifacts")


def _job_root(paths: List[str], job: CircleJob) -> str:
    """The artifact directory inside the job's artifacts: where its summary.json is."""
    roots = sorted({posixpath.dirname(p) for p in paths if posixpath.basename(p) == SUMMARY},
                   key=lambda r: (r.count("/"), r))
    if not roots:
        raise StorageError(f"{job}: no {SUMMARY} among the job's {len(paths)} artifacts: did the job store "
                           "its coredump-artifacts directory (store_artifacts)?")
    return roots[0]


def _expected(summary: dict) -> Dict[str, Dict]:
    from coredump.store.s3fetch import expected_digests

    return expected_digests(summary)


def _plan(items: List[Tuple[str, str]], root: str, dest: Path) -> List[Tuple[str, str]]:
    """(relative name, url) of the files under `root`; the whole fetch is refused, before
    anything is written, when one name would land outside DEST."""
    plan, refused = [], []
    prefix = root + "/" if root else ""
    for path, url in items:
        if not path.startswith(prefix):
            continue
        relative = path[len(prefix):]
        reason = check_relative_key(relative)
        if reason is None:
            try:
                safe_target(dest, relative)
            except StorageError as exc:
                reason = str(exc).rpartition(": ")[2]
        if reason:
            refused.append(f"{path!r} ({reason})")
        else:
            plan.append((relative, url))
    if refused:
        raise StorageError(f"refused {len(refused)} artifact path(s) that would write outside the destination; "
                           f"nothing was downloaded: {'; '.join(refused)}")
    return plan


def _download(client: _Client, url: str, out, limit: int, deadline: float) -> int:
    import http.client

    received = 0
    try:
        with client.open(url) as response:
            while chunk := response.read(_CHUNK):
                received += len(chunk)
                if received > limit:
                    raise StorageError(f"{_redact(url)}: more than the {limit} bytes expected")
                if time.monotonic() > deadline:
                    raise StorageError(f"{_redact(url)}: the download took too long")
                out.write(chunk)
    except http.client.IncompleteRead as exc:
        raise StorageError(f"{_redact(url)}: the transfer was cut after {received + len(exc.partial)} bytes") from None
    return received


def fetch_circleci(url: str, dest, host: Optional[str] = None, environ=None, timeout: float = 600.0,
                   progress: Optional[Callable[[int], None]] = None,
                   warn: Optional[Callable[[str], None]] = None) -> List[Path]:
    """Download the crash artifacts of the CircleCI job `url` into `dest`; return the paths
    written. As an S3 fetch: only the files summary.json records (with size and sha256) are
    brought, each to a temporary name first and checked; one wrong or missing file and
    nothing is kept. An artifact the summary does not record stays where it is, named to
    `warn`."""
    env = os.environ if environ is None else environ
    job = parse_circleci_url(url)
    client = _Client(host or env.get("CIRCLECI_HOST") or DEFAULT_HOST, _token(env))
    deadline = time.monotonic() + timeout
    items = list_artifacts(job, client)
    root = _job_root([p for p, _ in items], job)
    dest = Path(dest)
    urls = dict(_plan(items, root, dest))
    raw = _fetch_bytes(client, urls[SUMMARY], MAX_UNLISTED_BYTES, deadline)
    try:
        summary = json.loads(raw)
    except ValueError:
        summary = None
    if not isinstance(summary, dict) or not isinstance(summary.get("crashes"), list):
        raise StorageError(f"{job}: {root or '.'}/{SUMMARY} is no coredump summary")
    expected = _expected(summary)
    missing = sorted(rel for rel in expected if rel not in urls)
    if missing:
        raise StorageError(f"{job}: {len(missing)} file(s) {SUMMARY} records are not among the artifacts "
                           f"(first: {missing[0]}); nothing was downloaded")
    for rel in sorted(set(urls) - set(expected) - {SUMMARY}):
        if warn is not None:
            warn(f"{job}: {rel!r} is not recorded in {SUMMARY}; not downloaded")
    dest.mkdir(parents=True, exist_ok=True)
    pending: List[Tuple[str, Path]] = []
    try:
        for relative, want in sorted(expected.items()):
            out, tmp, _ = open_safe_tempfile(dest, relative)
            pending.append((relative, tmp))
            with out:
                got = _download(client, urls[relative], out, want.get("size", MAX_UNLISTED_BYTES), deadline)
            _verify(job, relative, tmp, got, want)
            if progress is not None:
                progress(got)
        out, tmp, _ = open_safe_tempfile(dest, SUMMARY)  # the bytes read above, not a second download
        pending.append((SUMMARY, tmp))
        with out:
            out.write(raw)
        return [commit_tempfile(tmp, dest, relative) for relative, tmp in pending]
    finally:
        for _, tmp in pending:  # what a failure left behind
            if tmp.exists():
                tmp.unlink()


def _fetch_bytes(client: _Client, url: str, limit: int, deadline: float) -> bytes:
    import io

    buf = io.BytesIO()
    _download(client, url, buf, limit, deadline)
    return buf.getvalue()


def _verify(job: CircleJob, relative: str, tmp: Path, received: int, want: Dict) -> None:
    if "size" in want and received != want["size"]:
        raise StorageError(f"{job}: {relative}: received {received} bytes, {SUMMARY} records {want['size']}; "
                           "nothing was kept")
    if "sha256" in want and hash_file(tmp) != want["sha256"]:
        raise StorageError(f"{job}: {relative}: sha256 differs from the one {SUMMARY} records; nothing was kept")
