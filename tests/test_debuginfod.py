"""debuginfod: debug files by build-id from a real HTTP server on 127.0.0.1, used only when
DEBUGINFOD_URLS is set, cached, and bounded by a timeout."""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from coredump.elf.image import ElfImage
from coredump.symbols import debuginfod
from tests.cores import SAMPLES, run_crash
from tests.httpserver import QuietHandler, start


def serve(files, hang=None):
    """A debuginfod-protocol server: GET /buildid/<id>/<kind> -> files[(id, kind)] bytes.
    `hang` is an Event the handler waits on before answering (a slow server)."""
    hits = []

    class Handler(QuietHandler):
        def do_GET(self):
            hits.append(self.path)
            if hang is not None:
                hang.wait(30)
            parts = self.path.strip("/").split("/")
            body = files.get((parts[1], parts[2])) if len(parts) == 3 and parts[0] == "buildid" else None
            if body is None:
                self.send_error(404)
                return
            self.send_body(200, body)

    return start(Handler), hits


@pytest.fixture
def stripped_crash(tmp_path, make_core):
    """A program built with -g, split into a stripped binary and its debug file, crashed."""
    if not shutil.which("objcopy"):
        pytest.skip("objcopy (binutils) is needed to split a debug file")
    exe = tmp_path / "segv"
    subprocess.run(["gcc", "-O0", "-g", "-o", str(exe), str(SAMPLES / "segv.c")], check=True)
    debug = tmp_path / "segv.debug"
    subprocess.run(["objcopy", "--only-keep-debug", str(exe), str(debug)], check=True)
    subprocess.run(["objcopy", "--strip-debug", str(exe)], check=True)
    work = tmp_path / "run"
    work.mkdir()
    _, core = run_crash([str(exe)], work)
    assert core is not None
    return exe, debug, core


