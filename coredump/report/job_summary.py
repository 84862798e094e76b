"""
Job summary
===========

The crashes of a GitHub Actions step as GitHub-flavoured Markdown, appended to the file that
``$GITHUB_STEP_SUMMARY`` names (GitHub docs, "Adding a job summary"): crashes grouped by
signature, most frequent first, each with its reason, top frames and where its report is.

Crash data is untrusted: inline text has every Markdown and HTML metacharacter escaped
(CommonMark 0.31 §2.4, backslash escapes of ASCII punctuation), and frames go in a code
fence longer than any run of backticks inside it (§4.5), so nothing in a crash can add links,
images, HTML or headings to the page.
"""

from __future__ import annotations

import os
import re

from coredump.report import view
from coredump.report.sanitize import clean_text

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, List, Mapping, Optional, Sequence

__all__ = ("job_summary_markdown", "append_job_summary", "md_escape", "FRAMES")

FRAMES = 8  # frames shown per signature
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def md_escape(value) -> str:
    """One line of crash data as Markdown text that renders as itself."""
    return _PUNCTUATION.sub(r"\\\1", clean_text(value))


def _fence(lines: Sequence[str]) -> List[str]:
    body = [clean_text(line) for line in lines]
    longest = max((len(run) for line in body for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + "text", *body, fence]


def _run_url(env: Mapping[str, str]) -> Optional[str]:
    """The workflow run's page, where its uploaded artifacts are listed."""
    parts = [env.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
    if not all(parts) or not re.fullmatch(r"https?://[\w.:-]+", parts[0] or ""):
        return None
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", parts[1]) or not parts[2].isdigit():
        return None
    return f"{parts[0]}/{parts[1]}/actions/runs/{parts[2]}#artifacts"


def job_summary_markdown(crashes: Sequence[Dict], reports: Sequence[Optional[str]] = (),
                         environ: Optional[Mapping[str, str]] = None) -> str:
    """`crashes` (crash dicts) with `reports[i]` the path of crash i's report.html."""
    env = os.environ if environ is None else environ
    pairs = [({"report_html": reports[i] if i < len(reports) else None}, c) for i, c in enumerate(crashes)]
    groups = view.group_crashes(pairs)
    count = len(crashes)
    out = [f"### coredump: {count} crash{'es' if count != 1 else ''}, "
           f"{len(groups)} signature{'s' if len(groups) != 1 else ''}", ""]
    url = _run_url(env)
    if url:
        out += [f"Artifacts (core, binaries, HTML reports): [this run's artifacts]({url})", ""]
    for group in groups:
        entry, crash = group["members"][0]
        crash = crash or {}
        times = f" ×{len(group['members'])}" if len(group["members"]) > 1 else ""
        out.append(f"#### {md_escape(group['signature'])}{times}")
        out.append("")
        reason = crash.get("reason") or (crash.get("signal") or {}).get("description")
        out.append(md_escape(view.headline(crash)) + (f": {md_escape(reason)}" if reason else ""))
        if crash.get("assertion"):
            out += ["", md_escape(crash["assertion"])]
        out += [""] + _fence(view.backtrace_lines(crash)[:FRAMES]) + [""]
        where = [m.get("report_html") for m, _ in group["members"] if m.get("report_html")]
        if where:
            shown = ", ".join(md_escape(w) for w in where[:5])
            more = f" and {len(where) - 5} more" if len(where) > 5 else ""
            out += [f"Report: {shown}{more}", ""]
    return "\n".join(out) + "\n"


def append_job_summary(crashes: Sequence[Dict], reports: Sequence[Optional[str]] = (),
                       environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """Append the summary to $GITHUB_STEP_SUMMARY when it is set; returns a warning when the
    file cannot be written (the step's status is never affected), else None."""
    env = os.environ if environ is None else environ
    path = env.get("GITHUB_STEP_SUMMARY")
    if not path or not crashes:
        return None
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(job_summary_markdown(crashes, reports, env))
    except OSError as exc:
        return f"cannot write the job summary to $GITHUB_STEP_SUMMARY ({exc.strerror or exc})"
    return None
