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
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Sequence

from coredump.capture.console import echo as _stderr
from coredump.capture.core_pattern import CorePattern, read_core_pattern
from coredump.capture.find import QEMU_CORE_NAME, find_cores
from coredump.errors import CoreDumpError, MissingFileError, StorageError
from coredump.store.artifacts import DEFAULT_DIR, ArtifactDir, CrashRecord

__all__ = ("HarvestOptions", "HarvestResult", "harvest", "process_core", "format_size")

Echo = Callable[[str], None]


@dataclass(frozen=True)
class HarvestOptions:
    """What to search and how to store: ``paths`` are directory trees searched for cores
    (default: the working directory), ``core_dirs`` extra directories."""

    output: str = DEFAULT_DIR
    paths: Sequence[str] = (".",)
    core_dirs: Sequence[str] = ()
    keep_cores: bool = False
    bundle_binaries: bool = True
    max_core_size: Optional[int] = None
    analyze_options: Any = None
    upload: Optional[str] = None
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


def format_size(n: int) -> str:
    """A size in binary units, as the crash summary prints it.

    >>> format_size(232038400)
    '221.3 MiB'
    """
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _analyze(path: str, options: Any):
    """(crash, None) or (None, reason): a core we cannot analyze is still stored."""
    try:
        from coredump.analysis import analyze_core

        return analyze_core(path, options), None
    except CoreDumpError as exc:
        return None, str(exc)
    except Exception as exc:  # an analysis bug must not lose the core
        return None, f"{type(exc).__name__}: {exc}"


def _store_core(record: CrashRecord, source: str, artifacts: ArtifactDir, options: HarvestOptions) -> bool:
    """Compress and verify the core into <id>/core.zst; True when the original may go."""
    from coredump.capture.compress import compress_file, verify_compressed

    size = os.path.getsize(source)
    to_store, full = source, True
    if options.max_core_size is not None and size > options.max_core_size:
        to_store, full = _slim(record, source, artifacts, options.max_core_size, size)
        if to_store is None:
            return False
    rel = f"{record.id}/core.zst"
    try:
        result = compress_file(to_store, artifacts.path(rel))
        if not verify_compressed(result.dst, result.sha256, result.size):
            os.unlink(result.dst)
            raise StorageError(f"the compressed copy of {source} did not decompress to the same bytes")
    finally:
        if to_store != source:
            os.unlink(to_store)
    record.core, record.stored = rel, True
    # What the summary records of the stored file, for `coredump fetch` to check.
    record.size, record.sha256 = result.compressed_size, result.compressed_sha256
    return full and not options.keep_cores


def _slim(record, source, artifacts, limit, size):
    """A slimmed copy of an oversize core, or None (with a note) when even that is too big."""
    from coredump.store.slim import slim_core

    dst = artifacts.path(record.id, "core.slim")
    slim_core(source, dst)
    if os.path.getsize(dst) > limit:
        os.unlink(dst)
        record.add_note(f"core is over --max-core-size {format_size(limit)} even slimmed: not stored "
                        f"(it stays at {source})")
        return None, False
    record.add_note(f"core is {format_size(size)}, over --max-core-size: stored slimmed; "
                    f"the full core stays at {source}")
    return dst, False


# qemu-user's executables (qemu-aarch64, qemu-arm, ...; Debian's -static builds too).
_QEMU_USER = re.compile(r"qemu-[a-z0-9_]+(-static)?")


def _guest_pid(source: str) -> Optional[int]:
    """The pid in a qemu-user guest core's name (qemu_<prog>_<date>-<time>_<pid>.core)."""
    name = os.path.basename(source)
    return int(name[:-len(".core")].rsplit("_", 1)[1]) if QEMU_CORE_NAME.fullmatch(name) else None


def _label_emulator(record: CrashRecord, crash, guests) -> None:
    """qemu-user writes the guest's core, then dies of the same signal, so the host may
    write a core of qemu itself: same pid (the guest runs in qemu's process)."""
    exe = os.path.basename(crash.process.executable or "") or (crash.process.command or "")
    if _QEMU_USER.fullmatch(exe):
        guest = guests.get(crash.process.pid)
        record.add_note(f"core of the emulator {exe}; the guest's core is {guest.id}" if guest is not None
                        else f"core of the emulator {exe}, not of the program it ran")


def process_core(source: str, artifacts: ArtifactDir, options: HarvestOptions,
                 echo: Echo = _stderr, guests=None) -> CrashRecord:
    """Analyze one core and store it; returns its summary record (``remove`` pending).

    `guests` maps a pid to the record of a qemu-user guest core stored before: a core of
    qemu with that pid is labelled as the emulator's."""
    crash, failure = _analyze(source, options.analyze_options)
    exe = crash.process.executable if crash else None
    record = CrashRecord(id=artifacts.new_id(exe, crash.process.pid if crash else None), source=source)
    if crash is not None:
        record.signature, record.fingerprint, record.executable = crash.signature, crash.fingerprint, exe
        record.signal = crash.signal.name
        _label_emulator(record, crash, guests or {})
    else:
        record.add_note(f"analysis failed: {failure}")
    try:
        artifacts.ensure()
        artifacts.crash_dir(record.id)
        if crash is not None:
            from coredump.report.json import crash_to_dict

            record.crash_json = artifacts.write_json(f"{record.id}/crash.json", crash_to_dict(crash))
        removable = _store_core(record, source, artifacts, options)
        if options.bundle_binaries and crash is not None:
            artifacts.bundle_modules(record, crash.modules)
        record.kept = not removable
    except (StorageError, OSError) as exc:
        record.kept, record.failed = True, True
        record.add_note(f"{exc}; the core stays at {source}")
    _print_crash(crash, failure, record, artifacts, echo)
    return record


