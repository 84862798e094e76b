"""
One core
========

Take one core a search found from its place into the artifact directory: open it once
(``opened``), wait until it is written to the end, analyze it in-process, store the
crash.json, the verified core.zst and the binaries it needs, and print its summary. The
record says whether the original may be removed; ``harvest`` removes it after the summary.
"""

from __future__ import annotations

import os
import re

from coredump.capture.console import echo as _stderr
from coredump.capture.find import QEMU_CORE_NAME
from coredump.capture.opened import Look, OpenedCore, look_at, open_found, phdr_extent, settle
from coredump.capture.progress import LogProgress
from coredump.errors import CoreDumpError, StorageError
from coredump.record import replace
from coredump.store.artifacts import ArtifactDir, CrashRecord

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Any, Callable, Dict, Optional
    Echo = Callable[[str], None]
    HarvestOptions = Any  # harvest.HarvestOptions (harvest imports this module)

__all__ = ("process_core", "format_size", "guest_pid")


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


def _analyze(core: OpenedCore, options: Any):
    """(crash, None) or (None, reason): a core we cannot analyze is still stored. The
    analysis reads the open descriptor; what it says names the path the core was found at."""
    try:
        from coredump.analysis import analyze_core

        crash = analyze_core(core.fd_path, options)
    except CoreDumpError as exc:
        return None, str(exc).replace(core.fd_path, core.path)
    except Exception as exc:  # an analysis bug must not lose the core
        return None, f"{type(exc).__name__}: {exc}".replace(core.fd_path, core.path)
    return replace(crash, core=replace(crash.core, path=os.path.abspath(core.path))), None


def _store_core(record: CrashRecord, core: OpenedCore, look: Look, artifacts: ArtifactDir,
                options: HarvestOptions, echo: Echo = _stderr) -> bool:
    """Compress and verify the core into <id>/core.zst; True when the original may go:
    the copy is whole, verified, and the core did not change while it was read."""
    from coredump.capture.compress import compress_file, verify_compressed

    source = core.path
    to_store, full = core.fd_path, True
    if options.max_core_size is not None and look.st_size > options.max_core_size:
        to_store, full = _slim(record, core, artifacts, options.max_core_size, look.st_size)
        if to_store is None:
            return False
    rel = f"{record.id}/core.zst"
    try:
        progress = LogProgress(echo, f"compressing {source}")
        result = compress_file(to_store, artifacts.path(rel), mode=artifacts.mode, label=source, progress=progress)
        if not verify_compressed(result.dst, result.sha256, result.size):
            os.unlink(result.dst)
            raise StorageError(f"the compressed copy of {source} did not decompress to the same bytes")
    finally:
        if to_store != core.fd_path:
            os.unlink(to_store)
    record.core, record.stored = rel, True
    # What the summary records of the stored file, for `coredump fetch` to check.
    record.size, record.sha256 = result.compressed_size, result.compressed_sha256
    if core.look() != look or (full and result.size != look.st_size):
        record.add_note(f"the core changed while it was stored ({look.st_size} bytes when it settled, "
                        f"{result.size} read): the stored copy may be partial; it stays at {source}")
        return False
    record.look = look
    return full and not options.keep_cores


def _slim(record, core: OpenedCore, artifacts, limit, size):
    """A slimmed copy of an oversize core, or None (with a note) when even that is too big
    or the core cannot be slimmed (damaged: slim reads its program headers)."""
    from coredump.store.slim import slim_core

    dst = artifacts.path(record.id, "core.slim")
    try:
        slim_core(core.fd_path, dst)
    except StorageError:
        raise
    except CoreDumpError as exc:
        record.add_note(f"core is {format_size(size)}, over --max-core-size {format_size(limit)}, and "
                        f"cannot be slimmed ({str(exc).replace(core.fd_path, core.path)}): not stored "
                        f"(it stays at {core.path})")
        return None, False
    if os.path.getsize(dst) > limit:
        os.unlink(dst)
        record.add_note(f"core is over --max-core-size {format_size(limit)} even slimmed: not stored "
                        f"(it stays at {core.path})")
        return None, False
    record.add_note(f"core is {format_size(size)}, over --max-core-size: stored slimmed; "
                    f"the full core stays at {core.path}")
    return dst, False


def _truncation(crash, core: OpenedCore, look: Look) -> Optional[str]:
    """Why the core is shorter than its program headers say (the analysis's verdict, or
    the headers' extent when there is no analysis); None when it is whole."""
    if crash is not None:
        return "core is truncated (its analysis found bytes missing)" if crash.core.truncated else None
    extent = phdr_extent(core.fd_path)
    if extent is not None and look.st_size < extent:
        return f"core is truncated ({look.st_size} of the {extent} bytes its program headers claim)"
    return None


# qemu-user's executables (qemu-aarch64, qemu-arm, ...; Debian's -static builds too).
_QEMU_USER = re.compile(r"qemu-[a-z0-9_]+(-static)?")


