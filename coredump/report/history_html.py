"""
History page
============

``coredump report --db URL -o DIR``: one static page of the crash history, rendered with
jinja2 (autoescape on) from the plain dicts of ``store.history.queries``, under the same
Content-Security-Policy as the job pages (nothing loads, only our inline script runs):
top signatures with a bar per day, new this week, gone since, each linking to its latest
crash's report where that is a local file (a ``file:`` URI) or an S3 object a link base
serves (``history_links``), and giving the ``coredump fetch`` command of an S3 crash beside.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath
from urllib.parse import quote

from coredump.report.history_links import LinkBase, s3_report_href
from coredump.report.history_text import when
from coredump.report.html import _csp, _environment
from coredump.report.sanitize import safe_href, safe_web_url

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Any, Dict, List, Optional, Sequence

__all__ = ("render_history_html", "report_href")

CHART_HEIGHT = 24


def report_href(location: Optional[str], report: Optional[str]) -> Optional[str]:
    """A link to a crash's report.html: a ``file:`` URI (RFC 8089) below a local artifact
    directory, None for anything else (an S3 prefix, a path leaving its directory).

    >>> report_href("/ci/a b", "c1/report.html")
    'file:///ci/a%20b/c1/report.html'
    >>> report_href("/ci/a", "../../etc/passwd") is None
    True
    """
    rel = safe_href(report)
    if not location or not location.startswith("/") or rel is None or ".." in rel.split("/"):
        return None
    if any(part in ("..", ".") for part in PurePosixPath(location).parts):
        return None
    return "file://" + quote(location.rstrip("/"), safe="/") + "/" + rel


def _bars(per_day: List[int]) -> List[Dict[str, Any]]:
    top = max(per_day) if per_day else 0
    return [{"n": n, "h": 0 if not top else max(1, round(CHART_HEIGHT * n / top)), "x": i * 4}
            for i, n in enumerate(per_day)]


def _row(item: Dict[str, Any], latest: Dict[str, Dict[str, Any]], bases: Sequence[LinkBase]) -> Dict[str, Any]:
    last = latest.get(item["fingerprint"]) or {}
    location = last.get("location")
    s3 = location if isinstance(location, str) and location.startswith("s3://") else None
    return {**item, "first": when(item.get("first_seen")), "last": when(item.get("last_seen")),
            "bars": _bars(item.get("per_day") or []), "width": 4 * len(item.get("per_day") or []),
            "report_href": s3_report_href(s3, last.get("report"), bases) if s3 else
            report_href(location, last.get("report")), "s3": s3,
            "crash_id": last.get("crash_id"), "job_href": safe_web_url(last.get("job_url")),
            "branch": last.get("branch"), "commit": (last.get("commit") or "")[:12] or None,
            "branch_list": ", ".join(f"{b} ×{n}" for b, n in list((item.get("branches") or {}).items())[:4])}


def render_history_html(top: Dict[str, Any], new: List[Dict], gone: List[Dict],
                        latest: Dict[str, Dict[str, Any]], database: str, generated: float,
                        link_bases: Sequence[LinkBase] = ()) -> str:
    """The page; `latest` maps each fingerprint to its newest occurrence; `link_bases`
    where S3 crashes open in a browser."""
    page = {"database": database, "generated": when(generated), "since": when(top["since"]),
            "days": max(1, round((top["until"] - top["since"]) / 86400)), "crashes": top["crashes"],
            "jobs": top["jobs"], "top": [_row(i, latest, link_bases) for i in top["signatures"]],
            "new": [_row(i, latest, link_bases) for i in new], "gone": [_row(i, latest, link_bases) for i in gone],
            "chart_height": CHART_HEIGHT}
    return _environment().get_template("history.html").render(page=page, csp=_csp())


def write_history_page(out_dir: str, html: str) -> str:
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "history.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(html)
    return path
