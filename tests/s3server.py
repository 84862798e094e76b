"""
S3 test server
==============

A real ``moto.server`` subprocess on 127.0.0.1 for the S3 tests, and a fault-injecting
HTTP proxy in front of it that fails the first N requests (503 SlowDown, a connection
reset, a dropped connection, or a connection accepted and never answered) and then passes
requests through; it can also hold requests at a gate, to line two clients up in a race.
"""

from __future__ import annotations

import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import pytest

__all__ = ("moto_server", "s3env", "fault_proxy", "FaultProxy", "S3Env", "make_artifact_dir", "record_digests",
           "tree")

START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_serving(proc: subprocess.Popen, endpoint: str) -> None:
    """Poll the endpoint until it answers HTTP; each wait is on the process itself, so a
    server that dies is reported at once."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(endpoint + "/moto-api/", timeout=1):
                return
        except OSError:
            pass
        try:
            proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
        raise RuntimeError(f"moto.server exited with status {proc.returncode}")
    raise RuntimeError(f"moto.server did not answer on {endpoint} within {START_TIMEOUT}s")


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """The endpoint (``http://127.0.0.1:PORT``) of a moto S3 server run for this session."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[test]')")
    pytest.importorskip("boto3")
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(proc, endpoint)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class S3Env:
    """What a test needs: a fresh bucket, the environment boto3 reads, a direct client."""

    def __init__(self, endpoint: str, bucket: str, env: dict):
        self.endpoint, self.bucket, self.env = endpoint, bucket, env

    def client(self):
        """A client straight to moto (never through a fault proxy), for checking results."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def url(self, *parts: str) -> str:
        return "/".join([f"s3://{self.bucket}", *parts])


@pytest.fixture
def s3env(moto_server, monkeypatch, tmp_path):
    """Dummy credentials and ``AWS_ENDPOINT_URL`` in the environment, and a new bucket."""
    env = {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        # Keep the developer's own AWS configuration out of the tests.
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"):
        monkeypatch.delenv(name, raising=False)
    s3 = S3Env(moto_server, f"coredump-{uuid.uuid4().hex[:12]}", env)
    s3.client().create_bucket(Bucket=s3.bucket)
    return s3


class FaultProxy(socketserver.ThreadingTCPServer):
    """Forwards one HTTP request per connection to ``upstream``; the first ``faults``
    requests that ``match`` get ``mode`` instead: ``503`` (S3's SlowDown throttle),
    ``reset`` (TCP RST), ``drop`` (closed without a response) or ``hang`` (the request is
    read and never answered, until the client gives up). Requests that :meth:`hold`
    matches wait for :meth:`release` before they are forwarded."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream: str):
        host, port = upstream.rsplit("/", 1)[-1].split(":")
        self.upstream = (host, int(port))
        self.mode, self.faults, self.match = "503", 0, lambda method, target: True
        self.log = []  # (time, method, target, "fault:<mode>" or "pass")
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.held, self.gate = (lambda method, target: False), threading.Event()
        # Held requests go upstream one at a time once released: S3 decides conditional
        # writes (If-None-Match: *) atomically, moto's server does not, and two PUTs let
        # through at once could both succeed there.
        self.one_at_a_time = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def inject(self, mode: str, faults: float, match=None) -> None:
        self.mode, self.faults = mode, faults
        if match is not None:
            self.match = match

    def decide(self, method: str, target: str) -> str:
        with self.lock:
            outcome = "pass"
            if self.faults > 0 and self.match(method, target):
                self.faults -= 1
                outcome = f"fault:{self.mode}"
            self.log.append((time.monotonic(), method, target, outcome))
            self.changed.notify_all()
            return outcome

    def count(self, outcome: str) -> int:
        return sum(1 for entry in self.log if entry[3] == outcome)

    def hold(self, match) -> None:
        self.held = match
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def wait_for(self, predicate, timeout: float = 120.0) -> None:
        """Block until ``predicate(log)`` holds; AssertionError after ``timeout`` seconds."""
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self.log), timeout), self.log


class _ProxyHandler(socketserver.BaseRequestHandler):
    def handle(self):
        client = self.request
        head = _read_head(client)
        if head is None:
            return
        request_line, headers, rest = head
        method, target = request_line.split(" ")[:2]
        outcome = self.server.decide(method, target)
        if outcome == "pass":
            if self.server.held(method, target):
                self.server.gate.wait(START_TIMEOUT)
                with self.server.one_at_a_time:
                    _forward(client, self.server.upstream, request_line, headers, rest)
            else:
                _forward(client, self.server.upstream, request_line, headers, rest)
        elif outcome == "fault:hang":
            _swallow(client)
        elif outcome == "fault:503":
            _reply_503(client, headers, rest)
        elif outcome == "fault:reset":
            # SO_LINGER with a zero timeout makes close() send RST (socket(7)).
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        client.close()


def _read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:]]
    return lines[0], headers, rest


def _swallow(client):
    """Read and discard until the client closes: an endpoint that accepted the connection
    and never answers (a stuck load balancer, a full server)."""
    try:
        while client.recv(65536):
            pass
    except OSError:
        pass


