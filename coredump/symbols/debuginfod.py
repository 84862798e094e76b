"""
debuginfod
==========

Executables and debug files fetched by build-id from the servers named in
``DEBUGINFOD_URLS`` (the debuginfod protocol: ``GET <server>/buildid/<BUILD-ID>/debuginfo``
or ``/executable``), only when that variable is set, with a short timeout and a cache, so a
CI job never hangs on a slow server.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import List, Optional, Set, Tuple

from coredump.symbols.cache import cache_dir

__all__ = ("DEFAULT_TIMEOUT", "server_urls", "fetch", "Session")

DEFAULT_TIMEOUT = 5.0
# A build-id every server said it lacks (HTTP 404) is remembered this long (seconds), so an
# absent one costs one request a day. A server that did not answer is never remembered: an
# outage must not hide debug info once it is over.
NEGATIVE_TTL = 24 * 3600
KINDS = ("debuginfo", "executable")
_CHUNK = 1 << 20
# What one download came to.
_OK, _ABSENT, _UNREACHABLE = "ok", "absent", "unreachable"


def server_urls() -> List[str]:
    """The servers of ``DEBUGINFOD_URLS`` (space-separated, as elfutils reads it)."""
    return [u.rstrip("/") for u in os.environ.get("DEBUGINFOD_URLS", "").split() if u.startswith(("http://", "https://"))]


def _paths(build_id: str, kind: str):
    base = os.path.join(cache_dir(), "debuginfod", build_id)
    return base, os.path.join(base, kind), os.path.join(base, kind + ".missing")


def fetch(build_id: Optional[str], kind: str, timeout: float = DEFAULT_TIMEOUT) -> Optional[str]:
    """``Session(timeout).fetch(build_id, kind)``: one lookup with its own time budget."""
    return Session(timeout).fetch(build_id, kind)


class Session:
    """The servers as one analysis uses them: `timeout` seconds in all, counted from the
    first request (a core with forty libraries must not wait forty timeouts), with a warning
    for each server that did not answer or the budget running out."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT):
        self.timeout = timeout
        self.warnings: List[str] = []
        self._deadline: Optional[float] = None
        self._down: Set[str] = set()

    def fetch(self, build_id: Optional[str], kind: str) -> Optional[str]:
        """The path of the cached file for (build_id, kind), fetched first when needed; None
        when no server is configured, none has it, or the time is up."""
        urls = [u for u in server_urls() if u not in self._down]
        if not urls or not build_id or kind not in KINDS or not all(c in "0123456789abcdef" for c in build_id):
            return None
        base, path, missing = _paths(build_id, kind)
        if os.path.isfile(path):
            return path
        try:
            if time.time() - os.path.getmtime(missing) < NEGATIVE_TTL:
                return None
        except OSError:
            pass
        if self._deadline is None:
            self._deadline = time.monotonic() + self.timeout
        outcomes = []
        for url in urls:
            if self._deadline - time.monotonic() <= 0:
                self._warn(f"debuginfod: the {self.timeout:g} s budget is spent; no more files fetched "
                           "(--debuginfod-timeout)")
                return None
            outcome, why = _download(f"{url}/buildid/{build_id}/{kind}", base, path, self._deadline)
            if outcome == _OK:
                return path
            if outcome == _UNREACHABLE:
                self._down.add(url)
                self._warn(f"debuginfod: {url} did not answer ({why}); not asked again in this analysis")
            outcomes.append(outcome)
        if outcomes and all(o == _ABSENT for o in outcomes):
            _remember_missing(base, missing)
        return None

    def _warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)


def _remember_missing(base: str, missing: str) -> None:
    try:
        os.makedirs(base, exist_ok=True)
        open(missing, "w").close()
    except OSError:
        pass


def _download(url: str, base: str, path: str, deadline: float) -> Tuple[str, str]:
    """(outcome, why): the file at `url` saved to `path` (an ELF file only) before `deadline`."""
    import socket
    import urllib.error
    import urllib.request

    tmp = None
    try:
        os.makedirs(base, exist_ok=True)
        with urllib.request.urlopen(url, timeout=max(0.05, deadline - time.monotonic())) as response:
            if response.status != 200:
                return _ABSENT, f"HTTP {response.status}"
            fd, tmp = tempfile.mkstemp(dir=base, prefix=".part-")
            with os.fdopen(fd, "wb") as out:
                # The socket timeout bounds each read; the deadline bounds a server that trickles.
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    if time.monotonic() > deadline:
                        return _UNREACHABLE, "too slow"
        with open(tmp, "rb") as f:
            if f.read(4) != b"\x7fELF":
                return _ABSENT, "not an ELF file"
        os.replace(tmp, path)  # atomic: concurrent analyses never see half a file
        tmp = None
        return _OK, ""
    except urllib.error.HTTPError as exc:
        return (_ABSENT if exc.code in (404, 410) else _UNREACHABLE), f"HTTP {exc.code}"
    except (socket.timeout, TimeoutError):
        return _UNREACHABLE, "timed out"
    except urllib.error.URLError as exc:
        reason = exc.reason
        return _UNREACHABLE, "timed out" if isinstance(reason, (socket.timeout, TimeoutError)) else str(reason)
    except (OSError, ValueError) as exc:
        return _UNREACHABLE, str(exc)
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