def _print_crash(crash, failure, record: CrashRecord, artifacts: ArtifactDir, echo: Echo) -> None:
    if crash is not None:
        try:
            from coredump.report.text import render_summary

            text = render_summary(crash)
        except Exception as exc:  # a report bug must not hide the crash
            text = f"{record.signal} in {record.executable} ({type(exc).__name__} while rendering)"
    else:
        text = f"core {record.source} could not be analyzed: {failure}"
    lines = [f"coredump: {line}" for line in text.splitlines()]
    where = os.path.relpath(artifacts.path(record.id)) if record.crash_json or record.stored else None
    lines.append(f"coredump:   artifacts: {where}" if where else "coredump:   artifacts: none")
    if record.note:
        lines.append(f"coredump:   note: {record.note}")
    for line in lines:
        echo(line)


def _remove_originals(records: Sequence[CrashRecord], echo: Echo) -> None:
    for r in records:
        if not r.kept:
            try:
                os.unlink(r.source)
            except FileNotFoundError:
                pass
            except OSError as exc:
                echo(f"coredump: could not remove {r.source} after storing it: {exc.strerror}")


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


def _split_foreign(cores: List[str], foreign: Optional[Callable], echo: Echo) -> List[str]:
    """The cores `foreign` does not reject; each rejected one is left untouched, said once."""
    if foreign is None:
        return cores
    from coredump.capture.owner import read_core_ids

    own = []
    for core in cores:
        why = foreign(read_core_ids(core))
        if why is None:
            own.append(core)
        else:
            echo(f"coredump: {core}: not this step's ({why}); left in place")
    return own


def _search_roots(options: HarvestOptions) -> List[str]:
    """The directories to search; MissingFileError for one that does not exist."""
    roots = list(options.paths) + list(options.core_dirs)
    for flag, dirs in (("--path", options.paths), ("--core-dir", options.core_dirs)):
        for d in dirs:
            if not os.path.isdir(d):
                raise MissingFileError(f"{flag} {d}: no such directory")
    return roots


def harvest(options: HarvestOptions, since: float = 0.0, command: Optional[Sequence[str]] = None,
            exit_status: Optional[int] = None, started: Optional[float] = None,
            pattern: Optional[CorePattern] = None, echo: Echo = _stderr,
            cores: Optional[List[str]] = None, step_failed: Optional[bool] = None,
            foreign: Optional[Callable] = None) -> HarvestResult:
    """Find every core written since `since` (seconds since the epoch) and store it.

    `cores` skips the search (``coredump run`` has searched already; without it a search
    directory that does not exist raises MissingFileError); `step_failed` False keeps a
    piped core_pattern's details quiet when nothing crashed. `foreign(ids)` says why a
    core (by its ``owner.CoreIds``) is not the step's: such a core is left untouched.
    Without a core nothing is written: no artifact directory appears.
    """
    result = HarvestResult()
    if pattern is None:
        try:
            pattern = read_core_pattern()
        except OSError:
            pattern = None
    artifacts = ArtifactDir(options.output)
    if cores is None:
        cores = find_cores(_search_roots(options), int(since * 1e9), pattern, exclude=[artifacts.root])
    cores = list(cores)
    tmpdir = tempfile.mkdtemp(prefix="coredump-piped-") if pattern is not None and pattern.is_pipe else None
    try:
        if tmpdir:
            cores += _piped(pattern, since, tmpdir, echo, quiet=step_failed is False)
        guests = {}
        # Guest cores first (qemu writes them before it dies), so the emulator's can name them.
        for core in sorted(_split_foreign(cores, foreign, echo), key=lambda c: _guest_pid(c) is None):
            record = process_core(core, artifacts, options, echo, guests)
            if _guest_pid(core) is not None:
                guests[_guest_pid(core)] = record
            result.records.append(record)
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
    return result


def _publish(root: str, options: HarvestOptions, result: HarvestResult, echo: Echo) -> None:
    """The pages people read (index.html, report.html, junit.xml, GitHub annotations), then
    the upload when asked. The cores are stored already: a failure here loses nothing."""
    try:
        from coredump.report.annotations import emit_github_annotations
        from coredump.report.render import render_artifacts

        rendered = render_artifacts(root)
        for warning in rendered.warnings:
            echo(f"coredump: {warning}")
        emit_github_annotations([json.loads(p.with_name("crash.json").read_text()) for p in rendered.reports])
        echo(f"coredump: report: {rendered.index}")
    except Exception as exc:  # noqa: BLE001 - reports are a bonus on top of stored cores
        result.errors.append(f"rendering the reports failed: {type(exc).__name__}: {exc}")
        echo(f"coredump: {result.errors[-1]}")
    if options.upload:
        from coredump.store.s3 import DEFAULT_TIMEOUT, upload_artifacts

        try:
            for url in upload_artifacts(root, options.upload, timeout=options.upload_timeout or DEFAULT_TIMEOUT):
                echo(f"coredump: uploaded {url}")
        except CoreDumpError as exc:
            result.errors.append(f"upload failed, {root} is intact: {exc}")
            # `run` keeps the step's status whatever happens here: the word "error" is what a
            # reader of a green job's log can find.
            echo(f"coredump: error: {result.errors[-1]}")