def _header(headers, name):
    return next((value for key, value in headers if key.lower() == name), None)


def _reply_503(client, headers, rest):
    length = int(_header(headers, "content-length") or 0)
    if (_header(headers, "expect") or "").lower() != "100-continue":
        while len(rest) < length:  # drain the body so the client reads our answer
            chunk = client.recv(min(65536, length - len(rest)))
            if not chunk:
                return
            rest += chunk
    body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message></Error>")
    client.sendall(b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nConnection: close\r\n"
                   + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


def _forward(client, upstream, request_line, headers, rest):
    """Send the request upstream with ``Connection: close`` and relay bytes both ways until
    the upstream closes: one request per connection needs no HTTP body framing."""
    kept = [f"{k}: {v}" for k, v in headers if k.lower() not in ("connection", "keep-alive")]
    head = "\r\n".join([request_line, *kept, "Connection: close", "", ""]).encode("latin-1")
    with socket.create_connection(upstream) as up:
        up.sendall(head + rest)
        pump = threading.Thread(target=_pump, args=(client, up), daemon=True)
        pump.start()
        _pump(up, client)
        try:
            client.shutdown(socket.SHUT_RDWR)  # wakes the other pump's recv()
        except OSError:
            pass
        pump.join()


def _pump(src, dst):
    try:
        while True:
            chunk = src.recv(65536)
            if not chunk:
                break
            dst.sendall(chunk)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


@pytest.fixture
def fault_proxy(s3env, monkeypatch):
    """A ``FaultProxy`` in front of moto; ``AWS_ENDPOINT_URL`` points at it."""
    proxy = FaultProxy(s3env.endpoint)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    s3env.env["AWS_ENDPOINT_URL"] = proxy.endpoint
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join()


def make_artifact_dir(root, crashes=(("c1", "aa11"), ("c2", "bb22")), core_bytes=None, started=None):
    """An artifact directory laid out as DESIGN.md says, one crash per ``(id, build-id)``;
    each crash's core is ``core_bytes`` (default: random bytes of a few KiB)."""
    import json
    from pathlib import Path

    root = Path(root)
    root.mkdir(parents=True)
    entries = []
    for index, (crash_id, build_id) in enumerate(crashes):
        (root / crash_id).mkdir()
        crash = {"schema": "coredump.crash/1", "signal": {"number": 11, "name": "SIGSEGV"},
                 "signature": f"SIGSEGV in store_value_{index}",
                 "modules": [{"path": f"/opt/prog{index}", "build_id": build_id}, {"path": "[vdso]"}]}
        (root / crash_id / "crash.json").write_text(json.dumps(crash))
        (root / crash_id / "report.html").write_text(f"<html><body>{crash_id}</body></html>")
        core = core_bytes if core_bytes is not None else os.urandom(4096 + index)
        (root / crash_id / "core.zst").write_bytes(core)
        (root / "files" / build_id).mkdir(parents=True)
        (root / "files" / build_id / f"prog{index}").write_bytes(os.urandom(2048))
        entries.append({"id": crash_id, "signature": crash["signature"], "signal": "SIGSEGV",
                        "executable": f"/opt/prog{index}", "crash_json": f"{crash_id}/crash.json",
                        "report_html": f"{crash_id}/report.html", "core": f"{crash_id}/core.zst",
                        "stored": True, "note": None, "files": [f"files/{build_id}/prog{index}"]})
    summary = {"schema": "coredump.summary/1", "command": ["make", "test"], "exit_status": 2,
               "host": "ci-runner-7", "started": started or "2024-05-01T12:34:56+00:00",
               "finished": "2024-05-01T12:35:10+00:00", "crashes": entries}
    (root / "index.html").write_text("<html><body>index</body></html>")
    (root / "junit.xml").write_text("<testsuite/>")
    record_digests(root, summary)
    return root


def record_digests(root, summary=None):
    """Write summary.json with the sizes and sha256s harvest and render record: each crash's
    core and ``files``, and every other file under ``digests``."""
    import hashlib
    import json
    from pathlib import Path

    root = Path(root)
    summary = summary or json.loads((root / "summary.json").read_text())
    digest = lambda rel: {"size": (root / rel).stat().st_size,  # noqa: E731
                          "sha256": hashlib.sha256((root / rel).read_bytes()).hexdigest()}
    for crash in summary["crashes"]:
        crash.update(digest(crash["core"]))
        crash["file_digests"] = {rel: digest(rel) for rel in crash.get("files", [])}
    recorded = {c["core"] for c in summary["crashes"]} | {r for c in summary["crashes"] for r in c["files"]}
    summary["digests"] = {rel: digest(rel) for rel in tree(root) if rel not in recorded | {"summary.json"}}
    (root / "summary.json").write_text(json.dumps(summary, indent=2))


def tree(root):
    """``{relative path: bytes}`` of every file under root (symlinks not followed)."""
    from pathlib import Path

    root = Path(root)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}
