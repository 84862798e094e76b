"""
Report command
==============

``coredump report DIR_OR_CORE… [-o DIR]``: render index.html, <id>/report.html and
junit.xml after the fact, from artifact directories, crash.json files or raw cores, so
``run``, ``harvest`` and a developer share one renderer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import click

from coredump.errors import CoreDumpError, MissingFileError
from coredump.jsondoc import read_document
from coredump.model import CRASH_SCHEMA

__all__ = ("report", "build_report", "DEFAULT_OUTPUT")

DEFAULT_OUTPUT = "coredump-report"


def _is_artifacts(path: Path) -> bool:
    return path.is_dir() and ((path / "summary.json").is_file() or any(path.glob("*/crash.json")))


def _new_id(name: str, taken: Set[str]) -> str:
    """A folder name from a core or crash.json name: portable characters only, unique."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")[:60] or "crash"
    crash_id, n = base, 2
    while crash_id in taken:
        crash_id, n = f"{base}-{n}", n + 1
    taken.add(crash_id)
    return crash_id


def _analyze(core: Path) -> Dict:
    """Analyze a raw (or .zst-compressed) core; the analysis layer is imported lazily."""
    from coredump.analysis import analyze_core
    from coredump.report.json import crash_to_dict

    if core.suffix != ".zst":
        return crash_to_dict(analyze_core(str(core)))
    import tempfile

    import zstandard

    with tempfile.TemporaryDirectory(prefix="coredump-report-") as tmp:
        raw = Path(tmp) / core.stem
        with open(core, "rb") as src, open(raw, "wb") as dst:
            zstandard.ZstdDecompressor().copy_stream(src, dst)
        return crash_to_dict(analyze_core(str(raw)))


def _store_core(core: Path, folder: Path) -> str:
    """The core beside its report as core.zst (zstd, as ``run`` stores it)."""
    if core.suffix == ".zst":
        shutil.copyfile(core, folder / "core.zst")
    else:
        import zstandard

        with open(core, "rb") as src, open(folder / "core.zst", "wb") as dst:
            zstandard.ZstdCompressor(level=3).copy_stream(src, dst)
    return f"{folder.name}/core.zst"


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _collect(path: Path, taken: Set[str]) -> List[Tuple[str, Dict, Optional[Path]]]:
    """(id, crash dict, core file or None) for every crash an input names."""
    from coredump.report.render import load_summary

    if _is_artifacts(path):
        out = []
        for entry in load_summary(path).get("crashes") or []:
            crash_json = path / str(entry.get("crash_json") or f"{entry.get('id')}/crash.json")
            if crash_json.is_file():
                core = path / entry["core"] if entry.get("core") else None
                out.append((_new_id(str(entry.get("id") or crash_json.parent.name), taken),
                            read_document(crash_json, CRASH_SCHEMA), core if core and core.is_file() else None))
        return out
    if path.is_dir():
        raise MissingFileError(f"{path}: a directory without summary.json or */crash.json")
    if path.suffix == ".json":
        name = path.parent.name if path.name == "crash.json" else path.stem
        sibling = path.parent / "core.zst"
        return [(_new_id(name, taken), read_document(path, CRASH_SCHEMA), sibling if sibling.is_file() else None)]
    return [(_new_id(path.name, taken), _analyze(path), path)]


def _add_crash(folder: Path, crash: Dict, core: Optional[Path], note: str) -> Dict:
    """Write <id>/crash.json (and core.zst) and return the summary entry."""
    folder.mkdir()
    (folder / "crash.json").write_text(json.dumps(crash, indent=2, ensure_ascii=False) + "\n")
    stored = None
    if core is not None and core.name == "core.zst":
        _link_or_copy(core, folder / "core.zst")
        stored = f"{folder.name}/core.zst"
    elif core is not None:
        stored = _store_core(core, folder)
    return {"id": folder.name, "signature": crash.get("signature"),
            "signal": (crash.get("signal") or {}).get("name"),
            "executable": (crash.get("process") or {}).get("executable"),
            "crash_json": f"{folder.name}/crash.json", "report_html": None, "core": stored,
            "stored": stored is not None, "note": note}


