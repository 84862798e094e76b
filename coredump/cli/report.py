"""
Report command
==============

``coredump report DIR_OR_CORE… [-o DIR]``: render index.html, <id>/report.html and
junit.xml after the fact, from artifact directories, crash.json files or raw cores, so
``run``, ``harvest`` and a developer share one renderer.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import click

from coredump.cli.errors import handle_errors
from coredump.errors import CoreDumpError, MissingFileError, StorageError
from coredump.jsondoc import dumps_document, read_document
from coredump.model import CRASH_SCHEMA

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import BinaryIO, Dict, List, Optional, Set, Tuple

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
    """Analyze a raw (or .zst-compressed) core, the latter decompressed within the limits of
    ``store.bundle.decompress_to`` and named by the user's file; imported lazily."""
    from coredump.analysis import analyze_core
    from coredump.report.json import crash_to_dict
    from coredump.store.bundle import open_input

    with open_input(str(core)) as (core_path, _overrides):
        return crash_to_dict(analyze_core(core_path, name=str(core) if core_path != str(core) else None))


def _store_core(core: BinaryIO, folder: Path) -> str:
    """The core beside its report as core.zst (zstd, as ``run`` stores it), copied from the
    file opened once (a compressed one as it is)."""
    import zstandard

    from coredump.store.bundle import ZSTD_MAGIC

    compressed = core.read(len(ZSTD_MAGIC)) == ZSTD_MAGIC
    core.seek(0)
    with open(folder / "core.zst", "wb") as dst:
        if compressed:
            shutil.copyfileobj(core, dst, 1 << 20)
        else:
            zstandard.ZstdCompressor(level=3).copy_stream(core, dst)
    return f"{folder.name}/core.zst"


def _open_inside(root: Path, relative, what: str, crash_id: str, warnings: List[str]) -> Optional[BinaryIO]:
    """A file a summary.json entry names, opened once inside `root` (store.safe_extract
    rules: no absolute path, ``..`` or symlink); None and a warning when it is refused."""
    from coredump.store.safe_extract import open_inside

    try:
        return open_inside(root, relative)
    except StorageError as exc:
        warnings.append(f"crash {crash_id}: {what} not copied: {exc}")
        return None


# files/<build-id>/<name> and sources/<sha256>/<name>: what a summary entry's "files" may name
# (store/artifacts.py's and store/sources.py's layouts).
_BUNDLED = re.compile(r"(files/[0-9a-f]{2,128}|sources/[0-9a-f]{64})/(?!\.\.?$)[A-Za-z0-9._+-]{1,255}")


def _bundled(root: Path, entry: Dict, crash_id: str, warnings: List[str]) -> List[Tuple[str, BinaryIO]]:
    """The bundled binaries a summary entry names (``files/<build-id>/<name>``), each opened
    once inside `root`; a name of another shape is refused with a warning."""
    names = entry.get("files") if isinstance(entry.get("files"), list) else []
    out = []
    for rel in names:
        if not isinstance(rel, str) or not _BUNDLED.fullmatch(rel):
            warnings.append(f"crash {crash_id}: bundled file {rel!r} not copied: not files/<build-id>/<name> "
                            "or sources/<sha256>/<name>")
            continue
        opened = _open_inside(root, rel, "bundled file", crash_id, warnings)
        if opened is not None:
            out.append((rel, opened))
    return out


def _collect_entry(root: Path, entry, taken: Set[str], warnings: List[str]):
    """(id, crash dict, open core or None, bundled files) for one summary.json entry, or None (warned)."""
    if not isinstance(entry, dict):
        warnings.append(f"summary.json: a crash entry is not an object ({type(entry).__name__}); skipped")
        return None
    crash_id = str(entry.get("id") or "?")
    crash_json = entry.get("crash_json") or (f"{crash_id}/crash.json" if entry.get("id") else None)
    opened = _open_inside(root, crash_json, "crash.json", crash_id, warnings)
    if opened is None:
        return None
    with opened:
        try:
            crash = read_document(root / str(crash_json), CRASH_SCHEMA, file=opened)
        except StorageError as exc:
            warnings.append(f"crash {crash_id}: {exc}")
            return None
    core = entry.get("core")
    core = _open_inside(root, core, "core", crash_id, warnings) if core is not None else None
    files = _bundled(root, entry, crash_id, warnings)
    return _new_id(str(entry.get("id") or Path(str(crash_json)).parent.name), taken), crash, core, files


