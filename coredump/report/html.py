"""
HTML
====

The crash page and the job's index page, rendered with jinja2 (autoescape on) from
``coredump.crash/1`` and ``coredump.summary/1`` dicts; pages open from file:// with no
network: inline CSS, one small inline script under a Content-Security-Policy hash.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
from datetime import datetime

from coredump.report import view
from coredump.report.sanitize import safe_href, safe_web_url, show_controls

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = ("render_crash_html", "render_index_html", "local_commands", "TRUST_LABELS")

TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")

TAILCALL_LABEL = "put back from its caller's call instruction: a tail call left no stack frame"
TRUST_LABELS = {
    "context": "exact: registers saved in the core",
    "signal": "exact: interrupted by a signal",
    "cfi": "call frame info",
    "fp": "frame pointer chain: less certain",
    "scan": "stack scanning: a guess, may be a stale return address",
    "none": "unknown provenance",
}
# Registers that locate the frame: x86-64 psABI rip/rsp/rbp, AAPCS64 pc/sp/x29/x30.
_KEY_REGISTERS = {"rip", "rsp", "rbp", "pc", "sp", "x29", "x30", "lr", "fp"}

_env = None


def _environment():
    global _env
    if _env is None:
        import jinja2

        _env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, finalize=_finalize,
            undefined=jinja2.ChainableUndefined, trim_blocks=True, lstrip_blocks=True)
        _env.globals["script_text"] = _script_text()
    return _env


def _finalize(value):
    """Every ``{{ … }}`` of the templates, text or attribute: crash data (an executable named
    ``esc\x1b[31mprog``, argv, module paths) shows its control characters as escapes, so
    nothing is hidden from the reader; markup of our own (``|safe``) is left alone."""
    from markupsafe import Markup

    return show_controls(value) if isinstance(value, str) and not isinstance(value, Markup) else value


def _script_text() -> str:
    with open(os.path.join(TEMPLATES, "page.js"), encoding="utf-8") as f:
        return f.read()


def _csp() -> str:
    """Nothing loads from anywhere; only our own inline script runs (CSP3 hash-source),
    so even markup that slipped through could not execute or fetch."""
    digest = base64.b64encode(hashlib.sha256(_script_text().encode()).digest()).decode()
    return (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; "
            "img-src data:; base-uri 'none'; form-action 'none'")


def _str(value) -> Optional[str]:
    return None if value is None else str(value)


def _frame_vm(frame: Dict, start_here: bool) -> Dict[str, Any]:
    trust = frame.get("trust") or "none"
    module = _str(frame.get("module"))
    return {
        "index": frame.get("index"), "pc": _str(frame.get("pc")),
        "name": _frame_name(frame),
        "symbolized": bool(frame.get("function")), "offset": frame.get("offset"),
        "location": view.frame_location(frame), "source_path": _str(frame.get("source_path")),
        "module": module,
        "module_base": os.path.basename(module) if module else None,
        "inline": bool(frame.get("inline")), "tailcall": bool(frame.get("tailcall")), "trust": trust,
        "jit": bool(frame.get("jit")),
        "trust_label": TAILCALL_LABEL if frame.get("tailcall") else TRUST_LABELS.get(trust, trust),
        "uncertain": trust in view.LESS_CERTAIN,
        "start_here": start_here,
        "args": _variables(frame.get("args")), "locals": _variables(frame.get("locals")),
    }


def _frame_name(frame: Dict) -> str:
    """gdb's bt name: with the arguments printed, a C++ name without its parameter list."""
    if not (frame.get("function") or frame.get("module_offset")):
        return "??"
    name = view.frame_name(frame)
    return view.name_before_args(name) if frame.get("function") and isinstance(frame.get("args"), list) else name


def _variables(items) -> Optional[str]:
    """``name=value, ...`` of a frame's args or locals from crash.json (hostile input: any
    shape; the template escapes the text), or None where there are none."""
    return view.frame_args({"args": items})


def _source_vm(excerpt) -> Optional[Dict[str, Any]]:
    """A ``report.source.Excerpt`` for the page (the template escapes each line)."""
    if excerpt is None:
        return None
    return {"path": excerpt.path, "line": excerpt.line, "stored": excerpt.stored,
            "lines": [{"number": n, "text": text, "current": n == excerpt.line} for n, text in excerpt.lines]}


def _thread_vm(number: int, thread: Dict, start: Optional[Dict] = None,
               sources: Optional[Dict] = None) -> Dict[str, Any]:
    frames = [f for f in thread.get("frames") or [] if isinstance(f, dict)]
    # The headline names where a reader starts (the program's own innermost frame), not
    # libc's raise() under an abort.
    top = start or (frames[0] if frames else None)
    omitted = bool(thread.get("frames_omitted"))
    return {
        "number": number, "tid": thread.get("tid"), "status": _str(thread.get("status")) or "ok",
        "truncated": bool(thread.get("truncated")), "frames_omitted": thread.get("frames_omitted") or 0,
        "frames": [dict(_frame_vm(f, f is start), gap_before=omitted and view.gap_before(f, prev),
                        source=_source_vm((sources or {}).get(position)))
                   for position, (prev, f) in enumerate(zip([None] + frames, frames))],
        "top": view.frame_name(top) if top else "no frames",
        "top_location": view.frame_location(top) if top else "",
    }


def _registers(thread: Optional[Dict], fault_address: Optional[str]) -> List[Dict[str, Any]]:
    regs = (thread or {}).get("registers") or {}
    fault = _int(fault_address)
    return [{"name": str(k), "value": _str(v), "key": str(k) in _KEY_REGISTERS,
             "fault": fault is not None and fault > 0 and _int(v) == fault}
            for k, v in regs.items()]


def _position(threads: List[Dict], thread: Dict) -> int:
    return next(i for i, t in enumerate(threads) if t is thread) + 1


def _int(value) -> Optional[int]:
    try:
        return int(str(value), 0)
    except (TypeError, ValueError):
        return None


def _module_vm(m: Dict) -> Dict[str, Any]:
    status = m.get("status") or "ok"
    problem = None
    if status == "mismatch":
        problem = (f"build-id mismatch: the core loaded {m.get('build_id')}, the file found has "
                   f"{m.get('file_build_id')}; symbols and frames in this module may be wrong")
    elif status == "missing":
        problem = "file not found: no symbols for this module (pass --search-path or --sysroot)"
    path = _str(m.get("path")) or "?"
    return {"path": path, "base": os.path.basename(path) or path, "start": _str(m.get("start")),
            "end": _str(m.get("end")), "build_id": _str(m.get("build_id")),
            "file": _str(m.get("file")), "file_build_id": _str(m.get("file_build_id")),
            "debug_file": _str(m.get("debug_file")), "status": str(status), "problem": problem}


def _operand(path: str) -> str:
    """`path` quoted for sh and never read as an option: the crash id and core path come
    from summary.json and crash.json, and a folder named ``--gdb=sh`` would otherwise be an
    option of ``coredump gdb`` (POSIX.1 XBD §12.2, guideline 4: options begin with ``-``;
    ``./`` keeps the same path an operand)."""
    return shlex.quote("./" + path if path.startswith("-") else path)


def local_commands(crash_id: Optional[str], core_path: Optional[str] = None,
                   artifact_name: str = "coredump-artifacts") -> List[Tuple[str, str]]:
    """The shell commands that open this crash on a developer's machine, quoted for sh."""
    if crash_id:
        target = _operand(crash_id)
        return [("Go to the downloaded artifacts", f"cd {_operand(artifact_name)}"),
                ("Explain it at the terminal", f"coredump analyze {target}"),
                ("Open it in gdb, with the bundled binaries", f"coredump gdb {target}")]
    if core_path:
        target = _operand(str(core_path))
        return [("Explain it at the terminal", f"coredump analyze {target}"),
                ("Open it in gdb", f"coredump gdb {target}")]
    return []


def render_crash_html(crash: Dict, crash_id: Optional[str] = None,
                      links: Sequence[Tuple[str, Optional[str]]] = (),
                      commands: Optional[Sequence[Tuple[str, str]]] = None, index_href: Optional[str] = None,
                      artifact_name: str = "coredump-artifacts", sources: Optional[Dict] = None) -> str:
    """One crash as a standalone HTML page.

    `links` are (label, relative path) pairs such as ("crash.json", "crash.json"); paths
    that are not plain relative paths are dropped (``safe_href``). `sources`
    (``report.source.source_excerpts``) adds source lines under the crashing thread's frames.
    """
    crash = crash if isinstance(crash, dict) else {}
    signal = crash.get("signal") or {}
    process = crash.get("process") or {}
    threads = [t for t in crash.get("threads") or [] if isinstance(t, dict)]
    crashing = view.crashing_thread(crash)
    start = view.start_frame(crash)
    if commands is None:
        commands = local_commands(crash_id, (crash.get("core") or {}).get("path"), artifact_name)
    page = {
        "id": crash_id, "headline": view.headline(crash), "signature": _str(crash.get("signature")),
        "fingerprint": _str(crash.get("fingerprint")), "signal": signal,
        "reason": _str(crash.get("reason") or signal.get("description")),
        "assertion": _str(crash.get("assertion")), "classification": _str(crash.get("classification")),
        "process": process, "argv": " ".join(shlex.quote(str(a)) for a in process.get("argv") or []),
        "core": crash.get("core") or {},
        "crashing": _thread_vm(_position(threads, crashing), crashing, start, sources) if crashing else None,
        "others": [_thread_vm(i + 1, t) for i, t in enumerate(threads) if t is not crashing],
        "registers": _registers(crashing, signal.get("address")),
        "modules": [_module_vm(m) for m in crash.get("modules") or [] if isinstance(m, dict)],
        "warnings": [str(w) for w in crash.get("warnings") or []],
        "commands": list(commands),
        "links": [(label, href) for label, href in ((lbl, safe_href(p)) for lbl, p in links) if href],
        "index_href": safe_href(index_href), "schema": _str(crash.get("schema")),
    }
    page["problem_modules"] = [m for m in page["modules"] if m["problem"]]
    return _environment().get_template("crash.html").render(page=page, csp=_csp())


def _inner_href(path) -> Optional[str]:
    """``safe_href`` of a path that stays below the page's folder (no ``..`` segment)."""
    href = safe_href(path)
    return None if href is None or ".." in href.split("/") else href


def _group_vm(group: Dict, frames: int) -> Dict[str, Any]:
    entry, crash = group["members"][0]
    crash = crash or {}
    signal = crash.get("signal") or {}
    thread = view.crashing_thread(crash) or {}
    listed = [f for f in thread.get("frames") or [] if isinstance(f, dict)]
    # Start the excerpt one frame above where a reader starts, so an abort shows
    # "__assert_fail, check_balance, withdraw" rather than four libc frames.
    start = view.start_frame(crash)
    first = max(0, next((i for i, f in enumerate(listed) if f is start), 0) - 1)
    top = [_frame_vm(f, f is start) for f in listed[first:first + frames]]
    members, fingerprints, classes = [], [], []
    for entry, member in group["members"]:
        members.append({"id": _str(entry.get("id")), "href": safe_href(entry.get("report_html")),
                        "note": _str(entry.get("note")),
                        # A core stored without an analysis: its only artifact, so link it.
                        "core_href": _inner_href(entry.get("core")) if entry.get("stored", True) else None,
                        "pid": ((member or {}).get("process") or {}).get("pid"), "missing": member is None,
                        "expected": _str(entry.get("expected"))})
        fingerprint = _str((member or {}).get("fingerprint") or entry.get("fingerprint"))
        kind = _str((member or {}).get("classification"))
        fingerprints += [fingerprint] if fingerprint and fingerprint not in fingerprints else []
        classes += [kind] if kind and kind not in classes else []
    return {"signature": group["signature"], "count": len(group["members"]),
            "signal": _str(signal.get("name") or entry.get("signal")), "headline": view.headline(crash),
            "reason": _str(crash.get("reason") or signal.get("description")),
            "assertion": _str(crash.get("assertion")),
            "classification": ", ".join(classes) or None, "fingerprints": fingerprints,
            "executable": _str((crash.get("process") or {}).get("executable") or entry.get("executable")),
            "frames": top, "members": members, "expected": all(m["expected"] for m in members)}


def _when(value) -> Optional[str]:
    """An ISO-8601 or epoch timestamp shown as ``2024-05-01 12:00:00 UTC``-like text."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return str(value).replace("T", " ")


def _exit_text(status) -> Optional[str]:
    """POSIX shells report death by signal N as 128+N; subprocess as -N."""
    if not isinstance(status, int):
        return _str(status)
    from signal import Signals

    number = -status if status < 0 else status - 128 if 128 < status < 160 else None
    try:
        return f"{status} (killed by {Signals(number).name})" if number else str(status)
    except ValueError:
        return str(status)


def render_index_html(summary: Dict, crashes: Sequence[Tuple[Dict, Optional[Dict]]], frames: int = 4) -> str:
    """The job's page: every crash grouped by signature, most frequent first.

    `crashes` pairs each summary entry with its crash dict (None when unreadable).
    """
    summary = summary if isinstance(summary, dict) else {}
    groups = [_group_vm(g, frames) for g in view.group_crashes(crashes)]
    command = summary.get("command")
    if isinstance(command, (list, tuple)):
        command = " ".join(shlex.quote(str(a)) for a in command)
    page = {"command": _str(command), "host": _str(summary.get("host")),
            "started": _when(summary.get("started")), "finished": _when(summary.get("finished")),
            "exit_status": _exit_text(summary.get("exit_status")),
            "failed": summary.get("exit_status") not in (0, None),
            "groups": groups, "total": len(crashes), "ci": _ci_vm(summary.get("ci"))}
    return _environment().get_template("index.html").render(page=page, csp=_csp())


def _ci_vm(ci) -> Optional[Dict[str, Any]]:
    """summary.json's ``ci`` object for the page: text fields as they are (the template
    escapes them), links only when they are plain http(s) URLs."""
    if not isinstance(ci, dict) or not ci.get("provider"):
        return None
    text = {k: _str(ci.get(k)) for k in ("provider", "repository", "branch", "tag", "job", "build_number")}
    commit = _str(ci.get("commit"))
    pull = ci.get("pull_request")
    return {**text, "commit": commit, "commit_short": commit[:12] if commit else None,
            "job_href": safe_web_url(ci.get("job_url")), "pipeline_href": safe_web_url(ci.get("pipeline_url")),
            "pull_href": safe_web_url(pull), "pull": _str(pull) if pull and not safe_web_url(pull) else None}
