"""
Local listing
=============

``coredump ls DIR``: the artifact directories under DIR (each a folder holding a
``coredump.summary/1`` summary.json), as ``coredumpctl list`` lists a machine's cores. The walk
is bounded: it follows no symlink, goes at most ``MAX_DEPTH`` folders down, and reads at most
``MAX_JOBS`` summaries (each at most ``MAX_SUMMARY`` bytes); an unreadable summary is a warning.
"""

from __future__ import annotations

import io
import os

from coredump.errors import StorageError
from coredump.jsondoc import read_document
from coredump.model import SUMMARY_SCHEMA

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Optional

__all__ = ("list_local_jobs", "MAX_DEPTH", "MAX_JOBS")

SUMMARY = "summary.json"
MAX_DEPTH = 6
MAX_JOBS = 10_000
MAX_SUMMARY = 64 << 20


def _read(path: str) -> dict:
    """The summary at `path`, opened without following a symlink and read within
    MAX_SUMMARY bytes, then parsed by the one reader of our documents (jsondoc)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_SUMMARY + 1)
    if len(data) > MAX_SUMMARY:
        raise ValueError(f"larger than {MAX_SUMMARY} bytes")
    return read_document(path, SUMMARY_SCHEMA, file=io.BytesIO(data))


def list_local_jobs(root: str, warnings: Optional[List[str]] = None) -> List[dict]:
    """Every artifact directory at or under `root`: its summary plus ``job`` (its path
    relative to `root`, ``.`` for `root` itself) and ``url`` (its path)."""
    warnings = warnings if warnings is not None else []
    jobs: List[dict] = []
    root = os.path.normpath(root)
    for top, dirs, files in os.walk(root, followlinks=False):
        depth = 0 if top == root else os.path.relpath(top, root).count(os.sep) + 1
        if depth >= MAX_DEPTH:
            dirs[:] = []
        dirs.sort()
        if SUMMARY not in files:
            continue
        path = os.path.join(top, SUMMARY)
        try:
            summary = _read(path)
        except (OSError, ValueError, StorageError) as exc:
            warnings.append(f"{path}: not read ({exc})")
            continue
        dirs[:] = []  # a job's own folders (crash directories, files/) hold no other job
        jobs.append(dict(summary, job=os.path.relpath(top, root), url=top))
        if len(jobs) >= MAX_JOBS:
            warnings.append(f"more than {MAX_JOBS} artifact directories under {root}: listed the first ones")
            break
    jobs.sort(key=lambda s: (str(s.get("started", "")), s["job"]))
    return jobs
