"""
Harvest
=======

Find the cores a job left, analyze each in-process, print a short summary, and store
it in the artifact directory. The raw core is removed only after its compressed copy
is verified; whatever fails, it stays where it was and the summary says so.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from coredump.capture.console import echo as _stderr
from coredump.capture.core_pattern import CorePattern, read_core_pattern
from coredump.capture.find import Found, find_core_entries
from coredump.capture.opened import SETTLE_QUIET, SETTLE_TIMEOUT, look_at, open_found, unlink_if_same
from coredump.capture.store_core import format_size, guest_pid, process_core
from coredump.errors import CoreDumpError, MissingFileError, StorageError
from coredump.record import dataclass, field
from coredump.store.artifacts import DEFAULT_DIR, DEFAULT_MODE, ArtifactDir, CrashRecord

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Any, Callable, List, Optional, Sequence

    from coredump.capture.store_core import Echo

__all__ = ("HarvestOptions", "HarvestResult", "harvest", "process_core", "format_size")


@dataclass(frozen=True)
class HarvestOptions:
    """What to search and how to store: ``paths`` are directory trees searched for cores
    (default: the working directory), ``core_dirs`` extra directories."""

    output: str = DEFAULT_DIR
    paths: Sequence[str] = (".",)
    core_dirs: Sequence[str] = ()
    keep_cores: bool = False
    bundle_binaries: bool = True
    # Copy the crashing threads' source files into sources/ (store/sources.py).
    store_sources: bool = True
    max_core_size: Optional[int] = None
    analyze_options: Any = None
    upload: Optional[str] = None
    # The permission bits of stored files (directories get x where r is set): private by
    # default, since a core holds the process's memory and environment.
    mode: int = DEFAULT_MODE
    # --expect rules (signature globs, fingerprints); .coredump-expect adds its own.
    expect: Sequence[str] = ()
    # The crash database (--db; else $COREDUMP_DB): the job is recorded there when set.
    db: Optional[str] = None
    settle_quiet: float = SETTLE_QUIET
    settle_timeout: float = SETTLE_TIMEOUT
    upload_timeout: Optional[float] = None  # seconds for the whole upload; None: the store's default


@dataclass
class HarvestResult:
    """The crashes stored and the problems met; ``ok`` is False when harvesting could not
    do its job (artifact directory unwritable, a core not stored for a failure)."""

    records: List[CrashRecord] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)
    summary: Optional[str] = None

    @property
    def ok(self) -> bool:
        return not self.errors


def _cleaned(echo: Echo) -> Echo:
    """`echo` of lines with no control character: they hold file names found on disk and
    text from cores, which must not move the cursor, retitle a terminal or start a CI
    runner's workflow command (``::error::``) on a line of their own."""
    from coredump.report.sanitize import clean_text

    return lambda line: echo(clean_text(line))


def _remove_originals(records: Sequence[CrashRecord], echo: Echo) -> None:
    """Remove each core that was stored whole and verified, only while its path still names
    the inode stored, unchanged (``opened.unlink_if_same``)."""
    for r in records:
        if not r.kept and r.look is not None:
            why = unlink_if_same(r.source, r.look)
            if why is not None:
                echo(f"coredump: {r.source} was stored but not removed: {why}")


def _piped(pattern: Optional[CorePattern], since: float, tmpdir: str, echo: Echo, quiet: bool) -> List[str]:
    """Cores read back from the program core_pattern pipes to, and always one line saying
    so: a crash in a step that passed must not vanish into the pipe unsaid. The details
    are printed too unless `quiet` (a step that succeeded) and nothing was read back."""
    if pattern is None or not pattern.is_pipe:
        return []
    from coredump.capture.piped import read_back, summary_line

    got = read_back(pattern, since, tmpdir)
    if got.cores or not quiet:
        for message in got.messages:
            echo(f"coredump: {message}")
    echo(f"coredump: {summary_line(pattern, got)}")
    return got.cores


def _split_foreign(cores: List[tuple], foreign: Optional[Callable], shared: Callable[[str], bool],
                   echo: Echo) -> List[tuple]:
    """The cores `foreign` does not reject; each rejected one is left untouched, said once.
    A core in a shared directory (``shared(path)``) must be proven the step's. The notes
    are read through the descriptor of the file found, never by following the path."""
    if foreign is None:
        return cores
    from coredump.capture.owner import read_core_ids

    own = []
    for path, look in cores:
        try:
            with open_found(path, look) as core:
                ids = read_core_ids(core.fd_path)
        except StorageError as exc:
            echo(f"coredump: {exc}")
            continue
        why = foreign(ids, shared=shared(path))
        if why is None:
            own.append((path, look))
        else:
            echo(f"coredump: {path}: not this step's ({why}); left in place")
    return own


