"""
Artifact directory
==================

Write the artifact directory of DESIGN.md: ``summary.json``, one ``<id>/`` per crash
(``crash.json``, ``core.zst``) and the binaries the cores need, once per build-id under
``files/<build-id>/`` so another machine can analyze them without the build tree.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time

from coredump.errors import StorageError
from coredump.jsondoc import dumps_document, read_document
from coredump.model import SUMMARY_SCHEMA
from coredump.record import dataclass, field
from coredump.store.ci_metadata import ci_metadata
from coredump.store.hashing import hash_file

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Any, Dict, List, Optional, Sequence

__all__ = ("SUMMARY_SCHEMA", "DEFAULT_DIR", "DEFAULT_MODE", "CrashRecord", "ArtifactDir", "utc_timestamp",
           "dir_mode", "parse_mode")

DEFAULT_DIR = "coredump-artifacts"
# A core holds the process's memory and environment (tokens, keys): the kernel writes it
# 0600 (fs/coredump.c opens it O_CREAT 0600), and so do we; a CI artifact store applies
# its own access control to what it uploads.
DEFAULT_MODE = 0o600
FILES_DIR = "files"
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def dir_mode(mode: int) -> int:
    """The mode of a directory holding files of `mode`: search (x) wherever read is allowed.

    >>> oct(dir_mode(0o600)), oct(dir_mode(0o644))
    ('0o700', '0o755')
    """
    return mode | ((mode & 0o444) >> 2)


def parse_mode(text: str) -> int:
    """``--mode`` as octal permission bits (``600``, ``0644``); the owner must keep read and
    write (the harvest reads back what it stores). ValueError otherwise.

    >>> oct(parse_mode("0644"))
    '0o644'
    """
    try:
        mode = int(text, 8)
    except ValueError:
        raise ValueError(f"not an octal mode: {text!r} (use e.g. 0600 or 0644)") from None
    if not 0 <= mode <= 0o777 or mode & 0o600 != 0o600:
        raise ValueError(f"mode {text!r}: use permission bits 0600 to 0777 that keep the owner's read and write")
    return mode


def utc_timestamp(seconds: Optional[float] = None) -> str:
    """RFC 3339 UTC time, as in summary.json's ``started`` / ``finished``.

    >>> utc_timestamp(0)
    '1970-01-01T00:00:00Z'
    """
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if seconds is None else seconds))


@dataclass
class CrashRecord:
    """One entry of summary.json's ``crashes``; paths are relative to the artifact root.

    ``stored`` says whether the core is in the artifact directory; ``source`` is where the
    core was found and ``kept`` whether it is still there; ``note`` says why, in words;
    ``failed`` marks a storage failure (not written to summary.json: ``note`` says it).
    ``size`` and ``sha256`` are those of ``core`` as stored (the compressed file), and
    ``file_digests`` maps each of ``files`` to its ``{"size", "sha256"}``: ``coredump fetch``
    checks what it downloads against them.
    """

    id: str
    source: str
    signature: Optional[str] = None
    fingerprint: Optional[str] = None
    signal: Optional[str] = None
    executable: Optional[str] = None
    crash_json: Optional[str] = None
    core: Optional[str] = None
    stored: bool = False
    kept: bool = True
    note: Optional[str] = None
    failed: bool = False
    files: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    size: Optional[int] = None
    sha256: Optional[str] = None
    file_digests: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    # Why the crash is one the job means to have (a death test, an --expect rule), or None.
    expected: Optional[str] = None
    # The core as it was stored (an ``opened.Look``): it is removed only while its path still
    # names that inode, unchanged. Not written to summary.json.
    look: Any = None

    def add_note(self, text: str) -> None:
        self.notes.append(text)
        self.note = "; ".join(self.notes)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "id": self.id, "signature": self.signature, "fingerprint": self.fingerprint, "signal": self.signal,
            "executable": self.executable, "crash_json": self.crash_json, "core": self.core,
            "stored": self.stored, "note": self.note, "source": self.source, "kept": self.kept,
            "files": list(self.files), "size": self.size, "sha256": self.sha256,
            "file_digests": dict(self.file_digests), "expected": self.expected,
        }


class ArtifactDir:
    """An artifact directory; nothing is created on disk until a crash is stored."""

    def __init__(self, root: str = DEFAULT_DIR, mode: int = DEFAULT_MODE):
        try:
            self.root = os.path.abspath(root)
        except FileNotFoundError:  # the working directory was deleted: ensure() says so
            self.root = root
        self.mode, self.dir_mode = mode, dir_mode(mode)
        self._ids: set = set()
        self._digests: Dict[str, Dict[str, Any]] = {}
        self.source_bytes = 0  # of sources/ stored by this run (store/sources.py caps it)

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def ensure(self) -> None:
        """Create the root; StorageError when it cannot be created or written."""
        if not os.path.isabs(self.root):
            raise StorageError(f"cannot create the artifact directory {self.root}: the working directory "
                               "was deleted")
        try:
            self._makedir(self.root)
        except OSError as exc:
            raise StorageError(f"cannot create the artifact directory {self.root}: {exc.strerror}") from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageError(f"the artifact directory {self.root} is not writable")

    def new_id(self, executable: Optional[str], pid: Optional[int]) -> str:
        """A short, unique, sortable crash id: ``<exe-basename>-<pid>`` (``-2``… on reuse).

        >>> ArtifactDir("unused").new_id("/usr/bin/make", 4242)
        'make-4242'
        """
        name = _UNSAFE.sub("_", os.path.basename(executable or "")).strip("._") or "core"
        base = f"{name[:40]}-{pid}" if pid else name[:40]
        candidate, n = base, 1
        while candidate in self._ids or os.path.lexists(self.path(candidate)):
            n += 1
            candidate = f"{base}-{n}"
        self._ids.add(candidate)
        return candidate

    def _makedir(self, d: str) -> None:
        """Create `d` (and missing parents) with the directory mode; one that exists is left
        as it is. chmod after mkdir: mkdir(2)'s mode is masked by the umask."""
        if os.path.isdir(d):
            return
        parent = os.path.dirname(d)
        if parent != d:
            self._makedir(parent)
        try:
            os.mkdir(d, self.dir_mode)
        except FileExistsError:
            return
        os.chmod(d, self.dir_mode)

    def crash_dir(self, crash_id: str) -> str:
        d = self.path(crash_id)
        try:
            self._makedir(d)
        except OSError as exc:
            raise StorageError(f"cannot create {d}: {exc.strerror}") from exc
        return d

    def write_json(self, relpath: str, obj: Any) -> str:
        """Write `obj` as JSON atomically (temporary file, then rename); returns relpath."""
        return self.write_bytes(relpath, (dumps_document(obj) + "\n").encode("utf-8"), suffix=".json")

    def write_bytes(self, relpath: str, data: bytes, suffix: str = "") -> str:
        """Write `data` to `relpath` atomically with the artifact mode, creating its folders;
        returns relpath."""
        dst = self.path(relpath)
        tmp = None
        try:
            self._makedir(os.path.dirname(dst))
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dst), prefix=".tmp-", suffix=suffix)
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), self.mode)  # mkstemp creates 0600
                f.write(data)
            os.replace(tmp, dst)
        except OSError as exc:
            _unlink_quietly(tmp)  # a full filesystem leaves no temporary file behind
            raise StorageError(f"cannot write {dst}: {exc.strerror}") from exc
        return relpath

    def add_file(self, key: str, src: str, name: str) -> str:
        """Copy `src` to ``files/<key>/<name>`` unless already there; returns the relative path."""
        rel = os.path.join(FILES_DIR, _UNSAFE.sub("_", key), _UNSAFE.sub("_", name))
        dst = self.path(rel)
        if os.path.exists(dst):
            return rel
        tmp = None
        try:
            self._makedir(os.path.dirname(dst))
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dst), prefix=f".{os.path.basename(dst)}.tmp-")
            with os.fdopen(fd, "wb") as fout, open(src, "rb") as fin:
                os.fchmod(fout.fileno(), self.mode)
                shutil.copyfileobj(fin, fout, 1 << 20)
            os.replace(tmp, dst)
        except OSError as exc:
            _unlink_quietly(tmp)
            raise StorageError(f"cannot copy {src} into {dst}: {exc.strerror}") from exc
        return rel

    def digest(self, relpath: str) -> Dict[str, Any]:
        """``{"size", "sha256"}`` of the stored file `relpath` (each file is read once)."""
        if relpath not in self._digests:
            try:
                sha256, size = hash_file(self.path(relpath)), os.path.getsize(self.path(relpath))
            except OSError as exc:
                raise StorageError(f"cannot read {self.path(relpath)}: {exc.strerror}") from exc
            self._digests[relpath] = {"size": size, "sha256": sha256}
        return self._digests[relpath]

    def _add_supplementary(self, path: Optional[str]) -> Optional[str]:
        """Store a dwz supplementary file as ``files/<identity>/<name>.debug``, where the
        analysis elsewhere looks for it by the build-id (or DWARF 5 sup_checksum) its debug
        files name (``coredump.dwarf.supplementary``)."""
        from coredump.dwarf.supplementary import file_identity
        from coredump.elf.image import open_image

        image = open_image(path) if path else None
        identity = file_identity(image) if image is not None else None
        if identity is None:
            return None
        name = os.path.basename(path)
        return self.add_file(identity, path, name if name.endswith(".debug") else name + ".debug")

    def bundle_modules(self, record: CrashRecord, modules: Sequence[Any]) -> None:
        """Store each module's file (and separate debug file, and the dwz supplementary file
        that names) once per build-id.

        A module whose file on disk has another build-id than the core's is not stored
        (it would mislead the analysis elsewhere); one without any build-id cannot be
        found by build-id, so it is not stored either. Both get a note.
        """
        skipped = []
        for m in modules:
            if not m.file or m.path.startswith("["):  # [vdso] and friends live in the core
                continue
            key = m.build_id or m.file_build_id
            if key is None or m.status == "mismatch":
                skipped.append(os.path.basename(m.path))
                continue
            base = os.path.basename(m.path) or os.path.basename(m.file)
            stored = [self.add_file(key, m.file, base)]
            if m.debug_file:
                stored.append(self.add_file(key, m.debug_file, base + ".debug"))
            sup = self._add_supplementary(getattr(m, "supplementary_file", None))
            if sup is not None and sup not in record.files:  # one dwz file serves many modules
                stored.append(sup)
            for rel in stored:
                record.files.append(rel)
                record.file_digests[rel] = self.digest(rel)
        if skipped:
            record.add_note(f"not bundled (no matching build-id): {', '.join(sorted(set(skipped)))}")

    def apply_mode(self) -> None:
        """Give every file and directory under the root the artifact modes (the pages the
        report renderer wrote after the cores); symlinks are not followed."""
        for top, dirs, files in os.walk(self.root):
            for name, mode in [(d, self.dir_mode) for d in dirs] + [(f, self.mode) for f in files]:
                try:
                    os.chmod(os.path.join(top, name), mode, follow_symlinks=False)
                except (OSError, NotImplementedError):
                    continue  # chmod of a symlink (Linux: ENOTSUP); nothing we wrote

    def read_summary(self) -> Optional[Dict[str, Any]]:
        try:
            return read_document(self.path("summary.json"), SUMMARY_SCHEMA)
        except StorageError:
            return None

    def write_summary(self, records: Sequence[CrashRecord], command: Optional[Sequence[str]] = None,
                      exit_status: Optional[int] = None, started: Optional[float] = None,
                      finished: Optional[float] = None) -> str:
        """Write summary.json; crashes of an earlier run or harvest of the job are kept."""
        previous = self.read_summary() or {}
        new_ids = {r.id for r in records}
        crashes = [c for c in previous.get("crashes", []) if c.get("id") not in new_ids]
        crashes += [r.to_dict() for r in records]
        # What `coredump fetch` checks each file against; render.py adds the pages it writes.
        digests = previous.get("digests") if isinstance(previous.get("digests"), dict) else {}
        digests.update({r.crash_json: self.digest(r.crash_json) for r in records if r.crash_json})
        summary = {
            "schema": SUMMARY_SCHEMA,
            "command": list(command) if command is not None else previous.get("command"),
            "exit_status": exit_status if exit_status is not None else previous.get("exit_status"),
            "host": socket.gethostname(),
            "started": utc_timestamp(started) if started is not None else previous.get("started"),
            "finished": utc_timestamp(finished),
            "ci": ci_metadata() or previous.get("ci"),
            "crashes": crashes,
            "digests": digests,
        }
        return self.write_json("summary.json", summary)


def _unlink_quietly(path: Optional[str]) -> None:
    if path is not None:
        try:
            os.unlink(path)
        except OSError:
            pass
