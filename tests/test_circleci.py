"""`coredump fetch circleci:SLUG/JOB DEST`: a real crash's artifact directory served by a local
HTTP server that answers as CircleCI's API v2 does (GET /api/v2/project/{slug}/{job}/artifacts,
items of {path, node_index, url}, next_page_token), with the Circle-Token header required; the
fetched directory analyzes as the original."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.cores import BUILD, build_samples, core_skip_reason
from tests.httpserver import QuietHandler, start

ENTRY = "from coredump.cli.entry import main; main()"
TOKEN = "secret-token-123"
SLUG = "gh/acme/app"
JOB = 77


def coredump(*args, cwd, env):
    return subprocess.run([sys.executable, "-c", ENTRY, *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env)


def serve(files, foreign_url=None, truncate=None, extra_items=()):
    """files: {artifact path: bytes}. Two pages of items; `truncate` names a path whose answer
    promises more bytes than it sends; `foreign_url` is one more item on another server."""
    seen = {"tokens": [], "paths": []}

    class Handler(QuietHandler):
        def do_GET(self):
            parts = urlsplit(self.path)
            seen["paths"].append(parts.path)
            seen["tokens"].append(self.headers.get("Circle-Token"))
            if self.headers.get("Circle-Token") != TOKEN:
                return self.send_body(401, b'{"message": "Invalid token provided."}')
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            if parts.path == f"/api/v2/project/{SLUG}/{JOB}/artifacts":
                items = [{"path": p, "node_index": 0, "url": f"{base}/output/job/{JOB}/artifacts/0/{p}"}
                         for p in sorted(files)] + list(extra_items)
                if foreign_url:
                    items.append({"path": "coredump-artifacts/extra.txt", "node_index": 0, "url": foreign_url})
                half = len(items) // 2
                token = parse_qs(parts.query).get("page-token", [None])[0]
                page = {"items": items[half:], "next_page_token": None} if token == "page-2" else \
                       {"items": items[:half], "next_page_token": "page-2"}
                return self.send_body(200, json.dumps(page).encode())
            prefix = f"/output/job/{JOB}/artifacts/0/"
            path = parts.path[len(prefix):] if parts.path.startswith(prefix) else None
            if path not in files:
                return self.send_body(404, b"not found")
            body = files[path]
            if path == truncate:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.connection.shutdown(2)
                return None
            return self.send_body(200, body)

    return start(Handler), seen


@pytest.fixture(scope="module")
def job_artifacts(tmp_path_factory):
    """A real crash's artifact directory, as `coredump run` leaves it for store_artifacts."""
    reason = core_skip_reason()
    if reason:
        pytest.skip(reason)
    build_samples()
    work = tmp_path_factory.mktemp("job")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = coredump("run", "--", BUILD / "O0" / "segv", cwd=work, env=env)
    assert r.returncode == 139, r.stderr
    root = work / "coredump-artifacts"
    return {f"coredump-artifacts/{p.relative_to(root).as_posix()}": p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _env(server, token=TOKEN):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "CIRCLECI_HOST": f"http://127.0.0.1:{server.server_address[1]}"}
    env.pop("CIRCLE_TOKEN", None)
    if token is not None:
        env["CIRCLE_TOKEN"] = token
    return env


def test_fetch_downloads_both_pages_and_analyzes_as_the_original(job_artifacts, tmp_path):
    server, seen = serve(job_artifacts)
    try:
        r = coredump("fetch", f"circleci:{SLUG}/{JOB}", tmp_path / "dest", cwd=tmp_path, env=_env(server))
    finally:
        server.shutdown()
    assert r.returncode == 0, r.stderr
    got = {p.relative_to(tmp_path / "dest").as_posix(): p.read_bytes()
           for p in (tmp_path / "dest").rglob("*") if p.is_file()}
    assert got == {k[len("coredump-artifacts/"):]: v for k, v in job_artifacts.items()}
    assert sum("/artifacts" == p[-10:] for p in seen["paths"]) == 2  # the second page was asked for
    assert set(seen["tokens"]) == {TOKEN}
    crash_id = json.loads(got["summary.json"])["crashes"][0]["id"]
    analysis = coredump("analyze", "--format", "json", tmp_path / "dest" / crash_id, cwd=tmp_path, env=_env(server))
    assert analysis.returncode == 0, analysis.stderr
    original = json.loads(job_artifacts[f"coredump-artifacts/{crash_id}/crash.json"])
    assert json.loads(analysis.stdout)["signature"] == original["signature"]