def _shared_test(options: HarvestOptions, pattern: Optional[CorePattern]) -> Callable[[str], bool]:
    """Whether a core lies in a directory other jobs write cores into: a --core-dir, or the
    directory an absolute core_pattern names (not the job's own working tree)."""
    dirs = list(options.core_dirs)
    if pattern is not None and not pattern.is_pipe and pattern.is_absolute:
        dirs.append(pattern.directory or "/")
    roots = []
    for d in dirs:
        try:
            roots.append(os.path.join(os.path.realpath(d), ""))
        except OSError:
            continue

    def shared(path: str) -> bool:
        try:
            where = os.path.realpath(os.path.dirname(path))
        except OSError:
            return True
        return any(os.path.join(where, "").startswith(r) for r in roots)
    return shared


def _search_roots(options: HarvestOptions) -> List[str]:
    """The directories to search; MissingFileError for one that does not exist."""
    roots = list(options.paths) + list(options.core_dirs)
    for flag, dirs in (("--path", options.paths), ("--core-dir", options.core_dirs)):
        for d in dirs:
            if not os.path.isdir(d):
                raise MissingFileError(f"{flag} {d}: no such directory")
    return roots


def _search(options: HarvestOptions, since: float, pattern, artifacts: ArtifactDir, echo: Echo) -> List[tuple]:
    """The cores found, less those git tracks when every age counts (no --since: a
    repository's core fixtures are old); unreadable candidates are named."""
    found: Found = find_core_entries(_search_roots(options), int(since * 1e9), pattern, exclude=[artifacts.root])
    for path, why in found.unreadable:
        echo(f"coredump: {path}: cannot read it ({why}); it may be a core of another user "
             "(run harvest as its owner or as root to collect it)")
    cores = found.cores
    if since or not cores:
        return cores
    from coredump.capture.tracked import find_tracked

    tracked = find_tracked(p for p, _look in cores)
    for path in sorted(tracked.paths):
        echo(f"coredump: {path}: tracked by git, a file of the checkout; left in place")
    for directory, why in tracked.unknown.items():
        echo(f"coredump: cannot tell which files git tracks in {directory} ({why}); the cores there are "
             "left in place")
    return [(p, look) for p, look in cores
            if p not in tracked.paths and os.path.dirname(p) not in tracked.unknown]


def _process_all(cores: List[tuple], artifacts: ArtifactDir, options: HarvestOptions, echo: Echo,
                 result: HarvestResult, step: tuple = (None, None), pattern: Optional[CorePattern] = None) -> None:
    """Every core, guest cores first (qemu writes them before it dies, so the emulator's can
    name them); one core's failure is recorded and the next is processed. `step`: the
    step's exit status and start, where known (a death test's verdict needs them)."""
    from coredump.record import replace
    from coredump.triage.expect import load_expect_rules

    guests, seen = {}, {}
    try:
        expect = load_expect_rules(options.expect, os.getcwd())
    except OSError:  # no working directory any more: --expect rules only
        expect = load_expect_rules(options.expect, "/nonexistent")
    expect = replace(expect, step_status=step[0], step_started=step[1],
                     search=tuple(os.path.abspath(p) for p in options.paths))
    for path, look in sorted(cores, key=lambda c: guest_pid(c[0]) is None):
        try:
            record = process_core(path, artifacts, options, echo, guests, found=look, seen=seen, expect=expect,
                                  cwd=pattern.dumping_cwd(path) if pattern is not None else None)
        except Exception as exc:  # noqa: BLE001 - a bug on one core must not cost the others
            record = CrashRecord(id=artifacts.new_id(None, None), source=path, failed=True)
            record.add_note(f"{type(exc).__name__} while storing it: {exc}; the core stays at {path}")
            echo(f"coredump: error: {path}: {record.note}")
        if record is None:
            continue
        if guest_pid(path) is not None:
            guests[guest_pid(path)] = record
        result.records.append(record)


def harvest(options: HarvestOptions, since: float = 0.0, command: Optional[Sequence[str]] = None,
            exit_status: Optional[int] = None, started: Optional[float] = None,
            pattern: Optional[CorePattern] = None, echo: Echo = _stderr,
            cores: Optional[List[str]] = None, step_failed: Optional[bool] = None,
            foreign: Optional[Callable] = None) -> HarvestResult:
    """Find every core written since `since` (seconds since the epoch) and store it.

    `cores` skips the search (``coredump run`` has searched already; without it a search
    directory that does not exist raises MissingFileError); `step_failed` False keeps a
    piped core_pattern's details quiet when nothing crashed. `foreign(ids, shared=)` says
    why a core (by its ``owner.CoreIds``; `shared` when it lies in a directory other jobs
    share) is not the step's: such a core is left untouched. Without `since`, files git
    tracks are not cores of the job. Without a core nothing is written: no artifact
    directory appears.
    """
    result = HarvestResult()
    echo = _cleaned(echo)
    if pattern is None:
        try:
            pattern = read_core_pattern()
        except OSError:
            pattern = None
    artifacts = ArtifactDir(options.output, mode=options.mode)
    if cores is None:
        found = _search(options, since, pattern, artifacts, echo)
    else:
        found = [(c, look_at(c)) for c in cores]
    tmpdir = tempfile.mkdtemp(prefix="coredump-piped-") if pattern is not None and pattern.is_pipe else None
    try:
        if tmpdir:
            found += [(c, look_at(c)) for c in _piped(pattern, since, tmpdir, echo, quiet=step_failed is False)]
        own = _split_foreign(found, foreign, _shared_test(options, pattern), echo)
        _process_all(own, artifacts, options, echo, result, (exit_status, started or since or None), pattern)
    finally:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
    if not result.records:
        return result
    result.errors += [f"{r.id}: {r.note}" for r in result.records if r.failed]
    try:
        result.summary = artifacts.write_summary(result.records, command, exit_status, started, time.time())
    except StorageError as exc:
        result.errors.append(str(exc))
        echo(f"coredump: {exc}; every core stays where it was")
        return result
    _remove_originals(result.records, echo)
    _publish(artifacts.root, options, result, echo)
    _tally(result.records, artifacts.root, echo)
    return result