def build_report(inputs, output=None):
    """Render the inputs; one artifact directory without `output` is rendered in place.
    Returns ``(RenderResult, crash dicts)``."""
    from coredump.report.render import SUMMARY_SCHEMA, load_summary, render_artifacts

    paths = [Path(p) for p in inputs]
    for p in paths:
        if not p.exists():
            raise MissingFileError(f"{p}: no such file or directory")
    if output is None and len(paths) == 1 and _is_artifacts(paths[0]):
        result = render_artifacts(paths[0])
        return result, [json.loads(p.with_name("crash.json").read_text()) for p in result.reports]
    out = Path(output or DEFAULT_OUTPUT)
    summary = load_summary(out)  # an absent directory has no summary and no crash.json
    if len(paths) == 1 and _is_artifacts(paths[0]):
        head = {k: v for k, v in load_summary(paths[0]).items() if k != "crashes"}
        summary = {**head, **{k: v for k, v in summary.items() if v is not None}}
    entries = summary.setdefault("crashes", [])
    taken = {str(e.get("id")) for e in entries} | ({p.name for p in out.iterdir()} if out.is_dir() else set())
    # Read (and analyse) every input before writing anything: an unreadable input leaves no
    # empty or half-filled output directory behind.
    collected = [(path, item) for path in paths for item in _collect(path, taken)]
    out.mkdir(parents=True, exist_ok=True)
    crashes = []
    for path, (crash_id, crash, core) in collected:
        entries.append(_add_crash(out / crash_id, crash, core, f"from {path}"))
        crashes.append(crash)
    summary.setdefault("schema", SUMMARY_SCHEMA)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return render_artifacts(out), crashes


def _history_page(db: str, output: Optional[str]) -> str:
    """``report --db``: history.html in `output` from the crash database."""
    import time

    from coredump.report.history_html import render_history_html, write_history_page
    from coredump.store.history.engine import db_errors
    from coredump.store.history.queries import DAY, latest_crashes, new_and_gone, top_crashes
    from coredump.store.history.record import open_database
    from coredump.store.history.url import resolve_url, shown_url

    url = resolve_url(db)
    engine = open_database(url)
    now = time.time()
    with db_errors(url):
        top = top_crashes(engine, now - 30 * DAY, now, limit=50)
        spans = new_and_gone(engine, now - 7 * DAY)
        fps = [r["fingerprint"] for r in top["signatures"] + spans["new"] + spans["gone"]]
        latest = latest_crashes(engine, fps)
    html = render_history_html(top, spans["new"], spans["gone"], latest, shown_url(url), now)
    return write_history_page(output or DEFAULT_OUTPUT, html)


@click.command("report")
@click.argument("inputs", nargs=-1, type=click.Path(), metavar="DIR_OR_CORE...")
@click.option("-o", "--output", type=click.Path(file_okay=False),
              help=f"Artifact directory to write (default: render one artifact directory in place, "
                   f"else ./{DEFAULT_OUTPUT}).")
@click.option("--db", metavar="URL", default=None,
              help="Instead: render history.html, the crash database's top signatures (crashes per day), "
                   "new this week and gone since ($COREDUMP_DB or the XDG data file when URL is 'default').")
def report(inputs, output, db):
    """Render HTML, JUnit XML (and GitHub annotations) from artifact directories,
    crash.json files or cores; or, with --db, the crash history page."""
    from coredump.report.annotations import emit_github
    from coredump.report.sanitize import clean_text

    if db is not None:
        if inputs:
            raise click.UsageError("--db renders the history page: give no DIR_OR_CORE with it")
        try:
            path = _history_page(None if db == "default" else db, output)
        except CoreDumpError as exc:
            raise click.ClickException(clean_text(exc)) from exc
        click.echo(f"crash history: {clean_text(path)}")
        return
    if not inputs:
        raise click.UsageError("give DIR_OR_CORE... (or --db URL)")
    try:
        result, crashes = build_report(inputs, output)
    except CoreDumpError as exc:
        raise click.ClickException(clean_text(exc)) from exc
    for warning in result.warnings:  # may quote crash ids and file names: crash data
        click.echo(f"warning: {clean_text(warning)}", err=True)
    for warning in emit_github(crashes):
        click.echo(f"warning: {clean_text(warning)}", err=True)
    click.echo(f"{len(result.reports)} crash report(s): {clean_text(result.index)}")
