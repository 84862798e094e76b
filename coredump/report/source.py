"""
Source context
==============

The lines of source around frame 0 and the "start here" frame (``view.start_frame``) of the
crashing thread, as the text, HTML and CI-log reports show them. The file is whatever the
frame's ``source_path`` names (``symbols.sources`` reads it); its text is crash data: bytes
that are no UTF-8 are spelled ``\\xNN`` (``jsondoc.escape_undecodable``) and every renderer
escapes or cleans the lines.
"""

from __future__ import annotations

from coredump.jsondoc import escape_undecodable
from coredump.record import dataclass
from coredump.report import view

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, List, Tuple

__all__ = ("Excerpt", "excerpt_lines", "source_excerpts", "CONTEXT_RADIUS", "MAX_LINE_CHARS")

# Lines shown on each side of a frame's line: 5 in all, as the issue asks.
CONTEXT_RADIUS = 2
# A generated or minified line is cut: an excerpt stays a few screen lines.
MAX_LINE_CHARS = 400
# gcc and gdb count a tab as moving to the next multiple of 8 columns.
_TAB = 8


@dataclass(frozen=True)
class Excerpt:
    """``lines`` are (line number, text) pairs around ``line``; ``path`` is the file read,
    ``stored`` true when it is the copy an artifact directory keeps."""

    path: str
    line: int
    lines: Tuple[Tuple[int, str], ...]
    stored: bool = False

    def around(self, radius: int) -> Tuple[Tuple[int, str], ...]:
        """The lines within `radius` of the frame's line (a shorter excerpt for a log)."""
        return tuple((n, text) for n, text in self.lines if abs(n - self.line) <= radius)


def _decode(raw: bytes) -> str:
    text = escape_undecodable(raw.rstrip(b"\r").decode("utf-8", "surrogateescape")).expandtabs(_TAB)
    return text if len(text) <= MAX_LINE_CHARS else text[:MAX_LINE_CHARS] + "…"


def excerpt_lines(data: bytes, line: int, radius: int = CONTEXT_RADIUS) -> Tuple[Tuple[int, str], ...]:
    """Lines ``line - radius`` to ``line + radius`` (1-based, as DWARF line numbers, DWARF 5
    §6.2.2) of `data`; empty when `line` is past its end.

    >>> excerpt_lines(b"a\\nb\\nc\\xff\\nd\\n", 3, 1)
    ((2, 'b'), (3, 'c\\\\xff'), (4, 'd'))
    """
    first, last = max(1, line - radius), line + radius
    rows = data.split(b"\n", last)  # the lines up to `last`, then the rest in one piece
    if len(rows) <= last and rows[-1] == b"":
        rows.pop()  # the empty string after the final newline is no line
    rows = rows[:last]
    if len(rows) < line:
        return ()
    return tuple((first + i, _decode(raw)) for i, raw in enumerate(rows[first - 1:]))


def _frames(crash: Dict) -> List[Tuple[int, Dict]]:
    """(position in the crashing thread, frame) of frame 0 and the start frame."""
    thread = view.crashing_thread(crash) or {}
    frames = thread.get("frames") if isinstance(thread.get("frames"), list) else []
    start = view.start_frame(crash)
    return [(i, f) for i, f in enumerate(frames) if isinstance(f, dict) and (i == 0 or f is start)]


def source_excerpts(crash: Dict, finder, radius: int = CONTEXT_RADIUS) -> Dict[int, Excerpt]:
    """{position in the crashing thread's frames: Excerpt} for frame 0 and the start frame
    whose ``source_path`` `finder` (a ``symbols.sources.SourceFinder``) can read."""
    out: Dict[int, Excerpt] = {}
    for position, frame in _frames(crash if isinstance(crash, dict) else {}):
        line = frame.get("line")
        if not isinstance(line, int) or isinstance(line, bool) or line < 1:
            continue
        found = finder.find(frame.get("source_path"))
        lines = excerpt_lines(found.data, line, radius) if found is not None else ()
        if lines:
            out[position] = Excerpt(found.path, line, lines, found.stored)
    return out