def _tally(records: Sequence[CrashRecord], root: str, echo: Echo) -> None:
    """The step's last lines: each signature that crashed more than once with its count (the
    log explained it once), then one line with the totals and where the artifacts are."""
    counts: dict = {}
    for r in records:
        counts[r.signature or "(not analyzed)"] = counts.get(r.signature or "(not analyzed)", 0) + 1
    for signature, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        if n > 1:
            echo(f"coredump:   ×{n} {signature}")
    crashes, signatures = len(records), len(counts)
    expected = sum(1 for r in records if r.expected)
    also = f" ({expected} expected)" if expected else ""
    echo(f"coredump: {crashes} crash{'es' if crashes != 1 else ''}{also}, {signatures} signature"
         f"{'s' if signatures != 1 else ''}; artifacts in {os.path.join(_shown_path(root), '')}")


def _shown_path(path) -> str:
    """`path` as the log shows it: relative to the working directory when inside it."""
    try:
        rel = os.path.relpath(path)
    except (OSError, ValueError):  # no working directory any more
        return str(path)
    return str(path) if rel.startswith(os.pardir) else rel


def _publish(root: str, options: HarvestOptions, result: HarvestResult, echo: Echo) -> None:
    """The pages people read (index.html, report.html, junit.xml, GitHub annotations), then
    the upload when asked. The cores are stored already: a failure here loses nothing."""
    try:
        from coredump.report.annotations import emit_github
        from coredump.report.render import render_artifacts

        rendered = render_artifacts(root)
        ArtifactDir(root, options.mode).apply_mode()
        for warning in rendered.warnings:
            echo(f"coredump: {warning}")
        # An expected crash (a death test, an --expect rule) is no annotation and no summary entry.
        expected = {r.id for r in result.records if r.expected}
        reports = [p for p in rendered.reports if p.parent.name not in expected]
        crashes = [json.loads(p.with_name("crash.json").read_text()) for p in reports]
        for warning in emit_github(crashes, [_shown_path(p) for p in reports]):
            echo(f"coredump: warning: {warning}")
        echo(f"coredump: report: {_shown_path(rendered.index)}")
    except Exception as exc:  # noqa: BLE001 - reports are a bonus on top of stored cores
        result.errors.append(f"rendering the reports failed: {type(exc).__name__}: {exc}")
        echo(f"coredump: {result.errors[-1]}")
    uploaded = None
    if options.upload:
        from coredump.store.s3 import DEFAULT_TIMEOUT, upload_artifacts

        try:
            from coredump.capture.progress import LogProgress

            for url in upload_artifacts(root, options.upload, progress=LogProgress(echo, f"uploading {root}"),
                                        timeout=options.upload_timeout or DEFAULT_TIMEOUT):
                echo(f"coredump: uploaded {url}")
            uploaded = options.upload
        except CoreDumpError as exc:
            result.errors.append(f"upload failed, {root} is intact: {exc}")
            # `run` keeps the step's status whatever happens here: the word "error" is what a
            # reader of a green job's log can find.
            echo(f"coredump: error: {result.errors[-1]}")
    _record_history(root, options.db, uploaded, echo)


def _record_history(root: str, db: Optional[str], uploaded: Optional[str], echo: Echo) -> None:
    """The job into the crash database when one is set (--db, $COREDUMP_DB), where it was
    uploaded or else its directory. A database that cannot be reached costs one warning:
    the artifacts are written, the status is the step's, and `coredump record DIR` later
    fills the gap."""
    from coredump.store.history.url import configured_url

    url = configured_url(db)
    if not url:
        return
    from coredump.store.history.record import record_directory

    try:
        location = None
        if uploaded:
            from coredump.store.s3 import default_job_id, read_summary
            from coredump.store.s3url import parse_s3_url

            location = str(parse_s3_url(uploaded).join(default_job_id(read_summary(Path(root)))))
        done = record_directory(url, root, location)
        echo(f"coredump: crash history: {done.new_crashes} crash{'es' if done.new_crashes != 1 else ''} recorded")
    except Exception as exc:  # noqa: BLE001 - the history is a bonus on top of stored cores
        why = str(exc) if isinstance(exc, CoreDumpError) else f"{type(exc).__name__}: {exc}"
        echo(f"coredump: warning: crash history not recorded ({why}); `coredump record "
             f"{_shown_path(root)}` records it later")