def _collect(path: Path, taken: Set[str], warnings: List[str]) -> List[Tuple]:
    """(id, crash dict, core opened for reading or None, [(files/... name, opened file)]) for
    every crash an input names. Names in summary.json are hostile: only files inside the
    input directory are read."""
    from coredump.report.render import load_summary

    if _is_artifacts(path):
        found = (_collect_entry(path, e, taken, warnings) for e in load_summary(path).get("crashes") or [])
        return [item for item in found if item is not None]
    if path.is_dir():
        raise MissingFileError(f"{path}: a directory without summary.json or */crash.json")
    if path.suffix == ".json":
        name = path.parent.name if path.name == "crash.json" else path.stem
        crash = read_document(path, CRASH_SCHEMA)
        sibling = os.path.lexists(path.parent / "core.zst")
        core = _open_inside(path.parent, "core.zst", "core", name, warnings) if sibling else None
        return [(_new_id(name, taken), crash, core, [])]
    crash = _analyze(path)
    return [(_new_id(path.name, taken), crash, open(path, "rb"), [])]


def _field(crash: Dict, key: str, name: str):
    """crash[key][name] when crash.json has that shape (it is hostile input), else None."""
    value = crash.get(key)
    return value.get(name) if isinstance(value, dict) else None


def _digest(path: Path) -> Dict:
    from coredump.store.hashing import hash_file

    return {"size": path.stat().st_size, "sha256": hash_file(str(path))}


def _add_files(out: Path, files: List[Tuple[str, BinaryIO]]) -> Dict[str, Dict]:
    """Copy bundled binaries to ``out/files/<build-id>/<name>`` (once: one build-id, one
    file) from the files opened; their digests, for `coredump fetch` to check."""
    digests = {}
    for rel, opened in files:
        target = out / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as dst:
                shutil.copyfileobj(opened, dst, 1 << 20)
        digests[rel] = _digest(target)
    return digests


def _add_crash(out: Path, crash_id: str, crash: Dict, core: Optional[BinaryIO], files, note: str) -> Dict:
    """Write <id>/crash.json (and core.zst, and the bundled files) and return the summary
    entry, with the digests `coredump fetch` checks."""
    folder = out / crash_id
    folder.mkdir()
    (folder / "crash.json").write_text(dumps_document(crash) + "\n")
    stored = _store_core(core, folder) if core is not None else None
    file_digests = _add_files(out, files)
    core_digest = _digest(out / stored) if stored else {}
    return {"id": folder.name, "signature": crash.get("signature"), "fingerprint": crash.get("fingerprint"),
            "signal": _field(crash, "signal", "name"),
            "executable": _field(crash, "process", "executable"),
            "crash_json": f"{folder.name}/crash.json", "report_html": None, "core": stored,
            "stored": stored is not None, "note": note, "files": sorted(file_digests),
            "file_digests": file_digests, "size": core_digest.get("size"), "sha256": core_digest.get("sha256")}


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
        return result, [read_document(p.with_name("crash.json")) for p in result.reports]
    out = Path(output or DEFAULT_OUTPUT)
    summary = load_summary(out)  # an absent directory has no summary and no crash.json
    if len(paths) == 1 and _is_artifacts(paths[0]):
        head = {k: v for k, v in load_summary(paths[0]).items() if k != "crashes"}
        summary = {**head, **{k: v for k, v in summary.items() if v is not None}}
    entries = summary.setdefault("crashes", [])
    taken = {str(e.get("id")) for e in entries} | ({p.name for p in out.iterdir()} if out.is_dir() else set())
    # Read (and analyse) every input before writing anything: an unreadable input leaves no
    # empty or half-filled output directory behind.
    warnings: List[str] = []
    collected = []
    try:
        collected += [(path, item) for path in paths for item in _collect(path, taken, warnings)]
        out.mkdir(parents=True, exist_ok=True)
        crashes = []
        added = []
        for path, (crash_id, crash, core, files) in collected:
            added.append(_add_crash(out, crash_id, crash, core, files, f"from {path}"))
            crashes.append(crash)
        entries += added
    finally:
        for _path, (_id, _crash, core, files) in collected:
            for opened in [core] + [f for _, f in files]:
                if opened is not None:
                    opened.close()
    digests = summary.get("digests") if isinstance(summary.get("digests"), dict) else {}
    summary["digests"] = {**digests, **{e["crash_json"]: _digest(out / e["crash_json"]) for e in added}}
    summary.setdefault("schema", SUMMARY_SCHEMA)
    (out / "summary.json").write_text(dumps_document(summary) + "\n")
    result = render_artifacts(out)
    result.warnings[:0] = warnings
    return result, crashes


