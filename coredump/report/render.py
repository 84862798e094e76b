"""
Render
======

Fill an artifact directory (DESIGN.md "Artifact directory") with its human-facing
files: index.html, <id>/report.html and junit.xml, from summary.json and each
<id>/crash.json; summary.json's ``report_html`` fields are updated to match.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from coredump.errors import MissingFileError, StorageError
from coredump.jsondoc import crash_type_error, dumps_document, read_document
from coredump.model import SUMMARY_SCHEMA
from coredump.record import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, List, Optional, Tuple

__all__ = ("RenderResult", "render_artifacts", "load_summary", "SUMMARY_SCHEMA")



@dataclass
class RenderResult:
    index: Path
    junit: Path
    reports: List[Path] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def _inside(root: Path, relative) -> Optional[Path]:
    """`relative` resolved under root, or None when it is absent or points outside it."""
    if not relative or not isinstance(relative, str) or os.path.isabs(relative):
        return None
    path = (root / relative).resolve()
    return path if path == root or root in path.parents else None


def _discover(root: Path) -> Dict:
    """A summary for a directory that has <id>/crash.json files but no summary.json."""
    entries = [{"id": p.parent.name, "crash_json": f"{p.parent.name}/crash.json",
                "core": f"{p.parent.name}/core.zst" if (p.parent / "core.zst").exists() else None}
               for p in sorted(root.glob("*/crash.json"))]
    return {"schema": SUMMARY_SCHEMA, "crashes": entries}


def load_summary(root: Path) -> Dict:
    path = root / "summary.json"
    if not path.exists():
        return _discover(root)
    summary = read_document(path)
    if not isinstance(summary.get("crashes", []), list):
        raise StorageError(f"{path} is not a {SUMMARY_SCHEMA} document")
    return summary


def _load_crash(root: Path, entry: Dict, warnings: List[str]) -> Optional[Dict]:
    crash_id = entry.get("id")
    path = _inside(root, entry.get("crash_json") or (f"{crash_id}/crash.json" if crash_id else None))
    if path is None or not path.is_file():
        warnings.append(f"crash {crash_id}: no crash.json")
        return None
    try:
        crash = read_document(path)
    except StorageError as exc:
        warnings.append(f"crash {crash_id}: {exc}")
        return None
    problem = crash_type_error(crash)  # the renderers read these fields by their schema type
    if problem:
        warnings.append(f"crash {crash_id}: {path.name} not rendered: {problem}")
        return None
    return crash


def _write(path: Path, text: str) -> Dict:
    """Write through a temporary file and rename, so a reader never sees half a page;
    returns the ``{"size", "sha256"}`` summary.json records of it."""
    data = text.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _stored_excerpts(root: Path, crash: Dict):
    """Source lines from the copies the artifact directory holds (crash.json's ``sources``),
    and only from them: a page that is published shows nothing else of this machine."""
    from coredump.report.source import source_excerpts
    from coredump.symbols.sources import SourceFinder, stored_sources

    return source_excerpts(crash, SourceFinder(stored=stored_sources(crash, str(root)), roots=[str(root)],
                                               stored_root=str(root)))


def _crash_page(root: Path, entry: Dict, crash: Dict) -> Tuple[str, Path, Dict]:
    from coredump.report.html import render_crash_html

    crash_id = str(entry.get("id") or "")
    folder = _inside(root, crash_id) if crash_id else None
    if folder is None or folder == root:
        raise StorageError(f"crash id {crash_id!r} does not name a folder of {root}")
    folder.mkdir(exist_ok=True)
    links = [("crash.json", os.path.relpath(root / str(entry.get("crash_json") or ""), folder))]
    core = _inside(root, entry.get("core"))
    if core is not None and core.exists():
        links.append((core.name, os.path.relpath(core, folder)))
    html = render_crash_html(crash, crash_id, links=links, index_href="../index.html",
                             artifact_name=root.name, sources=_stored_excerpts(root, crash))
    return f"{crash_id}/report.html", folder / "report.html", _write(folder / "report.html", html)


def _index_entry(root: Path, entry: Dict, crash: Optional[Dict]) -> Dict:
    """The entry as index.html sees it: without an analysis, the stored core is what it links,
    so ``core`` is kept only when it names a file inside the directory."""
    if crash is not None:
        return entry
    core = _inside(root, entry.get("core"))
    rel = core.relative_to(root).as_posix() if core is not None and core.is_file() else None
    return dict(entry, core=rel)


def render_artifacts(artifact_dir) -> RenderResult:
    """Write index.html, <id>/report.html and junit.xml into `artifact_dir` and record
    each report's relative path in summary.json. Unreadable crash.json files become
    warnings and an index entry without a link, never an exception."""
    from coredump.report.html import render_index_html
    from coredump.report.junit import render_junit

    root = Path(artifact_dir).resolve()
    if not root.is_dir():
        raise MissingFileError(f"{artifact_dir}: not a directory")
    summary = load_summary(root)
    result = RenderResult(root / "index.html", root / "junit.xml")
    pairs = []
    # `coredump fetch` checks each page against these (the crash.json digests are store/artifacts.py's).
    digests = summary.get("digests") if isinstance(summary.get("digests"), dict) else {}
    for entry in summary.get("crashes") or []:
        if not isinstance(entry, dict):
            continue
        crash = _load_crash(root, entry, result.warnings)
        entry["report_html"] = None
        if crash is not None:
            try:
                entry["report_html"], page, digests[entry["report_html"]] = _crash_page(root, entry, crash)
                result.reports.append(page)
            except StorageError as exc:
                result.warnings.append(str(exc))
        pairs.append((_index_entry(root, entry, crash), crash))
    digests["index.html"] = _write(result.index, render_index_html(summary, pairs))
    digests["junit.xml"] = _write(result.junit, render_junit([(e.get("id"), c, e) for e, c in pairs]))
    summary["digests"] = digests
    summary.setdefault("schema", SUMMARY_SCHEMA)
    _write(root / "summary.json", dumps_document(summary) + "\n")
    return result