def analyze(core, env, *args):
    out = subprocess.run([sys.executable, "-m", "coredump.cli.main", "analyze", "--format", "json", *args, str(core)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_debug_file_fetched_by_build_id(stripped_crash, tmp_path, monkeypatch):
    exe, debug, core = stripped_crash
    build_id = ElfImage(str(exe)).build_id
    server, hits = serve({(build_id, "debuginfo"): debug.read_bytes()})
    env = {"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    try:
        without = analyze(core, env)
        env["DEBUGINFOD_URLS"] = f"http://127.0.0.1:{server.server_address[1]}"
        first = analyze(core, env)
        second = analyze(core, env)
    finally:
        server.shutdown()
    frame0 = lambda crash: crash["threads"][0]["frames"][0]  # noqa: E731
    assert frame0(without)["file"] is None  # stripped: no lines without the debug file
    assert frame0(first)["file"].endswith("segv.c") and frame0(first)["line"] == 9
    assert frame0(second) == frame0(first)
    module = next(m for m in first["modules"] if m["path"] == str(exe))
    assert module["debug_file"].startswith(str(tmp_path / "cache"))
    asked = [h for h in hits if build_id in h and h.endswith("/debuginfo")]
    assert len(asked) == 1  # the second analysis used the cache


def test_no_urls_means_no_request(monkeypatch, tmp_path):
    monkeypatch.delenv("DEBUGINFOD_URLS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert debuginfod.fetch("ab" * 20, "debuginfo") is None


def test_slow_server_costs_one_budget_and_is_not_remembered(monkeypatch, tmp_path):
    release = threading.Event()
    server, hits = serve({}, hang=release)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("DEBUGINFOD_URLS", url)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    try:
        session = debuginfod.Session(timeout=0.5)
        start = time.monotonic()
        for build_id in ("cd" * 20, "ce" * 20, "cf" * 20):  # three libraries, one budget
            assert session.fetch(build_id, "debuginfo") is None
        assert time.monotonic() - start < 5
        assert len(hits) == 1  # the server that did not answer is not asked again
        assert any(url in w and "did not answer" in w for w in session.warnings), session.warnings
        # A later analysis asks again: an outage is not remembered as "no such file".
        assert debuginfod.Session(timeout=0.5).fetch("cd" * 20, "debuginfo") is None
        assert len(hits) == 2
    finally:
        release.set()
        server.shutdown()


def test_a_build_id_the_server_lacks_is_remembered(monkeypatch, tmp_path):
    server, hits = serve({})
    monkeypatch.setenv("DEBUGINFOD_URLS", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    try:
        assert debuginfod.fetch("cd" * 20, "debuginfo") is None
        assert debuginfod.fetch("cd" * 20, "debuginfo") is None
    finally:
        server.shutdown()
    assert len(hits) == 1  # HTTP 404: remembered for a day


def test_an_unreachable_server_is_a_warning_in_the_analysis(stripped_crash, tmp_path):
    _, _, core = stripped_crash
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "DEBUGINFOD_URLS": f"http://127.0.0.1:{port}"}
    crash = analyze(core, env)
    assert any("debuginfod" in w and str(port) in w for w in crash["warnings"]), crash["warnings"]


def test_non_elf_answer_is_not_cached(monkeypatch, tmp_path):
    server, _ = serve({("ef" * 20, "executable"): b"<html>not found</html>"})
    monkeypatch.setenv("DEBUGINFOD_URLS", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    try:
        assert debuginfod.fetch("ef" * 20, "executable") is None
    finally:
        server.shutdown()
    cached = tmp_path / "debuginfod_client" / ("ef" * 20) / "executable"
    assert not cached.exists() or cached.stat().st_size == 0  # at most elfutils' record of a miss


def test_the_cache_is_elfutils_and_eu_stack_reads_what_we_fetched(stripped_crash, tmp_path):
    """DEBUGINFOD_CACHE_PATH with elfutils' layout (<cache>/<build-id>/debuginfo): eu-stack,
    pointed at a server that is down, finds our download in its own cache and prints lines."""
    if not shutil.which("eu-stack"):
        pytest.skip("eu-stack (elfutils) is not installed: it is the oracle for the shared cache")
    exe, debug, core = stripped_crash
    build_id = ElfImage(str(exe)).build_id
    cache = tmp_path / "shared-cache"
    server, hits = serve({(build_id, "debuginfo"): debug.read_bytes()})
    env = {"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(tmp_path / "xdg"), "DEBUGINFOD_CACHE_PATH": str(cache),
           "DEBUGINFOD_URLS": f"http://127.0.0.1:{server.server_address[1]}"}
    try:
        crash = analyze(core, env)
    finally:
        server.shutdown()
    assert (cache / build_id / "debuginfo").read_bytes() == debug.read_bytes()
    assert not (tmp_path / "xdg" / "debuginfod_client").exists()
    assert crash["threads"][0]["frames"][0]["line"] == 9
    with socket.socket() as sock:  # a port nobody listens on: only the cache can answer
        sock.bind(("127.0.0.1", 0))
        env["DEBUGINFOD_URLS"] = f"http://127.0.0.1:{sock.getsockname()[1]}"
    # eu-stack looks up debug info by build-id through libdebuginfod (elfutils' -e takes the executable)
    out = subprocess.run(["eu-stack", "-s", "-e", str(exe), "--core", str(core)], capture_output=True, text=True,
                         env=env, timeout=60)
    assert "segv.c:9" in out.stdout, out.stdout + out.stderr


def test_an_elfutils_miss_record_is_honoured_until_cache_miss_s(monkeypatch, tmp_path):
    server, hits = serve({})
    monkeypatch.setenv("DEBUGINFOD_URLS", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("DEBUGINFOD_CACHE_PATH", str(tmp_path))
    record = tmp_path / ("cd" * 20) / "debuginfo"
    record.parent.mkdir()
    record.touch()  # elfutils' negative-cache entry: an empty file
    try:
        assert debuginfod.fetch("cd" * 20, "debuginfo") is None
        assert hits == []
        (tmp_path / "cache_miss_s").write_text("60\n")
        old = record.stat().st_mtime - 120
        os.utime(record, (old, old))  # older than cache_miss_s: ask again
        assert debuginfod.fetch("cd" * 20, "debuginfo") is None
        assert len(hits) == 1
    finally:
        server.shutdown()
    assert record.stat().st_size == 0  # the server's 404 is recorded as elfutils records it


def test_debuginfod_timeout_is_the_default_budget(monkeypatch):
    monkeypatch.setenv("DEBUGINFOD_TIMEOUT", "2.5")
    assert debuginfod.Session().timeout == 2.5
    assert debuginfod.Session(1.0).timeout == 1.0  # --debuginfod-timeout wins
    monkeypatch.setenv("DEBUGINFOD_TIMEOUT", "soon")
    assert debuginfod.Session().timeout == debuginfod.DEFAULT_TIMEOUT
