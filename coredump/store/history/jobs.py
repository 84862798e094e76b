"""
Jobs
====

One job's ``summary.json`` (and its crashes' ``crash.json``) as database rows. Everything
read is hostile input: text is bounded (``TEXT_LIMIT``) and loses its control characters,
CI URLs are kept only when http(s) (``ci_metadata.clean_field``), numbers must be numbers.
A job is known by a key made of what stays the same each time the job is read (its CI
build, host, start and command), so recording it again finds it.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime

from coredump.store.ci_metadata import FIELDS, clean_field
from coredump.store.history.schema import TEXT_LIMIT

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Any, Callable, Dict, List, Optional, Tuple
    ReadCrash = Callable[[str], Optional[Dict[str, Any]]]

__all__ = ("job_key", "job_row", "crash_rows", "parse_time", "MAX_CRASHES", "MAX_MODULES")

MAX_CRASHES = 10_000  # crashes of one job recorded; the rest are said to be left out
MAX_MODULES = 512  # build-ids kept per crash


def _text(value, limit: int = TEXT_LIMIT) -> Optional[str]:
    if value is None or isinstance(value, (dict, list)):
        return None
    return clean_field("text", str(value)[:limit * 2], limit)


def parse_time(value) -> Optional[float]:
    """Seconds since the epoch from summary.json's RFC 3339 ``started`` / ``finished``.

    >>> parse_time("1970-01-02T00:00:00Z"), parse_time("yesterday")
    (86400.0, None)
    """
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:  # our own summaries are UTC (utc_timestamp)
        from datetime import timezone

        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _ci(summary: Dict[str, Any]) -> Dict[str, Optional[str]]:
    ci = summary.get("ci") if isinstance(summary.get("ci"), dict) else {}
    return {key: clean_field(key, ci.get(key) if isinstance(ci.get(key), str) else None) for key in FIELDS}


def _command(summary: Dict[str, Any]) -> Optional[str]:
    command = summary.get("command")
    if isinstance(command, list):
        return _text(" ".join(str(a) for a in command[:256]))
    return _text(command)


def job_key(summary: Dict[str, Any], location: str) -> str:
    """What names the job whatever copy of its artifacts is read: the CI build, the host,
    the start time and the command; the location only when the summary has no start time."""
    ci = _ci(summary)
    parts = [ci.get(k) for k in ("provider", "repository", "build_number", "job")]
    parts += [_text(summary.get("host")), _text(summary.get("started")), _command(summary)]
    if not summary.get("started"):
        parts.append(location)
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def job_row(summary: Dict[str, Any], location: str) -> Dict[str, Any]:
    status = summary.get("exit_status")
    return {"job_key": job_key(summary, location), **_ci(summary), "host": _text(summary.get("host")),
            "command": _command(summary),
            "exit_status": status if isinstance(status, int) and not isinstance(status, bool) else None,
            "started": parse_time(summary.get("started")), "finished": parse_time(summary.get("finished")),
            "location": location[:TEXT_LIMIT], "recorded": time.time()}


def _build_ids(crash: Dict[str, Any], executable: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """The executable's build-id and every module's, as a JSON list (hex text only)."""
    ids, main = [], None
    for module in (crash.get("modules") or [])[:MAX_MODULES] if isinstance(crash.get("modules"), list) else []:
        if not isinstance(module, dict) or not isinstance(module.get("build_id"), str):
            continue
        build_id = module["build_id"][:128]
        if not all(c in "0123456789abcdefABCDEF" for c in build_id):
            continue
        ids.append(build_id)
        if main is None and executable and module.get("path") == executable:
            main = build_id
    return main or (ids[0] if ids else None), json.dumps(ids) if ids else None


def _fingerprint(entry: Dict[str, Any], crash: Dict[str, Any], signature: str) -> str:
    """As ``triage.diff`` finds one: the summary's, crash.json's, else the signature's hash."""
    for value in (entry.get("fingerprint"), crash.get("fingerprint")):
        if isinstance(value, str) and value and len(value) <= 200:
            return clean_field("text", value) or "?"
    return "sig:" + hashlib.sha256(signature.encode()).hexdigest()[:16]


def _crash_row(entry: Dict[str, Any], crash: Dict[str, Any], job: Dict[str, Any], when: float) -> Dict[str, Any]:
    signature = _text(entry.get("signature") or crash.get("signature")) or "?"
    sig = crash.get("signal") if isinstance(crash.get("signal"), dict) else {}
    process = crash.get("process") if isinstance(crash.get("process"), dict) else {}
    signal = entry.get("signal") or sig.get("name")
    executable = _text(entry.get("executable") or process.get("executable"))
    build_id, build_ids = _build_ids(crash, executable)
    expected = entry.get("expected")
    return {"crash_id": _text(entry.get("id"), 200) or "?", "fingerprint": _fingerprint(entry, crash, signature),
            "signature": signature, "classification": _text(crash.get("classification")),
            "reason": _text(crash.get("reason")), "signal": _text(signal, 32), "executable": executable,
            "build_id": build_id, "build_ids": build_ids, "time": when, "location": job["location"],
            "report": _text(entry.get("report_html")), "core": _text(entry.get("core")),
            "expected": _text(expected) if expected else None,
            "repository": job["repository"], "branch": job["branch"], "commit": job["commit"]}


def crash_rows(summary: Dict[str, Any], job: Dict[str, Any], read_crash: ReadCrash,
               warnings: List[str]) -> List[Dict[str, Any]]:
    """The rows of the job's crashes; `read_crash(relative path)` gives a crash.json or None."""
    entries = summary.get("crashes") if isinstance(summary.get("crashes"), list) else []
    if len(entries) > MAX_CRASHES:
        warnings.append(f"{job['location']}: {len(entries)} crashes; the first {MAX_CRASHES} are recorded")
    when = job["finished"] or job["started"] or job["recorded"]
    rows, seen = [], set()
    for entry in entries[:MAX_CRASHES]:
        if not isinstance(entry, dict):
            continue
        rel = entry.get("crash_json")
        crash = (read_crash(rel) if isinstance(rel, str) else None) or {}
        row = _crash_row(entry, crash, job, when)
        if row["crash_id"] not in seen:  # a summary that lists one id twice is one crash
            seen.add(row["crash_id"])
            rows.append(row)
    return rows
