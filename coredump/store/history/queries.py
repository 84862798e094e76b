"""
Queries
=======

What the history commands read: the top crashers of a time window (``top``), every
occurrence of one crash (``history``), which fingerprints a branch has had (``diff
--baseline db``), and the page of ``report --db``. Results are plain dicts; times are
seconds since the epoch. Plain SQL on a ``reader.Reader``, the same text for SQLite and
PostgreSQL; ``"time"`` and ``"commit"`` are quoted, being SQL keywords.
"""

from __future__ import annotations

import json

from coredump.store.history.reader import Reader

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Any, Dict, Iterable, List, Optional, Sequence, Set

__all__ = ("top_crashes", "crash_history", "seen_on_branch", "branch_has_jobs", "latest_crashes", "job_id_of",
           "new_and_gone", "DAY")

DAY = 86400.0
MAX_BUCKETS = 60  # points of a trend; a longer window gets wider buckets


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


def _bucket(db: Reader) -> str:
    """The bucket index of a crash's time, its two parameters the window's start and the
    bucket width: PostgreSQL's CAST to integer rounds, SQLite's truncates."""
    return 'floor(("time" - ?) / ?)' if db.dialect == "postgresql" else 'CAST(("time" - ?) / ? AS INTEGER)'


def _trend(per_bucket: List[int], first_seen: float, since: float) -> str:
    """new: first seen inside the window; rising/falling: the window's second half has half
    as many again, or half as many, as its first; else steady."""
    if first_seen >= since:
        return "new"
    half = len(per_bucket) // 2
    early, late = sum(per_bucket[:half]), sum(per_bucket[len(per_bucket) - half:])
    if late > early * 1.5 + 1:
        return "rising"
    if early > late * 1.5 + 1:
        return "falling"
    return "steady"


