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
import shutil
import tempfile
import time
from typing import List, Optional

from coredump.symbols.cache import cache_dir

__all__ = ("DEFAULT_TIMEOUT", "server_urls", "fetch")

DEFAULT_TIMEOUT = 5.0
# A miss is remembered this long (seconds) so one absent build-id costs one timeout a day.
NEGATIVE_TTL = 24 * 3600
KINDS = ("debuginfo", "executable")


def server_urls() -> List[str]:
    """The servers of ``DEBUGINFOD_URLS`` (space-separated, as elfutils reads it)."""
    return [u.rstrip("/") for u in os.environ.get("DEBUGINFOD_URLS", "").split() if u.startswith(("http://", "https://"))]


def _paths(build_id: str, kind: str):
    base = os.path.join(cache_dir(), "debuginfod", build_id)
    return base, os.path.join(base, kind), os.path.join(base, kind + ".missing")


def fetch(build_id: Optional[str], kind: str, timeout: float = DEFAULT_TIMEOUT) -> Optional[str]:
    """The path of the cached file for (build_id, kind), fetched first when needed; None when
    no server is configured, none has it, or they are too slow (`timeout` seconds in all)."""
    urls = server_urls()
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
    deadline = time.monotonic() + timeout
    for url in urls:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if _download(f"{url}/buildid/{build_id}/{kind}", base, path, left):
            return path
    try:
        os.makedirs(base, exist_ok=True)
        open(missing, "w").close()
    except OSError:
        pass
    return None


def _download(url: str, base: str, path: str, timeout: float) -> bool:
    import urllib.request

    try:
        os.makedirs(base, exist_ok=True)
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status != 200:
                return False
            fd, tmp = tempfile.mkstemp(dir=base, prefix=".part-")
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        with open(tmp, "rb") as f:
            if f.read(4) != b"\x7fELF":
                os.unlink(tmp)
                return False
        os.replace(tmp, path)  # atomic: concurrent analyses never see half a file
        return True
    except (OSError, ValueError):
        return False
