"""
History text
============

``coredump top`` and ``coredump history`` at the terminal, from the plain dicts of
``store.history.queries``. Every value came from a job's summary or crash.json: it is
printed through ``clean_text``.
"""

from __future__ import annotations

import time

from coredump.report.sanitize import clean_text

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Any, Dict, List

__all__ = ("render_top_text", "render_history_text", "when", "sparkline")

_BARS = "▁▂▃▄▅▆▇█"


def when(seconds) -> str:
    """UTC, to the minute.

    >>> when(0)
    '1970-01-01 00:00'
    """
    if seconds is None:
        return "?"
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(seconds))


def sparkline(values: List[int]) -> str:
    """
    >>> sparkline([0, 1, 4, 8])
    ' ▁▄█'
    """
    top = max(values) if values else 0
    return "".join(" " if not v else _BARS[min(len(_BARS) - 1, (v * len(_BARS) - 1) // top)] for v in values)


def _branches(branches: Dict[str, int], limit: int = 3) -> str:
    shown = [f"{clean_text(name)} ×{n}" for name, n in list(branches.items())[:limit]]
    more = len(branches) - limit
    return ", ".join(shown) + (f", +{more} more" if more > 0 else "")


def render_top_text(top: Dict[str, Any]) -> str:
    where = f" on branch {clean_text(top['branch'])}" if top.get("branch") else ""
    head = (f"since {when(top['since'])} UTC{where}: {top['crashes']} crash{'es' if top['crashes'] != 1 else ''} "
            f"in {top['jobs']} job{'s' if top['jobs'] != 1 else ''}")
    rows = top["signatures"]
    if not rows:
        return head + "; no crashes recorded\n"
    lines = [head, f"{'CRASHES':>7} {'JOBS':>5}  {'FIRST SEEN':<16}  {'LAST SEEN':<16}  TREND", ""]
    lines.pop()
    for r in rows:
        mark = ""
        if r["expected"]:
            mark = "  [expected]" if r["expected"] == r["crashes"] else f"  [{r['expected']} expected]"
        lines.append(f"{r['crashes']:>7} {r['jobs']:>5}  {when(r['first_seen']):<16}  {when(r['last_seen']):<16}  "
                     f"{sparkline(r['per_day'])} {r['trend']}")
        lines.append(f"{'':>15}{clean_text(r['signature'])}{mark}")
        lines.append(f"{'':>15}{clean_text(r['fingerprint'])}  {_branches(r['branches'])}")
    return "\n".join(lines) + "\n"


def _where(o: Dict[str, Any]) -> str:
    if not o.get("location"):
        return "?"
    place = clean_text(o["location"])
    return f"{place}/{clean_text(o['crash_id'])}"


def render_history_text(history: Dict[str, Any]) -> str:
    if not history["count"]:
        return f"no crash with fingerprint or signature {clean_text(history['key'])!r} is recorded\n"
    occurrences = history["occurrences"]
    newest = occurrences[-1]
    lines = [f"{clean_text(newest['signature'])}: {history['count']} crash{'es' if history['count'] != 1 else ''}"
             f" (fingerprint {', '.join(clean_text(f) for f in history['fingerprints'])})", "first on each branch:"]
    for first in history["first_on_branch"]:
        lines.append(f"  {clean_text(first['branch'] or '?')}  commit {clean_text(first['commit'] or '?')}  "
                     f"{when(first['time'])} UTC  {clean_text(first['job_url'] or '')}".rstrip())
    shown = len(occurrences)
    lines.append(f"occurrences, oldest first{f' (the newest {shown})' if shown < history['count'] else ''}:")
    for o in occurrences:
        mark = "  [expected]" if o["expected"] else ""
        lines.append(f"  {when(o['time'])}  {clean_text(o['branch'] or '?')}  {clean_text((o['commit'] or '?')[:12])}"
                     f"  {clean_text(o['job_url'] or '-')}  {_where(o)}{mark}")
    return "\n".join(lines) + "\n"