def _details(db: Reader, fps: List[str], since: float, now: float, branch: Optional[str]) -> Dict[str, Dict]:
    """Signature, expected count, branches and crashes per bucket of each of `fps` in the
    window (one grouped query), and first and last seen over all time (on `branch`)."""
    width = max(DAY, (now - since) / MAX_BUCKETS)
    buckets = max(1, int(-(-(now - since - 60) // width)))  # "7d" parsed a moment before now
    out = {fp: {"per_day": [0] * buckets, "branches": {}, "expected": 0, "signature": None} for fp in fps}
    on_branch, branch_args = (" AND branch = ?", [branch]) if branch else ("", [])
    # the crashes_fingerprint_time index answers it
    for fp, first, last in db.rows(f'SELECT fingerprint, min("time"), max("time") FROM crashes WHERE fingerprint IN '
                                   f'({_marks(fps)}){on_branch} GROUP BY fingerprint', [*fps, *branch_args]):
        out[fp].update(first_seen=first, last_seen=last)
    query = (f"SELECT fingerprint, branch, {_bucket(db)} AS bucket, count(*), "
             "sum(CASE WHEN expected IS NOT NULL THEN 1 ELSE 0 END), max(signature) FROM crashes "
             f'WHERE fingerprint IN ({_marks(fps)}) AND "time" >= ?{on_branch} GROUP BY fingerprint, branch, bucket')
    for fp, name, index, n, expected, signature in db.rows(query, [since, width, *fps, since, *branch_args]):
        d = out[fp]
        d["per_day"][min(max(int(index), 0), buckets - 1)] += n
        d["branches"][name or "?"] = d["branches"].get(name or "?", 0) + n
        d["expected"] += int(expected or 0)
        d["signature"] = max(d["signature"] or "", signature or "")
    out["_width"] = width
    return out


def top_crashes(db: Reader, since: float, now: float, branch: Optional[str] = None,
                limit: int = 20) -> Dict[str, Any]:
    """Fingerprints by number of crashes since `since` (on `branch`), most first."""
    where, args = ('"time" >= ? AND branch = ?', [since, branch]) if branch else ('"time" >= ?', [since])
    # fingerprint, time and job_id only: the crashes_window (crashes_branch_window) index
    # answers it without the table
    rows = db.rows(f"SELECT fingerprint, count(*) AS n, count(DISTINCT job_id) FROM crashes WHERE {where} "
                   "GROUP BY fingerprint ORDER BY n DESC, fingerprint LIMIT ?", [*args, limit])
    total = db.rows(f"SELECT count(*), count(DISTINCT job_id) FROM crashes WHERE {where}", args)[0]
    details = _details(db, [r[0] for r in rows], since, now, branch) if rows else {"_width": DAY}
    items = []
    for fp, n, jobs in rows:
        d = details[fp]
        items.append({"fingerprint": fp, "signature": d["signature"], "crashes": n, "jobs": jobs,
                      "expected": d["expected"], "first_seen": d["first_seen"], "last_seen": d["last_seen"],
                      "branches": dict(sorted(d["branches"].items(), key=lambda kv: -kv[1])),
                      "per_day": d["per_day"], "trend": _trend(d["per_day"], d["first_seen"], since)})
    return {"since": since, "until": now, "branch": branch, "bucket_seconds": details["_width"],
            "crashes": total[0], "jobs": total[1], "signatures": items}


# An occurrence: the crash's columns and its job's
_OCCURRENCE = ('c."time", c.fingerprint, c.signature, c.crash_id, c."commit", c.branch, c.repository, j.job, '
               "j.build_number, j.job_url, c.location, c.report, c.core, c.expected, c.classification, c.reason, "
               "c.executable, c.build_ids FROM crashes c JOIN jobs j ON j.id = c.job_id")


def _occurrence(m: Dict[str, Any]) -> Dict[str, Any]:
    return dict(m, build_ids=json.loads(m["build_ids"]) if m["build_ids"] else [])


def crash_history(db: Reader, key: str, limit: Optional[int] = None) -> Dict[str, Any]:
    """Every occurrence of the crash with fingerprint or signature `key`, oldest first (the
    newest `limit` when given), and the first commit on each branch where it appeared (a
    window function: one row per branch, however many occurrences)."""
    match, args = "(c.fingerprint = ? OR c.signature = ?)", [key, key]
    count = db.rows(f"SELECT count(*) FROM crashes c WHERE {match}", args)[0][0]
    fps = [fp for (fp,) in db.rows(f"SELECT DISTINCT c.fingerprint FROM crashes c WHERE {match} LIMIT 100", args)]
    ranked = ('SELECT c.branch, c."commit", c."time", j.job_url, row_number() OVER (PARTITION BY c.branch '
              'ORDER BY c."time", c.id) AS nth FROM crashes c JOIN jobs j ON j.id = c.job_id WHERE ' + match)
    first = [{"branch": b, "commit": commit, "time": t, "job_url": url} for b, commit, t, url in db.rows(
        f'SELECT branch, "commit", "time", job_url FROM ({ranked}) AS ranked WHERE nth = 1 ORDER BY "time"', args)]
    newest = f'SELECT {_OCCURRENCE} WHERE {match} ORDER BY c."time" DESC, c.id DESC'
    if limit is not None:
        newest, args = newest + " LIMIT ?", [*args, limit]
    occurrences = [_occurrence(r) for r in db.dicts(newest, args)][::-1]
    return {"key": key, "count": count, "fingerprints": sorted(fps), "first_on_branch": first,
            "occurrences": occurrences}


def _branch_filter(branch: str, repository: Optional[str], exclude_job: Optional[int]):
    where, args = ["branch = ?"], [branch]
    if repository:
        where, args = where + ["repository = ?"], args + [repository]
    if exclude_job is not None:
        where, args = where + ["job_id <> ?"], args + [exclude_job]
    return " AND ".join(where), args


def job_id_of(db: Reader, job_key: str) -> Optional[int]:
    rows = db.rows("SELECT id FROM jobs WHERE job_key = ?", [job_key])
    return rows[0][0] if rows else None


def seen_on_branch(db: Reader, fingerprints: Iterable[str], branch: str, repository: Optional[str] = None,
                   exclude_job: Optional[int] = None) -> Set[str]:
    """The `fingerprints` that some job of `branch` (of `repository`) other than
    `exclude_job` has crashed with."""
    fps = sorted(set(fingerprints))
    where, args = _branch_filter(branch, repository, exclude_job)
    seen: Set[str] = set()
    for start in range(0, len(fps), 500):
        chunk = fps[start:start + 500]
        seen.update(fp for (fp,) in db.rows(f"SELECT DISTINCT fingerprint FROM crashes WHERE fingerprint IN "
                                            f"({_marks(chunk)}) AND {where}", [*chunk, *args]))
    return seen


def branch_has_jobs(db: Reader, branch: str, repository: Optional[str] = None) -> bool:
    where, args = _branch_filter(branch, repository, None)
    return bool(db.rows(f"SELECT id FROM crashes WHERE {where} LIMIT 1", args))


def latest_crashes(db: Reader, fingerprints: Iterable[str]) -> Dict[str, Dict[str, Any]]:
    """Each fingerprint's newest occurrence (where its report is)."""
    fps = sorted(set(fingerprints))
    if not fps:
        return {}
    newest = f"SELECT max(id) FROM crashes WHERE fingerprint IN ({_marks(fps)}) GROUP BY fingerprint"
    return {r["fingerprint"]: _occurrence(r) for r in db.dicts(f"SELECT {_OCCURRENCE} WHERE c.id IN ({newest})", fps)}


def _spans(db: Reader, having: str, order: str, since: float, limit: int) -> List[Dict[str, Any]]:
    query = ('SELECT fingerprint, max(signature), count(*), min("time") AS first_seen, max("time") AS last_seen '
             f"FROM crashes GROUP BY fingerprint HAVING {having} ORDER BY {order} DESC, fingerprint LIMIT ?")
    return [{"fingerprint": fp, "signature": sig, "crashes": n, "first_seen": lo, "last_seen": hi}
            for fp, sig, n, lo, hi in db.rows(query, [since, limit])]


def new_and_gone(db: Reader, since: float, limit: int = 50) -> Dict[str, List[Dict[str, Any]]]:
    """Fingerprints first seen since `since` (newest first), and those last seen before it
    (most recently gone first)."""
    return {"new": _spans(db, 'min("time") >= ?', "first_seen", since, limit),
            "gone": _spans(db, 'max("time") < ?', "last_seen", since, limit)}