def guest_pid(source: str) -> Optional[int]:
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
                 echo: Echo = _stderr, guests=None, found: Optional[Look] = None,
                 seen: Optional[Dict[str, int]] = None, expect=None, cwd: Optional[str] = None
                 ) -> Optional[CrashRecord]:
    """Analyze one core and store it; returns its summary record (``remove`` pending), or
    None when `source` is no longer the regular file `found` (lstat look) says it was.

    The explanation is printed as soon as the core is analyzed, before the slow part
    (compressing, verifying, bundling). `seen` counts the signatures explained so far in this
    harvest: a repeat is folded into the final tally instead of explained again. `expect`
    (``triage.expect.ExpectRules``) marks the crashes the job means to have; `cwd` is the
    crashed process's working directory where core_pattern proves it (a death test's report).
    `guests` maps a pid to the record of a qemu-user guest core stored before: a core of
    qemu with that pid is labelled as the emulator's."""
    try:
        core = open_found(source, found if found is not None else look_at(source))
    except StorageError as exc:
        echo(f"coredump: {exc}")
        return None
    with core:
        look, unsettled = settle(core, options.settle_quiet, options.settle_timeout, echo)
        crash, failure = _analyze(core, options.analyze_options)
        exe = crash.process.executable if crash else None
        record = CrashRecord(id=artifacts.new_id(exe, crash.process.pid if crash else None), source=source)
        if crash is not None:
            record.signature, record.fingerprint, record.executable = crash.signature, crash.fingerprint, exe
            record.signal = crash.signal.name
            if expect is not None:
                notes: list = []
                record.expected = expect.match_crash(crash, notes, cwd)
                for note in notes:
                    record.add_note(note)
            _label_emulator(record, crash, guests or {})
        else:
            record.add_note(f"analysis failed: {failure}")
        repeat = _explain(crash, failure, record, seen, echo)
        partial = unsettled and f"{unsettled}: stored as it was, and it stays at {source}"
        partial = partial or _truncation(crash, core, look)
        if partial:
            record.add_note(partial if unsettled else f"{partial}: stored, and it stays at {source}")
        _store(record, crash, core, look, artifacts, options, echo)
        if partial:
            record.kept, record.look = True, None
    _print_stored(record, artifacts, echo, repeat)
    return record


def _store(record: CrashRecord, crash, core: OpenedCore, look: Look, artifacts: ArtifactDir,
           options: HarvestOptions, echo: Echo = _stderr) -> None:
    try:
        artifacts.ensure()
        artifacts.crash_dir(record.id)
        if crash is not None:
            from coredump.report.json import crash_to_dict

            data = crash_to_dict(crash)
            if options.store_sources:
                data["sources"] = _store_sources(record, crash, artifacts)
            record.crash_json = artifacts.write_json(f"{record.id}/crash.json", data)
        removable = _store_core(record, core, look, artifacts, options, echo)
        if options.bundle_binaries and crash is not None:
            artifacts.bundle_modules(record, crash.modules)
        record.kept = not removable
    except (StorageError, OSError) as exc:
        record.kept, record.failed = True, True
        record.add_note(f"{exc}; the core stays at {core.path}")


def _source_roots():
    """What a published artifact may show of this machine's files: the job's checkout
    (``view.workspace``), else the working directory."""
    from coredump.report.view import workspace

    try:
        return [workspace() or os.getcwd()]
    except OSError:  # the working directory was deleted
        return []


def _store_sources(record: CrashRecord, crash, artifacts: ArtifactDir):
    """crash.json's ``sources``: a source that cannot be stored is a note, never a lost core."""
    from coredump.store.sources import store_sources

    try:
        return store_sources(artifacts, record, crash, _source_roots())
    except StorageError as exc:
        record.add_note(f"sources not stored: {exc}")
        return []


def _summary_sources(crash):
    """The source excerpts the CI log shows: read only inside the job's checkout, as stored."""
    from coredump.report.json import crash_to_dict
    from coredump.report.source import source_excerpts
    from coredump.symbols.sources import SourceFinder

    roots = _source_roots()
    return source_excerpts(crash_to_dict(crash), SourceFinder(roots=roots)) if roots else {}


def _explain(crash, failure, record: CrashRecord, seen: Optional[Dict[str, int]], echo: Echo) -> bool:
    """Print what happened; True (and nothing printed) for a signature already explained."""
    if crash is not None and seen is not None:
        seen[crash.signature] = seen.get(crash.signature, 0) + 1
        if seen[crash.signature] > 1:
            return True
    if crash is not None:
        try:
            from coredump.report.text import render_summary

            text = render_summary(crash, sources=_summary_sources(crash))
        except Exception as exc:  # a report bug must not hide the crash
            text = f"{record.signal} in {record.executable} ({type(exc).__name__} while rendering)"
    else:
        text = f"core {record.source} could not be analyzed: {failure}"
    for line in text.splitlines():
        echo(f"coredump: {line}")
    if record.expected:
        echo(f"coredump:   expected: {record.expected}; not reported as a failure")
    return False


def _print_stored(record: CrashRecord, artifacts: ArtifactDir, echo: Echo, repeat: bool) -> None:
    """Where the crash went; a repeat says only what went wrong, if anything."""
    if not repeat:
        where = os.path.relpath(artifacts.path(record.id)) if record.crash_json or record.stored else None
        echo(f"coredump:   artifacts: {where}" if where else "coredump:   artifacts: none")
    if record.note:
        echo(f"coredump:   note: {record.note}" if not repeat else f"coredump: {record.id}: note: {record.note}")
