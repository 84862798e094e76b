"""
View
====

Read-only helpers over the ``coredump.crash/1`` dict shared by the HTML, JUnit and
annotation renderers; every field may be null or absent (docs/json-schema.md).
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Optional, Tuple

__all__ = ("gap_before", "crashing_thread", "frame_name", "frame_location", "frame_line", "top_source_frame",
           "backtrace_lines", "headline", "group_crashes", "LESS_CERTAIN", "JIT_TAG", "SYSTEM_PREFIXES")

# rust-minidump's FrameTrust: scanning guesses return addresses from stack words, a
# frame-pointer chain breaks through code built without one; both may be wrong.
LESS_CERTAIN = ("scan", "fp", "none")
# The tag of a frame in anonymous executable memory (model.Frame.jit).
JIT_TAG = "JIT code"
# Where distributions install libraries and their headers (FHS 3.0 §4.6, §4.4).
SYSTEM_PREFIXES = ("/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/include/", "/usr/local/include/")


def _get(d: Any, key: str, default=None):
    return d.get(key, default) if isinstance(d, dict) else default


def crashing_thread(crash: Dict) -> Optional[Dict]:
    """The thread that took the fatal signal, or the first thread when unknown."""
    threads = [t for t in _get(crash, "threads") or [] if isinstance(t, dict)]
    index = _get(crash, "crashing_thread")
    if isinstance(index, int) and 0 <= index < len(threads):
        return threads[index]
    return threads[0] if threads else None


def frame_name(frame: Dict) -> str:
    """Function name, else ``module+offset``, else the pc, else ``??`` (drgn's fallback order)."""
    if _get(frame, "function"):
        return str(frame["function"])
    module = _get(frame, "module")
    if module and _get(frame, "module_offset"):
        return f"{os.path.basename(str(module))}+{frame['module_offset']}"
    return str(_get(frame, "pc") or "??")


def frame_location(frame: Dict) -> str:
    """``file:line`` (or just the file), empty when unknown."""
    file, line = _get(frame, "file"), _get(frame, "line")
    if not file:
        return ""
    return f"{file}:{line}" if line else str(file)


def frame_line(frame: Dict) -> str:
    """One gdb-style line: ``#0  0x… in fn (file:line) [found by scan]``."""
    index = _get(frame, "index", "?")
    pc = "" if _get(frame, "inline") else f"{_get(frame, 'pc') or '?'} in "
    where = frame_location(frame) or (os.path.basename(str(frame["module"])) if _get(frame, "module") else "")
    text = f"#{index:<3} {pc}{_get(frame, 'function') or '??'}" + (f" ({where})" if where else "")
    tailcall = bool(_get(frame, "tailcall"))  # says how it was found: no "found by none"
    tags = (["inlined"] if _get(frame, "inline") else []) + (["tail call"] if tailcall else []) + (
        [JIT_TAG] if _get(frame, "jit") else []) + (
        [f"found by {frame['trust']}"] if _get(frame, "trust") in LESS_CERTAIN and not tailcall else [])
    return text + (f" [{', '.join(tags)}]" if tags else "")


def _is_system(path) -> bool:
    return bool(path) and str(path).startswith(SYSTEM_PREFIXES)


def top_source_frame(crash: Dict) -> Optional[Dict]:
    """The innermost frame of the crashing thread with a source file and line in the
    program's own code (not a system library's, such as libc's abort()); failing that,
    the innermost with any source: where a reader starts."""
    thread = crashing_thread(crash)
    sourced = [f for f in _get(thread, "frames") or [] if _get(f, "file") and _get(f, "line")]
    own = [f for f in sourced if not _is_system(_get(f, "module")) and not _is_system(_get(f, "file"))]
    return (own or sourced or [None])[0]


def backtrace_lines(crash: Dict) -> List[str]:
    thread = crashing_thread(crash)
    omitted = _get(thread, "frames_omitted")
    lines, placed = [], False
    for f in [f for f in _get(thread, "frames") or [] if isinstance(f, dict)]:
        if omitted and gap_before(f, lines and lines[-1][1]):
            lines.append((f"... {omitted} frames omitted", None))
            placed = True
        lines.append((frame_line(f), f))
    if omitted and not placed:
        lines.append((f"... {omitted} frames omitted", None))
    return [text for text, _ in lines]


def gap_before(frame: Dict, previous: Optional[Dict]) -> bool:
    """True when frames were omitted between `previous` and `frame` (their numbers jump)."""
    try:
        return previous is not None and int(frame["index"]) > int(previous["index"]) + 1
    except (KeyError, TypeError, ValueError):
        return False


def headline(crash: Dict) -> str:
    """``SIGSEGV (SEGV_MAPERR) at 0x0``: what a reader sees first."""
    sig = _get(crash, "signal") or {}
    text = str(_get(sig, "name") or "no signal")
    if _get(sig, "code_name"):
        text += f" ({sig['code_name']})"
    if _get(sig, "address") is not None and _get(sig, "number") in (4, 7, 8, 11):
        text += f" at {sig['address']}"
    return text


def group_crashes(entries: Iterable[Tuple[Dict, Optional[Dict]]]) -> List[Dict]:
    """Group (summary entry, crash dict) pairs by signature, most frequent first, then
    newest (later in the summary) first; each group keeps its entries in job order."""
    groups: Dict[str, Dict] = {}
    for order, (entry, crash) in enumerate(entries):
        signature = _get(crash, "signature") or _get(entry, "signature") or "(no signature)"
        group = groups.setdefault(signature, {"signature": signature, "members": [], "last": 0})
        group["members"].append((entry, crash))
        group["last"] = order
    return sorted(groups.values(), key=lambda g: (-len(g["members"]), -g["last"]))
