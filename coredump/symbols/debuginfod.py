"""
debuginfod
==========

Executables and debug files fetched by build-id from the servers named in
``DEBUGINFOD_URLS`` (the debuginfod protocol: ``GET <server>/buildid/<BUILD-ID>/debuginfo``
or ``/executable``), only when that variable is set, with a short timeout and a cache, so a
CI job never hangs on a slow server.

The cache is elfutils' own (``debuginfod-client.c``), so gdb, eu-stack and we share what any of
us downloaded: ``$DEBUGINFOD_CACHE_PATH``, else ``~/.debuginfod_client_cache`` when it exists,
else ``$XDG_CACHE_HOME/debuginfod_client`` (``~/.cache/debuginfod_client``), holding
``<build-id>/debuginfo`` and ``<build-id>/executable``. An empty file there is elfutils' record
of a miss, trusted for ``cache_miss_s`` seconds (the file of that name in the cache, default 600).
``$DEBUGINFOD_TIMEOUT`` is the default of the per-analysis time budget.
"""

from __future__ import annotations

import os
import tempfile
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Optional, Set, Tuple

__all__ = ("DEFAULT_TIMEOUT", "server_urls", "client_cache_dir", "default_timeout", "fetch", "Session")

DEFAULT_TIMEOUT = 5.0
# A build-id every server said it lacks (HTTP 404) is remembered this long (seconds) unless the
# cache's cache_miss_s says otherwise (elfutils' cache_miss_default_s). A server that did not
# answer is never remembered: an outage must not hide debug info once it is over.
CACHE_MISS_S = 600
KINDS = ("debuginfo", "executable")
_CHUNK = 1 << 20
# What one download came to.
_OK, _ABSENT, _UNREACHABLE = "ok", "absent", "unreachable"


def server_urls() -> List[str]:
    """The servers of ``DEBUGINFOD_URLS`` (space-separated, as elfutils reads it)."""
    return [u.rstrip("/") for u in os.environ.get("DEBUGINFOD_URLS", "").split() if u.startswith(("http://", "https://"))]


def client_cache_dir() -> str:
    """elfutils' client cache: $DEBUGINFOD_CACHE_PATH, else the legacy ~/.debuginfod_client_cache
    when it exists, else $XDG_CACHE_HOME/debuginfod_client (debuginfod-client.c, debuginfod_init_cache)."""
    explicit = os.environ.get("DEBUGINFOD_CACHE_PATH")
    if explicit:
        return explicit
    legacy = os.path.join(os.path.expanduser("~"), ".debuginfod_client_cache")
    if os.path.isdir(legacy):
        return legacy
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "debuginfod_client")


def default_timeout() -> float:
    """$DEBUGINFOD_TIMEOUT (seconds, as elfutils reads it) when it is a number, else 5 s."""
    try:
        value = float(os.environ.get("DEBUGINFOD_TIMEOUT", ""))
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


def _cache_miss_s(cache: str) -> float:
    try:
        with open(os.path.join(cache, "cache_miss_s")) as f:
            return float(f.read(32).strip())
    except (OSError, ValueError):
        return CACHE_MISS_S


def _cached(path: str, cache: str) -> Tuple[bool, bool]:
    """(hit, known miss) for the cache file at `path`: a non-empty file is the download, an
    empty one a miss younger than cache_miss_s (elfutils' negative-cache entry)."""
    try:
        st = os.stat(path)
    except OSError:
        return False, False
    if st.st_size > 0:
        return True, False
    return False, time.time() - st.st_mtime < _cache_miss_s(cache)


def fetch(build_id: Optional[str], kind: str, timeout: Optional[float] = None) -> Optional[str]:
    """``Session(timeout).fetch(build_id, kind)``: one lookup with its own time budget."""
    return Session(timeout).fetch(build_id, kind)


class Session:
    """The servers as one analysis uses them: `timeout` seconds in all, counted from the
    first request (a core with forty libraries must not wait forty timeouts), with a warning
    for each server that did not answer or the budget running out."""

    def __init__(self, timeout: Optional[float] = None):
        self.timeout = timeout if timeout is not None else default_timeout()
        self.warnings: List[str] = []
        self._deadline: Optional[float] = None
        self._down: Set[str] = set()

    def fetch(self, build_id: Optional[str], kind: str) -> Optional[str]:
        """The path of the cached file for (build_id, kind), fetched first when needed; None
        when no server is configured, none has it, or the time is up."""
        urls = [u for u in server_urls() if u not in self._down]
        if not urls or not build_id or kind not in KINDS or not all(c in "0123456789abcdef" for c in build_id):
            return None
        cache = client_cache_dir()
        base = os.path.join(cache, build_id)
        path = os.path.join(base, kind)
        hit, known_miss = _cached(path, cache)
        if hit:
            return path
        if known_miss:
            return None
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
            _remember_missing(base, path)
        return None

    def _warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)


def _remember_missing(base: str, path: str) -> None:
    """An empty file where the download would be: elfutils' record of a miss, which gdb and
    eu-stack then honour too."""
    try:
        os.makedirs(base, exist_ok=True)
        with open(path, "w"):
            pass
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
