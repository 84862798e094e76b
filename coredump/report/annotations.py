"""
Annotations
===========

GitHub Actions workflow commands: one ``::error file=…,line=…::`` per crash signature,
pointing at the crashing thread's innermost frame with source, so the crash shows in
the pull request's diff and the run summary. ``file=`` is a path from the repository root:
the frame's ``source_path`` relative to GITHUB_WORKSPACE.
"""

from __future__ import annotations

import os
import sys

from coredump.report import view
from coredump.report.sanitize import clean_text

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, List, Mapping, Optional, Sequence

__all__ = ("github_annotations", "emit_github", "MAX_ANNOTATIONS", "escape_data", "escape_property")


def escape_data(value: str) -> str:
    """The message part, escaped as @actions/core's ``escapeData`` (command.ts)."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """A property value, escaped as @actions/core's ``escapeProperty``."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def _line(frame: Optional[Dict]) -> Optional[int]:
    try:
        return int(frame["line"]) if frame is not None else None
    except (TypeError, ValueError):
        return None


# GitHub shows at most 10 error annotations per step (docs, "Workflow commands": "a maximum
# of 10 error annotations ... per step"); more are dropped without a word.
MAX_ANNOTATIONS = 10


def github_annotations(crashes: Sequence[Dict], workspace: Optional[str] = None,
                       details: Optional[Mapping[str, str]] = None) -> List[str]:
    """One ``::error`` line per distinct signature, most frequent first (first seen among
    equals), at most MAX_ANNOTATIONS; the last one then says how many more signatures the
    job summary lists.

    `details` maps a signature to a hint appended to the message (e.g. the report path).
    """
    firsts, seen = {}, {}
    for crash in crashes:
        signature = str(crash.get("signature") or view.headline(crash))
        seen[signature] = seen.get(signature, 0) + 1
        firsts.setdefault(signature, crash)
    ranked = sorted(firsts, key=lambda s: -seen[s])  # sorted() is stable: first seen among equals
    shown, hidden = ranked[:MAX_ANNOTATIONS], ranked[MAX_ANNOTATIONS:]
    out = []
    for n, signature in enumerate(shown):
        crash = firsts[signature]
        props = [f"title={escape_property('crash: ' + clean_text(signature))}"]
        top = view.start_frame(crash)
        line = _line(top)
        if line is not None:
            file = view.repo_file(top, workspace)
            props = [f"file={escape_property(file)}", f"line={line}"] + props
        count = seen[signature]
        message = clean_text(view.headline(crash)) + (f" ({count} crashes)" if count > 1 else "")
        reason = crash.get("reason") or (crash.get("signal") or {}).get("description")
        message += f": {clean_text(reason)}" if reason else ""
        message += "\n" + "\n".join(clean_text(line) for line in view.backtrace_lines(crash)[:12])
        if details and signature in details:
            message += "\n" + clean_text(details[signature])
        if hidden and n == len(shown) - 1:
            more = sum(seen[s] for s in hidden)
            message += (f"\n... and {len(hidden)} more signature{'s' if len(hidden) > 1 else ''} "
                        f"({more} crash{'es' if more > 1 else ''}) in the job summary and index.html")
        out.append(f"::error {','.join(props)}::{escape_data(message)}")
    return out


def emit_github(crashes: Sequence[Dict], reports: Sequence[Optional[str]] = (), stream=None,
                environ: Optional[Mapping[str, str]] = None, details: Optional[Mapping[str, str]] = None) -> List[str]:
    """Under GitHub Actions (GITHUB_ACTIONS=true): print the annotations and append the job
    summary to $GITHUB_STEP_SUMMARY (`reports[i]` is crash i's report page). Returns warnings
    (a summary file that cannot be written); never raises for that.

    Annotations go to stderr by default: stdout belongs to the wrapped step (``coredump run --
    tool > out.json``). The runner reads workflow commands on both streams: its
    ScriptHandler (actions/runner, src/Runner.Worker/Handlers/ScriptHandler.cs) hands the
    step's OutputDataReceived and ErrorDataReceived each to an OutputManager, which passes
    every line to the ActionCommandManager."""
    from coredump.report.job_summary import append_job_summary

    env = os.environ if environ is None else environ
    if env.get("GITHUB_ACTIONS") != "true":
        return []
    stream = stream or sys.stderr
    for line in github_annotations(crashes, env.get("GITHUB_WORKSPACE"), details):
        stream.write(line + "\n")
    stream.flush()
    warning = append_job_summary(crashes, reports, env)
    return [warning] if warning else []
