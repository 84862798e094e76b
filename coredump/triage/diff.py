"""
Crash diff
==========

Compare the crashes of two runs by fingerprint: which are new, gone and still present (a
CI gate: "no new crash signatures").
"""

from __future__ import annotations

import os
from pathlib import Path

from coredump.digest import sha256
from coredump.errors import CoreDumpError, MissingFileError
from coredump.jsondoc import read_document
from coredump.model import SUMMARY_SCHEMA
from coredump.record import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Dict, List, Optional, Tuple

__all__ = ("SUMMARY_SCHEMA", "RunCrash", "DiffEntry", "CrashDiff", "load_crashes", "diff_crashes", "diff_paths",
           "diff_to_dict")



@dataclass
class DiffEntry:
    """One fingerprint of one side or both: how often it crashed and the crash ids."""

    fingerprint: str
    signature: str
    base_ids: List[str] = field(default_factory=list)
    new_ids: List[str] = field(default_factory=list)
    classification: Optional[str] = None
    executables: List[str] = field(default_factory=list)


@dataclass
class RunCrash:
    """The crashes of one run that share a fingerprint."""

    fingerprint: str
    signature: str
    ids: List[str] = field(default_factory=list)
    classification: Optional[str] = None
    executables: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class CrashDiff:
    new: Tuple[DiffEntry, ...]
    gone: Tuple[DiffEntry, ...]
    still: Tuple[DiffEntry, ...]
    warnings: Tuple[str, ...] = ()

    @property
    def has_new(self) -> bool:
        return bool(self.new)


def _summary_path(path: Path) -> Path:
    if path.is_dir():
        path = path / "summary.json"
    if not path.is_file():
        raise MissingFileError(f"{path}: no such summary (give an artifact directory or its summary.json)")
    return path


def _fingerprint(entry: dict, base: Path, warnings: List[str]) -> Tuple[str, dict]:
    """The entry's fingerprint; older summaries without one are read from crash.json, and a
    crash known only by its signature gets the hash of that."""
    crash: dict = {}
    rel = entry.get("crash_json")
    if isinstance(rel, str) and not Path(rel).is_absolute() and ".." not in Path(rel).parts:
        try:
            crash = read_document(base / rel)
        except CoreDumpError as exc:
            warnings.append(str(exc))
    fp = entry.get("fingerprint") or crash.get("fingerprint")
    if isinstance(fp, str) and fp:
        return fp, crash
    sig = str(entry.get("signature") or crash.get("signature") or "")
    warnings.append(f"crash {entry.get('id')!r} has no fingerprint; its signature is hashed instead")
    return "sig:" + sha256(sig.encode()).hexdigest()[:16], crash


def load_crashes(path, warnings: Optional[List[str]] = None) -> Dict[str, RunCrash]:
    """The crashes of one run (an artifact directory or a summary.json), by fingerprint."""
    warnings = warnings if warnings is not None else []
    summary_path = _summary_path(Path(path))
    summary = read_document(summary_path, SUMMARY_SCHEMA)
    out: Dict[str, RunCrash] = {}
    for i, entry in enumerate(summary.get("crashes") or []):
        if not isinstance(entry, dict):
            warnings.append(f"{summary_path}: crash #{i} is not an object; skipped")
            continue
        if entry.get("expected"):
            continue  # a crash the job means to have (a death test, --expect) gates nothing
        fp, crash = _fingerprint(entry, summary_path.parent, warnings)
        item = out.setdefault(fp, RunCrash(fp, str(entry.get("signature") or crash.get("signature") or "?"),
                                            classification=crash.get("classification")))
        item.ids.append(str(entry.get("id", i)))
        exe = entry.get("executable")
        if exe and exe not in item.executables:
            item.executables.append(exe)
    return out


def diff_crashes(base: Dict[str, RunCrash], new: Dict[str, RunCrash], warnings=()) -> CrashDiff:
    """New, gone and still-present fingerprints, each list sorted by signature."""
    def merged(fp: str) -> DiffEntry:
        b, n = base.get(fp), new.get(fp)
        ref = n or b
        return DiffEntry(fp, ref.signature, list(b.ids) if b else [], list(n.ids) if n else [],
                         ref.classification, list(ref.executables))

    def order(fps):
        return tuple(sorted((merged(fp) for fp in fps), key=lambda e: (e.signature, e.fingerprint)))

    return CrashDiff(order(new.keys() - base.keys()), order(base.keys() - new.keys()),
                     order(new.keys() & base.keys()), tuple(warnings))


def diff_paths(base_path, new_path, allow_missing_base: bool = False) -> CrashDiff:
    """Diff two runs. A path that does not exist is a run without crashes, with a warning:
    `run` and `harvest` write no artifact directory when nothing crashed, so a green job
    (this one, or main's last) leaves nothing to download. A directory without a summary is
    an error, unless it is BASE and `allow_missing_base` says to take it as empty."""
    warnings: List[str] = []
    if not os.path.exists(base_path) and not os.path.exists(new_path):
        # a path mistyped, or both jobs' artifacts missing: nothing to compare, not "no new crash"
        raise MissingFileError(f"neither {base_path} nor {new_path} exists: nothing to compare")
    runs = []
    for label, path, lenient in (("BASE", base_path, allow_missing_base), ("NEW", new_path, False)):
        if not os.path.exists(path):
            warnings.append(f"{path}: does not exist; {label} taken as a run without crashes "
                            "(a job that crashed nothing writes no artifact directory)")
            runs.append({})
            continue
        try:
            runs.append(load_crashes(path, warnings))
        except MissingFileError:
            if not lenient:
                raise
            warnings.append(f"{path}: no summary; {label} taken as a run without crashes")
            runs.append({})
    return diff_crashes(runs[0], runs[1], warnings)


def _entry_dict(e: DiffEntry) -> dict:
    return {"fingerprint": e.fingerprint, "signature": e.signature, "classification": e.classification,
            "base_count": len(e.base_ids), "new_count": len(e.new_ids), "base_ids": e.base_ids,
            "new_ids": e.new_ids, "executables": e.executables}


def diff_to_dict(d: CrashDiff) -> dict:
    return {"schema": "coredump.diff/1", "new": [_entry_dict(e) for e in d.new],
            "gone": [_entry_dict(e) for e in d.gone], "still": [_entry_dict(e) for e in d.still],
            "warnings": list(d.warnings)}

