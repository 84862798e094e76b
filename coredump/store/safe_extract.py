"""
Safe extraction
===============

Map remote object keys to paths under a destination directory, refusing every key that
could write outside it: ``..`` components, absolute paths and symlinks planted in DEST;
and open a file that a document names under its directory, by the same rules.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from coredump.errors import StorageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import BinaryIO, Optional

__all__ = ("check_relative_key", "safe_target", "open_safe_tempfile", "commit_tempfile", "open_inside")


def check_relative_key(relative: str) -> Optional[str]:
    """The reason ``relative`` (a key with its prefix removed) is unsafe, or None.

    Rules follow tarfile's ``data`` filter (PEP 706): no absolute path, no ``..``, no
    empty or ``.`` component, no NUL and no backslash (a separator on Windows).

    >>> check_relative_key("c1/core.zst") is None
    True
    >>> check_relative_key("../../etc/x")
    "parent directory component '..'"
    >>> check_relative_key("/abs")
    'absolute path'
    """
    if not relative:
        return "empty name"
    if relative.startswith("/"):
        return "absolute path"
    if "\0" in relative or "\\" in relative:
        return "NUL or backslash in name"
    for part in relative.split("/"):
        if part == "..":
            return "parent directory component '..'"
        if part in ("", "."):
            return f"empty or '.' component in {relative!r}"
    return None


def safe_target(dest: Path, relative: str, create: bool = False, created: Optional[list] = None) -> Path:
    """The path of ``relative`` under ``dest``; each existing component is checked with
    ``lstat`` so a symlink anywhere under ``dest`` is refused (it could point outside).

    With ``create``, missing parent directories are made one at a time, mode 0o755, and
    appended to ``created`` (for the caller to remove if it gives up).
    """
    reason = check_relative_key(relative)
    if reason:
        raise StorageError(f"unsafe name {relative!r}: {reason}")
    parts = relative.split("/")
    path = dest
    for index, part in enumerate(parts):
        path = path / part
        last = index == len(parts) - 1
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            if create and not last:
                os.mkdir(path, 0o755)
                if created is not None:
                    created.append(path)
            continue
        if stat.S_ISLNK(mode):
            raise StorageError(f"unsafe name {relative!r}: {path} is a symlink")
        if not last and not stat.S_ISDIR(mode):
            raise StorageError(f"unsafe name {relative!r}: {path} is not a directory")
        if last and not stat.S_ISREG(mode):
            raise StorageError(f"unsafe name {relative!r}: {path} exists and is not a regular file")
    return path


def open_safe_tempfile(dest: Path, relative: str, created: Optional[list] = None):
    """Create the parents of ``relative`` under ``dest`` (appended to ``created``) and open a
    temporary file beside it; returns ``(file object, temporary path, final path)``."""
    target = safe_target(dest, relative, create=True, created=created)
    # mkstemp opens with O_CREAT | O_EXCL: it never follows a symlink planted at its name.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    return os.fdopen(fd, "wb"), Path(tmp), target


def commit_tempfile(tmp: Path, dest: Path, relative: str) -> Path:
    """Rename a finished temporary file onto its final name after checking the path again
    (rename replaces a symlink itself, never the file it points to)."""
    target = safe_target(dest, relative)
    os.replace(tmp, target)
    return target


def open_inside(root: Path, relative) -> BinaryIO:
    """Open the regular file ``relative`` names under ``root`` for reading, once: the name
    must pass :func:`safe_target` (no ``..``, absolute part or symlink), resolve (realpath)
    inside ``root``, open with O_NOFOLLOW and be a regular file by ``fstat`` of that open
    descriptor; every later read uses the descriptor, never the path (a swap after the
    check changes nothing). Raises StorageError saying why not."""
    if not isinstance(relative, str):
        raise StorageError(f"unsafe name {relative!r}: not a string")
    path = safe_target(root, relative)
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
        raise StorageError(f"unsafe name {relative!r}: it resolves outside {root}")
    try:
        # O_NONBLOCK: a FIFO planted under the name must not block the open (open(2)).
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise StorageError(f"cannot open {relative!r} in {root}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StorageError(f"unsafe name {relative!r}: not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")
