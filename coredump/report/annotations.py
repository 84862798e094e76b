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
from typing import Dict, List, Mapping, Optional, Sequence

from coredump.report import view
from coredump.report.sanitize import clean_text

__all__ = ("github_annotations", "emit_github_annotations", "escape_data", "escape_property")


def escape_data(value: str) -> str:
    """The message part, escaped as @actions/core's ``escapeData`` (command.ts)."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """A property value, escaped as @actions/core's ``escapeProperty``."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def _relative(path: str, workspace: Optional[str]) -> str:
    """GitHub resolves ``file=`` against the repository root (GITHUB_WORKSPACE)."""
    if workspace and os.path.isabs(path):
        rel = os.path.relpath(path, workspace)
        if not rel.startswith(".."):
            return rel
    return path


def _inside(path: str, root: str) -> Optional[str]:
    """`path` relative to `root` when it lies under it, else None; compared as written and
    then with symlinks resolved (a compiler records $PWD, which may go through a link)."""
    if not os.path.isabs(path):
        return None
    for resolve in (os.path.abspath, os.path.realpath):
        rel = os.path.relpath(resolve(path), resolve(root))
        if rel != os.curdir and rel != os.pardir and not rel.startswith(os.pardir + os.sep):
            return rel
    return None


def _file(frame: Dict, workspace: Optional[str]) -> str:
    """The ``file=`` of `frame`: its ``source_path`` (the absolute path DWARF names) relative
    to the workspace (GITHUB_WORKSPACE, else the current directory) when it lies inside;
    else its ``file``, made relative only when absolute."""
    path = frame.get("source_path")
    # A relative source_path (gdb's full name under a relative DW_AT_comp_dir, as Debian's
    # libc6-dbg has: ./nptl/./nptl/pthread_kill.c) is not relative to this directory.
    if isinstance(path, str) and path.startswith("/"):
        try:
            rel = _inside(clean_text(path), workspace or os.getcwd())
        except (OSError, ValueError):  # no current directory, a NUL in the path
            rel = None
        if rel is not None:
            return rel
    return _relative(clean_text(frame["file"]), workspace)


def _line(frame: Optional[Dict]) -> Optional[int]:
    try:
        return int(frame["line"]) if frame is not None else None
    except (TypeError, ValueError):
        return None


def github_annotations(crashes: Sequence[Dict], workspace: Optional[str] = None,
                       details: Optional[Mapping[str, str]] = None) -> List[str]:
    """One ``::error`` line per distinct signature, in first-seen order.

    `details` maps a signature to a hint appended to the message (e.g. the report path).
    """
    lines, seen = [], {}
    for crash in crashes:
        signature = str(crash.get("signature") or view.headline(crash))
        seen[signature] = seen.get(signature, 0) + 1
        if seen[signature] > 1:
            continue
        lines.append((signature, crash))
    out = []
    for signature, crash in lines:
        props = [f"title={escape_property('crash: ' + clean_text(signature))}"]
        top = view.top_source_frame(crash)
        line = _line(top)
        if line is not None:
            file = _file(top, workspace)
            props = [f"file={escape_property(file)}", f"line={line}"] + props
        count = seen[signature]
        message = clean_text(view.headline(crash)) + (f" ({count} crashes)" if count > 1 else "")
        reason = crash.get("reason") or (crash.get("signal") or {}).get("description")
        message += f": {clean_text(reason)}" if reason else ""
        message += "\n" + "\n".join(clean_text(line) for line in view.backtrace_lines(crash)[:12])
        if details and signature in details:
            message += "\n" + clean_text(details[signature])
        out.append(f"::error {','.join(props)}::{escape_data(message)}")
    return out


def emit_github_annotations(crashes: Sequence[Dict], stream=None, environ: Optional[Mapping[str, str]] = None,
                            details: Optional[Mapping[str, str]] = None) -> int:
    """Print the annotations when running under GitHub Actions (GITHUB_ACTIONS=true);
    returns how many were printed.

    They go to stderr by default: stdout belongs to the wrapped step (``coredump run --
    tool > out.json``). The runner reads workflow commands on both streams: its
    ScriptHandler (actions/runner, src/Runner.Worker/Handlers/ScriptHandler.cs) hands the
    step's OutputDataReceived and ErrorDataReceived each to an OutputManager, which passes
    every line to the ActionCommandManager."""
    env = os.environ if environ is None else environ
    if env.get("GITHUB_ACTIONS") != "true":
        return 0
    stream = stream or sys.stderr
    lines = github_annotations(crashes, env.get("GITHUB_WORKSPACE"), details)
    for line in lines:
        stream.write(line + "\n")
    stream.flush()
    return len(lines)
