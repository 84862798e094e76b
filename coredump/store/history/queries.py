"""
Queries
=======

What the history commands read: the top crashers of a time window (``top``), every
occurrence of one crash (``history``), which fingerprints a branch has had (``diff
--baseline db``), and the page of ``report --db``. Results are plain dicts; times are
seconds since the epoch.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Optional, Set

__all__ = ("top_crashes", "crash_history", "seen_on_branch", "branch_has_jobs", "latest_crashes", "job_id_of",
           "new_and_gone", "DAY")

DAY = 86400.0
MAX_BUCKETS = 60  # points of a trend; a longer window gets wider buckets


def _tables():
    from coredump.store.history.schema import tables

    return tables()[2:]


def _bucket(conn, column, since: float, width: float):
    """The bucket index of `column`: PostgreSQL's CAST rounds, SQLite's truncates."""
    from sqlalchemy import Integer, cast, func

    offset = (column - since) / width
    return func.floor(offset) if conn.dialect.name == "postgresql" else cast(offset, Integer)


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


def _details(conn, fps: List[str], since: float, now: float, branch: Optional[str]) -> Dict[str, Dict]:
    """Signature, expected count, branches and crashes per bucket of each of `fps` in the
    window (one grouped query), and first and last seen over all time (on `branch`)."""
    from sqlalchemy import case, func, select

    _, crashes = _tables()
    c = crashes.c
    width = max(DAY, (now - since) / MAX_BUCKETS)
    buckets = max(1, int(-(-(now - since - 60) // width)))  # "7d" parsed a moment before now
    out = {fp: {"per_day": [0] * buckets, "branches": {}, "expected": 0, "signature": None} for fp in fps}
    on_branch = [c.branch == branch] if branch else []
    for fp, first, last in conn.execute(select(c.fingerprint, func.min(c.time), func.max(c.time))
                                        .where(c.fingerprint.in_(fps), *on_branch).group_by(c.fingerprint)):
        out[fp].update(first_seen=first, last_seen=last)
    window = [c.fingerprint.in_(fps), c.time >= since, *on_branch]
    bucket = _bucket(conn, c.time, since, width).label("bucket")
    query = (select(c.fingerprint, c.branch, bucket, func.count(), func.sum(case((c.expected.is_not(None), 1),
                                                                                 else_=0)), func.max(c.signature))
             .where(*window).group_by(c.fingerprint, c.branch, bucket))
    for fp, name, index, n, expected, signature in conn.execute(query):
        d = out[fp]
        d["per_day"][min(max(int(index), 0), buckets - 1)] += n
        d["branches"][name or "?"] = d["branches"].get(name or "?", 0) + n
        d["expected"] += int(expected or 0)
        d["signature"] = max(d["signature"] or "", signature or "")
    out["_width"] = width
    return out


def top_crashes(engine, since: float, now: float, branch: Optional[str] = None, limit: int = 20) -> Dict[str, Any]:
    """Fingerprints by number of crashes since `since` (on `branch`), most first."""
    from sqlalchemy import desc, func, select

    _, crashes = _tables()
    c = crashes.c
    where = [c.time >= since] + ([c.branch == branch] if branch else [])
    count = func.count().label("n")
    # fingerprint, time and job_id only: the crashes_window index answers it without the table
    query = (select(c.fingerprint, count, func.count(c.job_id.distinct()))
             .where(*where).group_by(c.fingerprint).order_by(desc(count), c.fingerprint).limit(limit))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        total = conn.execute(select(func.count(), func.count(c.job_id.distinct())).where(*where)).one()
        details = _details(conn, [r[0] for r in rows], since, now, branch) if rows else {"_width": DAY}
    items = []
    for fp, n, jobs in rows:
        d = details[fp]
        items.append({"fingerprint": fp, "signature": d["signature"], "crashes": n, "jobs": jobs,
                      "expected": d["expected"], "first_seen": d["first_seen"], "last_seen": d["last_seen"],
                      "branches": dict(sorted(d["branches"].items(), key=lambda kv: -kv[1])),
                      "per_day": d["per_day"], "trend": _trend(d["per_day"], d["first_seen"], since)})
    return {"since": since, "until": now, "branch": branch, "bucket_seconds": details["_width"],
            "crashes": total[0], "jobs": total[1], "signatures": items}


def _occurrence(row) -> Dict[str, Any]:
    m = row._mapping
    return {"time": m["time"], "fingerprint": m["fingerprint"], "signature": m["signature"],
            "crash_id": m["crash_id"], "commit": m["commit"], "branch": m["branch"],
            "repository": m["repository"], "job": m["job"], "build_number": m["build_number"],
            "job_url": m["job_url"], "location": m["location"], "report": m["report"], "core": m["core"],
            "expected": m["expected"], "classification": m["classification"], "reason": m["reason"],
            "executable": m["executable"], "build_ids": json.loads(m["build_ids"]) if m["build_ids"] else []}


def crash_history(engine, key: str, limit: Optional[int] = None) -> Dict[str, Any]:
    """Every occurrence of the crash with fingerprint or signature `key`, oldest first (the
    newest `limit` when given), and the first commit on each branch where it appeared (a
    window function: one row per branch, however many occurrences)."""
    from sqlalchemy import desc, func, or_, select

    jobs, crashes = _tables()
    c = crashes.c
    match = or_(c.fingerprint == key, c.signature == key)
    columns = (*c, jobs.c.job, jobs.c.build_number, jobs.c.job_url)
    newest = (select(*columns).join(jobs, jobs.c.id == c.job_id).where(match)
              .order_by(desc(c.time), desc(c.id)).limit(limit))
    rank = func.row_number().over(partition_by=c.branch, order_by=(c.time, c.id)).label("rank")
    ranked = select(c.branch, c.commit, c.time, jobs.c.job_url, rank).join(jobs, jobs.c.id == c.job_id) \
        .where(match).subquery()
    firsts = select(ranked.c.branch, ranked.c.commit, ranked.c.time, ranked.c.job_url).where(ranked.c.rank == 1) \
        .order_by(ranked.c.time)
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).where(match)).scalar()
        fps = [fp for (fp,) in conn.execute(select(c.fingerprint).where(match).distinct().limit(100))]
        first = [{"branch": b, "commit": commit, "time": t, "job_url": url}
                 for b, commit, t, url in conn.execute(firsts)]
        occurrences = [_occurrence(r) for r in conn.execute(newest)][::-1]
    return {"key": key, "count": count, "fingerprints": sorted(fps), "first_on_branch": first,
            "occurrences": occurrences}


def _branch_filter(c, branch: str, repository: Optional[str], exclude_job: Optional[int]):
    where = [c.branch == branch]
    if repository:
        where.append(c.repository == repository)
    if exclude_job is not None:
        where.append(c.job_id != exclude_job)
    return where


def job_id_of(engine, job_key: str) -> Optional[int]:
    from sqlalchemy import select

    jobs, _ = _tables()
    with engine.connect() as conn:
        return conn.execute(select(jobs.c.id).where(jobs.c.job_key == job_key)).scalar()


def seen_on_branch(engine, fingerprints: Iterable[str], branch: str, repository: Optional[str] = None,
                   exclude_job: Optional[int] = None) -> Set[str]:
    """The `fingerprints` that some job of `branch` (of `repository`) other than
    `exclude_job` has crashed with."""
    from sqlalchemy import select

    _, crashes = _tables()
    c = crashes.c
    fps = sorted(set(fingerprints))
    seen: Set[str] = set()
    with engine.connect() as conn:
        for start in range(0, len(fps), 500):
            query = select(c.fingerprint).distinct().where(c.fingerprint.in_(fps[start:start + 500]),
                                                           *_branch_filter(c, branch, repository, exclude_job))
            seen.update(fp for (fp,) in conn.execute(query))
    return seen


def branch_has_jobs(engine, branch: str, repository: Optional[str] = None) -> bool:
    from sqlalchemy import select

    _, crashes = _tables()
    c = crashes.c
    with engine.connect() as conn:
        return conn.execute(select(c.id).where(*_branch_filter(c, branch, repository, None)).limit(1)).first() \
            is not None


def latest_crashes(engine, fingerprints: Iterable[str]) -> Dict[str, Dict[str, Any]]:
    """Each fingerprint's newest occurrence (where its report is)."""
    from sqlalchemy import func, select

    jobs, crashes = _tables()
    c = crashes.c
    fps = sorted(set(fingerprints))
    if not fps:
        return {}
    newest = (select(c.fingerprint, func.max(c.id).label("id")).where(c.fingerprint.in_(fps))
              .group_by(c.fingerprint).subquery())
    query = (select(*c, jobs.c.job, jobs.c.build_number, jobs.c.job_url).join(jobs, jobs.c.id == c.job_id)
             .join(newest, newest.c.id == c.id))
    with engine.connect() as conn:
        return {r._mapping["fingerprint"]: _occurrence(r) for r in conn.execute(query)}


def _spans(conn, having, order, limit: int) -> List[Dict[str, Any]]:
    from sqlalchemy import func, select

    _, crashes = _tables()
    c = crashes.c
    first, last = func.min(c.time), func.max(c.time)
    query = (select(c.fingerprint, func.max(c.signature), func.count(), first, last).group_by(c.fingerprint)
             .having(having(first, last)).order_by(order(first, last), c.fingerprint).limit(limit))
    return [{"fingerprint": fp, "signature": sig, "crashes": n, "first_seen": lo, "last_seen": hi}
            for fp, sig, n, lo, hi in conn.execute(query)]


def new_and_gone(engine, since: float, limit: int = 50) -> Dict[str, List[Dict[str, Any]]]:
    """Fingerprints first seen since `since` (newest first), and those last seen before it
    (most recently gone first)."""
    from sqlalchemy import desc

    with engine.connect() as conn:
        return {"new": _spans(conn, lambda first, last: first >= since, lambda first, last: desc(first), limit),
                "gone": _spans(conn, lambda first, last: last < since, lambda first, last: desc(last), limit)}