def _history_page(db: str, output: Optional[str], link_bases=()) -> str:
    """``report --db``: history.html in `output` from the crash database."""
    import time

    from coredump.report.history_html import render_history_html, write_history_page
    from coredump.store.history.queries import DAY, latest_crashes, new_and_gone, top_crashes
    from coredump.store.history.reader import open_reader
    from coredump.store.history.url import resolve_url, shown_url

    url = resolve_url(db)
    now = time.time()
    with open_reader(url) as reader:
        top = top_crashes(reader, now - 30 * DAY, now, limit=50)
        spans = new_and_gone(reader, now - 7 * DAY)
        fps = [r["fingerprint"] for r in top["signatures"] + spans["new"] + spans["gone"]]
        latest = latest_crashes(reader, fps)
    html = render_history_html(top, spans["new"], spans["gone"], latest, shown_url(url), now, link_bases)
    return write_history_page(output or DEFAULT_OUTPUT, html)


def _link_bases(ctx, param, values):
    from coredump.report.history_links import parse_link_base

    try:
        return tuple(parse_link_base(v) for v in values)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


@click.command("report")
@click.argument("inputs", nargs=-1, type=click.Path(), metavar="DIR_OR_CORE...")
@click.option("-o", "--output", type=click.Path(file_okay=False),
              help=f"Artifact directory to write (default: render one artifact directory in place, "
                   f"else ./{DEFAULT_OUTPUT}).")
@click.option("--db", metavar="URL", default=None,
              help="Instead: render history.html, the crash database's top signatures (crashes per day), "
                   "new this week and gone since ($COREDUMP_DB or the XDG data file when URL is 'default').")
@click.option("--link-base", "link_bases", multiple=True, metavar="S3PREFIX=URL", callback=_link_bases,
              help="With --db: open crashes stored under S3PREFIX in a browser at URL + the key below it "
                   "(CloudFront, an S3 website endpoint: s3://ci/crashes=https://crashes.example.com), or in the "
                   "S3 console (s3://ci/crashes=console:REGION). Repeatable; the longest prefix wins.")
@handle_errors
def report(inputs, output, db, link_bases):
    """Render HTML, JUnit XML (and GitHub annotations) from artifact directories,
    crash.json files or cores; or, with --db, the crash history page."""
    from coredump.report.annotations import emit_github
    from coredump.report.sanitize import clean_text

    if link_bases and db is None:
        raise click.UsageError("--link-base applies to the history page: give --db with it")
    if db is not None:
        if inputs:
            raise click.UsageError("--db renders the history page: give no DIR_OR_CORE with it")
        try:
            path = _history_page(None if db == "default" else db, output, link_bases)
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
