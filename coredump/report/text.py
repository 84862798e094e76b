"""
Text
====

The terminal report: one compact ``#N  function (file:line)`` line per frame, the way
gdb and drgn print stacks, with crash data stripped of control characters.
"""

from __future__ import annotations

import os

from coredump.model import Crash, Frame, Thread, Trust
from coredump.report.sanitize import clean_text
from coredump.report.view import JIT_TAG, name_before_args, variable_text

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, List, Optional

__all__ = ("render_text", "render_summary", "render_diff_text", "format_frame", "format_excerpt", "use_color")

def use_color(stream) -> bool:
    """Never when NO_COLOR is set to a non-empty value (no-color.org: "when present and not an
    empty string"); always when FORCE_COLOR is (force-color.org; "0" and "false" say no, as
    Node and pytest read it), NO_COLOR winning as in pytest; else only on a TTY."""
    if os.environ.get("NO_COLOR"):
        return False
    force = os.environ.get("FORCE_COLOR")
    if force:
        return force.lower() not in ("0", "false")
    return hasattr(stream, "isatty") and stream.isatty()


class _Style:
    def __init__(self, color: bool):
        self.color = color

    def __call__(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text


def format_frame(f: Frame, style: Optional[_Style] = None) -> str:
    style = style or _Style(False)
    name = clean_text(name_before_args(f.function) if f.args is not None else f.function) if f.function else "??"
    where = ""
    # gdb's bt: `average (total=100, count=0) at fpe.c:6`; values are crash data, cleaned.
    args = f" ({format_args(f.args)})" if f.args is not None else ""
    if f.file and f.args is not None:
        where = f" at {clean_text(f.file)}:{f.line}" if f.line else f" at {clean_text(f.file)}"
    elif f.file:
        where = f" ({clean_text(f.file)}:{f.line})" if f.line else f" ({clean_text(f.file)})"
    elif f.module:
        off = f"+{f.module_offset:#x}" if f.module_offset is not None else ""
        where = f" ({clean_text(os.path.basename(f.module))}{off})"
    addr = "" if f.inline else f"{f.pc:#018x} in "
    tags = []
    if f.inline:
        tags.append("inlined")
    if f.tailcall:
        tags.append("tail call")
    if f.jit:
        tags.append(JIT_TAG)
    if f.trust in (Trust.SCAN, Trust.FP) and not f.inline:
        tags.append(f"found by {f.trust.description}")
    tag = style(f"  [{', '.join(tags)}]", "2") if tags else ""
    return f"#{f.index:<3} {addr}{style(name, '1')}{args}{where}{tag}"


def format_args(args) -> str:
    """``name=value, ...`` as gdb's bt prints arguments (``v=v@entry=6`` where the entry
    value is known and equal), cleaned for a terminal."""
    return ", ".join(clean_text(_arg(v)) for v in args)


def _arg(v) -> str:
    return variable_text(v.name, v.value, v.entry)


def format_excerpt(lines, line: int, indent: str = "      ", style: Optional[_Style] = None) -> List[str]:
    """Source lines under a frame, gdb's ``list`` numbering, the frame's line marked ``>``."""
    style = style or _Style(False)
    width = len(str(max(n for n, _ in lines))) if lines else 1
    return [indent + (style(f"> {n:>{width}}  {clean_text(text)}", "1") if n == line
                      else f"  {n:>{width}}  {clean_text(text)}") for n, text in lines]


def _thread_lines(i: int, t: Thread, crashing: bool, style: _Style,
                  sources: Optional[Dict] = None) -> List[str]:
    head = f"Thread {i + 1} (LWP {t.tid})" + (style(" — crashed", "31;1") if crashing else "")
    lines = [head]
    if t.status != "ok":
        lines.append(f"  ({t.status.replace('_', ' ')})")
    previous = None
    for position, f in enumerate(t.frames):
        # A capped walk keeps the top and the bottom of the stack with their real numbers:
        # the omitted stretch is where the numbering jumps.
        if previous is not None and f.index > previous + 1 and t.frames_omitted:
            lines.append(f"  ... {t.frames_omitted} frames omitted")
        lines.append("  " + format_frame(f, style))
        excerpt = (sources or {}).get(position) if crashing else None
        if excerpt is not None:
            lines += format_excerpt(excerpt.lines, excerpt.line, style=style)
        previous = f.index
    if t.frames_omitted and not any(b.index > a.index + 1 for a, b in zip(t.frames, t.frames[1:])):
        lines.append(f"  ... {t.frames_omitted} frames omitted")
    return lines


def render_text(crash: Crash, color: bool = False, sources: Optional[Dict] = None) -> str:
    """The whole report; `sources` (``report.source.source_excerpts``) puts source lines
    under the crashing thread's frames it has an excerpt for."""
    style = _Style(color)
    s = crash.signal
    p = crash.process
    argv = " ".join(clean_text(a) for a in p.argv) or clean_text(p.command or "")
    lines = [
        style(f"{s.name} ({s.code_name or 'no si_code'})", "31;1") + f" in pid {p.pid}: {argv}",
        f"  {clean_text(crash.reason or s.description)}",
    ]
    if crash.assertion:
        lines.append(f"  message: {clean_text(crash.assertion)}")
    if crash.signature:
        lines.append(f"  signature: {clean_text(crash.signature)}")
    if crash.classification:
        lines.append(f"  classification: {clean_text(crash.classification)}")
    if crash.fingerprint:
        lines.append(f"  fingerprint: {clean_text(crash.fingerprint)}")
    lines.append(f"  executable: {clean_text(p.executable or '?')}")
    lines.append("")
    order = list(range(len(crash.threads)))
    if crash.crashing_thread is not None:
        order.remove(crash.crashing_thread)
        order.insert(0, crash.crashing_thread)
    for i in order:
        lines += _thread_lines(i, crash.threads[i], i == crash.crashing_thread, style, sources)
        lines.append("")
    lines.append("Modules:")
    for m in crash.modules:
        note = _module_note(m, style)
        lines.append(f"  {m.start:#014x}-{m.end:#014x}  {m.build_id or '-':40}  {clean_text(m.path)}{note}")
    if crash.warnings:
        lines.append("")
        lines.append("Warnings:")
        lines += [f"  - {clean_text(w)}" for w in crash.warnings]
    return "\n".join(lines) + "\n"


_VDSO = "[vdso]"  # coredump.elf.modules.VDSO_NAME: the kernel's image, never a file


def _module_note(m, style) -> str:
    """What the modules table adds after a path: the file used when it is not that path (found
    by --search-path, --sysroot, a bundle or build-id), or why there is none."""
    if m.status == "mismatch":
        return style("  BUILD-ID MISMATCH", "31")
    if m.status == "missing":
        return "  (not in the core)" if m.path == _VDSO else "  (file not found)"
    if m.file and m.path != _VDSO and os.path.abspath(m.file) != m.path:
        return f"  -> {clean_text(m.file)}"
    return ""


# Source lines on each side of the line in a CI log: the statement and its neighbours, under
# one frame only (the start frame), so the summary stays a glance beside the step's output.
SUMMARY_RADIUS = 1


def render_summary(crash: Crash, max_frames: int = 5, sources: Optional[Dict] = None) -> str:
    """A few lines for a CI log: signal, reason, the crashing thread's top frames, down to
    the program's own code when libc or libstdc++ frames come first (at most 12); with
    `sources`, three lines of source under the last frame it has an excerpt for (the start
    frame, when it is not frame 0)."""
    s = crash.signal
    lines = [f"{s.name} in {clean_text(crash.process.executable or '?')} (pid {crash.process.pid}): "
             f"{clean_text(crash.reason or s.description)}"]
    if crash.assertion:
        lines.append(f"  message: {clean_text(crash.assertion)}")
    if crash.crashing_thread is not None:
        frames = crash.threads[crash.crashing_thread].frames
        exe = crash.process.executable
        own = next((i for i, f in enumerate(frames) if f.module == exe and f.function), 0)
        shown = min(12, max(max_frames, own + 2))
        excerpt_at = max((p for p in (sources or {}) if p < shown), default=None)
        for position, f in enumerate(frames[:shown]):
            lines.append("    " + format_frame(f))
            if position == excerpt_at:
                excerpt = sources[position]
                lines += format_excerpt(excerpt.around(SUMMARY_RADIUS), excerpt.line, indent="        ")
    return "\n".join(lines)


def render_diff_text(d) -> str:
    """A ``triage.diff.CrashDiff`` for the terminal; signatures, fingerprints and warnings
    come from summary.json and crash.json files and are cleaned like every crash field.

    >>> from coredump.triage.diff import CrashDiff, DiffEntry
    >>> print(render_diff_text(CrashDiff((DiffEntry("ab12", "SIGSEGV in f", [], ["c1"]),), (), ())), end="")
    new crashes: 1, gone: 0, still present: 0
    NEW    ab12  SIGSEGV in f  (1 crash)
    """
    lines = [f"new crashes: {len(d.new)}, gone: {len(d.gone)}, still present: {len(d.still)}"]
    for label, entries, count in (("NEW", d.new, lambda e: len(e.new_ids)),
                                  ("GONE", d.gone, lambda e: len(e.base_ids)),
                                  ("STILL", d.still, lambda e: len(e.new_ids))):
        for e in entries:
            n = count(e)
            lines.append(f"{label:<6} {clean_text(e.fingerprint)}  {clean_text(e.signature)}  "
                         f"({n} crash{'es' if n != 1 else ''})")
    lines.extend(f"warning: {clean_text(w)}" for w in d.warnings)
    return "\n".join(lines) + "\n"