@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_missing_or_bad_token_is_one_error_line_naming_the_variable(job_artifacts, tmp_path, token):
    server, _ = serve(job_artifacts)
    try:
        r = coredump("fetch", f"circleci:{SLUG}/{JOB}", tmp_path / "dest", cwd=tmp_path, env=_env(server, token))
    finally:
        server.shutdown()
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "CIRCLE_TOKEN" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "dest").exists() or not any((tmp_path / "dest").iterdir())


def test_a_truncated_file_fails_the_fetch_and_keeps_nothing(job_artifacts, tmp_path):
    core = next(p for p in job_artifacts if p.endswith("/core.zst"))
    server, _ = serve(job_artifacts, truncate=core)
    try:
        r = coredump("fetch", f"circleci:{SLUG}/{JOB}", tmp_path / "dest", cwd=tmp_path, env=_env(server))
    finally:
        server.shutdown()
    assert r.returncode == 1 and r.stderr.startswith("Error: "), r.stderr
    assert not [p for p in (tmp_path / "dest").rglob("*") if p.is_file()]


def test_a_changed_file_fails_the_fetch(job_artifacts, tmp_path):
    files = dict(job_artifacts)
    core = next(p for p in files if p.endswith("/core.zst"))
    files[core] = bytes(b ^ 0xFF for b in files[core])  # same size, other bytes
    server, _ = serve(files)
    try:
        r = coredump("fetch", f"circleci:{SLUG}/{JOB}", tmp_path / "dest", cwd=tmp_path, env=_env(server))
    finally:
        server.shutdown()
    assert r.returncode == 1 and "sha256" in r.stderr, r.stderr
    assert not [p for p in (tmp_path / "dest").rglob("*") if p.is_file()]


def test_hostile_paths_are_refused_and_the_token_stays_home(job_artifacts, tmp_path):
    other, other_seen = serve({"coredump-artifacts/extra.txt": b"x"})
    foreign = f"http://127.0.0.1:{other.server_address[1]}/output/job/{JOB}/artifacts/0/coredump-artifacts/extra.txt"
    server, _ = serve(job_artifacts, foreign_url=foreign)
    try:
        r = coredump("fetch", f"circleci:{SLUG}/{JOB}", tmp_path / "dest", cwd=tmp_path, env=_env(server))
        # extra.txt is not recorded in summary.json: named, never downloaded, so the foreign
        # host is never asked (and never sees the token)
        assert r.returncode == 0, r.stderr
        assert "'extra.txt' is not recorded" in r.stderr and not (tmp_path / "dest" / "extra.txt").exists()
        assert other_seen["tokens"] == []
        evil = [{"path": "coredump-artifacts/../../evil", "node_index": 0, "url": "http://127.0.0.1:1/x"}]
        server2, _ = serve(job_artifacts, extra_items=evil)
        try:
            r = coredump("fetch", f"circleci:{SLUG}/{JOB}", tmp_path / "dest2", cwd=tmp_path, env=_env(server2))
        finally:
            server2.shutdown()
    finally:
        server.shutdown()
        other.shutdown()
    assert r.returncode == 1 and "outside the destination" in r.stderr, r.stderr
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()


def test_a_malformed_url_is_a_usage_error(tmp_path):
    r = coredump("fetch", "circleci:acme/12x", tmp_path / "d", cwd=tmp_path, env={**os.environ, "CIRCLE_TOKEN": "t"})
    assert r.returncode == 1 and r.stderr.startswith("Error: ") and "PROJECT-SLUG/JOB-NUMBER" in r.stderr
