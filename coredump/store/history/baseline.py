"""
Baseline
========

``coredump diff --baseline db[:BRANCH] NEW``: a crash of NEW is new when no recorded job of
BRANCH (of NEW's repository, when its summary names one) ever had its fingerprint; not
merely when one other job lacked it. NEW's own job, when it is recorded already (``run``
records it), is no baseline of itself. BRANCH defaults to the repository's default
branch: ``$COREDUMP_DEFAULT_BRANCH``, GitLab's ``CI_DEFAULT_BRANCH``, the
``repository.default_branch`` of GitHub's event payload (``GITHUB_EVENT_PATH``), else
``main``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from coredump.errors import CoreDumpError
from coredump.triage.diff import CrashDiff, diff_crashes, load_crashes

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Mapping, Optional

__all__ = ("parse_baseline", "default_branch", "diff_against_history")

_MAX_EVENT = 16 << 20  # bytes of GitHub's event payload read


def parse_baseline(text: str) -> Optional[str]:
    """The branch of ``db:BRANCH`` (None for plain ``db``); CoreDumpError for anything else.

    >>> parse_baseline("db"), parse_baseline("db:release/2.x")
    (None, 'release/2.x')
    """
    if text == "db":
        return None
    if text.startswith("db:") and text[3:].strip():
        return text[3:].strip()
    raise CoreDumpError(f"--baseline {text!r}: use db or db:BRANCH")


def _github_default(env: Mapping[str, str]) -> Optional[str]:
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            event = json.loads(f.read(_MAX_EVENT))
        value = event["repository"]["default_branch"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) and value else None


def default_branch(environ: Optional[Mapping[str, str]] = None) -> str:
    env = os.environ if environ is None else environ
    return (env.get("COREDUMP_DEFAULT_BRANCH") or env.get("CI_DEFAULT_BRANCH") or _github_default(env)
            or "main")


def _new_job(new_path: str):
    """NEW's job key and repository, from its summary (None when there is none)."""
    from coredump.store.history.jobs import job_key, job_row
    from coredump.store.history.sources import read_summary_dir

    root = Path(new_path)
    root = root.parent if root.name == "summary.json" else root
    try:
        job = read_summary_dir(root)
    except CoreDumpError:
        return None, None
    return job_key(job.summary, job.location), job_row(job.summary, job.location)["repository"]


def diff_against_history(reader, new_path: str, branch: Optional[str], shown_db: str) -> CrashDiff:
    """NEW's crashes split into new (never on `branch`) and still (seen there before)."""
    from coredump.store.history.queries import branch_has_jobs, job_id_of, seen_on_branch

    branch = branch or default_branch()
    warnings: List[str] = []
    if not os.path.exists(new_path):
        warnings.append(f"{new_path}: does not exist; NEW taken as a run without crashes "
                        "(a job that crashed nothing writes no artifact directory)")
        new = {}
    else:
        new = load_crashes(new_path, warnings)
    key, repository = _new_job(new_path) if new else (None, None)
    exclude = job_id_of(reader, key) if key else None
    seen = seen_on_branch(reader, new.keys(), branch, repository, exclude) if new else set()
    if new and not branch_has_jobs(reader, branch, repository):
        warnings.append(f"{shown_db} has no crash recorded on branch {branch!r}"
                        f"{f' of {repository}' if repository else ''}: every crash of NEW is new")
    base = {fp: crash for fp, crash in new.items() if fp in seen}
    result = diff_crashes(base, new, warnings)
    return result
