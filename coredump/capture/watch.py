"""
Watch
=====

Keep each crash of the step when core_pattern gives every crash the same file name.

With a pattern such as ``core`` (the kernel's default) and ``kernel.core_uses_pid=0``,
the kernel unlinks the previous ``core`` before it writes the next one (fs/coredump.c,
do_coredump: "Unlink the file if it exists", then O_CREAT|O_EXCL), so of three crashes
in one directory only the last survives. While the step runs, ``run`` watches the
directories where cores can land (the working tree, ``--core-dir`` and core_pattern's
own directory) with inotify: each file of a core's name is held open from its creation
(IN_CREATE), gets a second name once the kernel has closed it (IN_CLOSE_WRITE), and is
named ``NAME.PID`` when the step has exited, the pid from its NT_PRPSINFO note; one the
next crash unlinked first is copied back out of the descriptor. A core of another job
(``owner.StepTree``) keeps its name.

No watch is needed, and none is set, when the pattern names each crash apart (%p, %P,
%i, %I, or core_uses_pid), pipes cores to a program, or is empty.
"""

from __future__ import annotations

import os
import re
import stat

from coredump.capture import inotify as ino
from coredump.capture.core_pattern import CorePattern
from coredump.capture.find import ET_CORE, PRUNED, list_directory

__all__ = ("reuses_names", "CoreWatcher", "MAX_WATCHES", "MAX_HELD")

# Documentation/admin-guide/sysctl/kernel.rst: the specifiers that differ between two
# processes alive at once (their pid or tid in either namespace).
_UNIQUE = frozenset("pPiI")
# Bounds on the directories watched (and walked before the step starts), and on the
# files of a core's name held open (each a descriptor).
MAX_WATCHES = 8192
MAX_HELD = 256
_DIR_MASK = ino.IN_CLOSE_WRITE | ino.IN_CREATE | ino.IN_ONLYDIR | ino.IN_DONT_FOLLOW | ino.IN_EXCL_UNLINK


def reuses_names(pattern: CorePattern | None) -> bool:
    """Whether two crashes in one directory get the same core file name.

    >>> from coredump.capture.core_pattern import parse_core_pattern as p
    >>> reuses_names(p("core")), reuses_names(p("core", uses_pid=True)), reuses_names(p("core.%e.%p"))
    (True, False, False)
    """
    if pattern is None or pattern.is_pipe or not pattern.path:
        return False
    # Specifiers read left to right as format_corename does: "%%p" is a literal "%p".
    return not _UNIQUE & set(re.findall(r"%(.)", pattern.path))


def _tail(path: str, n: int) -> str:
    return "/".join(path.split("/")[-n:])


class CoreWatcher:
    """The inotify watches on `roots` (trees) and the pattern's directory, and the cores
    moved (``finish``, for the harvest); ``step_pid`` is set once the step runs (cores
    of other jobs are put back by ``owner.StepTree``); `echo` prints one line per move
    or problem."""

    def __init__(self, roots, pattern: CorePattern, exclude=(), echo=None, shared=()):
        """`shared` are the directories other jobs dump cores into too (``--core-dir``, an
        absolute pattern's directory): a core there is the step's only when its notes prove
        it (``owner.StepTree.foreign(shared=True)``), as harvest judges it."""
        self.pattern, self.echo = pattern, echo or (lambda line: None)
        shared = list(shared) + ([pattern.directory or "/"] if pattern.is_absolute else [])
        self.shared = [os.path.join(os.path.realpath(d), "") for d in shared]
        self.exclude = {os.path.abspath(e) for e in exclude}
        self.moved: list[str] = []
        self.step_pid: int | None = None
        self.broken = False  # set by the caller once an error made it give the watcher up
        self._dirs: dict[int, str] = {}
        self._held: dict[int, list] = {}  # inode: [descriptor, NAME, its name now]
        self._full = False
        self.inotify = ino.Inotify()
        try:
            for root in roots:
                self._watch_tree(os.path.abspath(root), None)
            if pattern.is_absolute:
                self._watch_tree(pattern.directory or "/", pattern.depth - 1)
        except BaseException:
            self.close()
            raise

    @property
    def fd(self) -> int:
        return self.inotify.fd

    def _watch_tree(self, top: str, depth: int | None, scan: bool = False) -> None:
        """Watch `top` and the directories below it (`depth` levels; None: all), on its
        filesystem, without following symlinks; with `scan`, handle the cores already there
        (a directory made while the step runs may have one before its watch exists)."""
        try:
            dev = os.lstat(top).st_dev
        except OSError:
            return
        stack = [(top, 0)]
        while stack and not self._full:
            directory, level = stack.pop()
            if not self._add(directory):
                continue
            for entry in list_directory(directory, level) or ():
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if (depth is None or level < depth) and entry.name not in PRUNED \
                                and entry.path not in self.exclude and entry.stat(follow_symlinks=False).st_dev == dev:
                            stack.append((entry.path, level + 1))
                    elif scan and entry.is_file(follow_symlinks=False):
                        self._hold(entry.path, closed=True)
                except OSError:
                    continue

    def _add(self, directory: str) -> bool:
        if len(self._dirs) >= MAX_WATCHES:
            return self._stop_adding(f"{MAX_WATCHES} directories watched already")
        try:
            wd = self.inotify.add_watch(directory, _DIR_MASK)
        except OSError as exc:
            if exc.errno == 28:  # ENOSPC: fs.inotify.max_user_watches
                return self._stop_adding("the inotify watch limit (fs.inotify.max_user_watches) is reached")
            return False
        self._dirs[wd] = directory
        return True

    def _stop_adding(self, why: str) -> bool:
        if not self._full:
            self._full = True
            self.echo(f"coredump: warning: {why}: a second crash in a directory not watched may overwrite "
                      "the first one's core")
        return False

    def _matches(self, path: str) -> bool:
        p = self.pattern
        return p.matches(path) if p.is_absolute else p.matches(_tail(path, p.depth))

    def process(self) -> None:
        """Act on every queued event: watch each new directory, hold each new file of a
        core's name."""
        for wd, mask, name in self.inotify.read_events():
            if mask & ino.IN_Q_OVERFLOW:
                for directory in list(self._dirs.values()):
                    self._watch_tree(directory, 0, scan=True)
                continue
            directory = self._dirs.get(wd)
            if mask & ino.IN_IGNORED:
                self._dirs.pop(wd, None)
            if directory is None or not name:
                continue
            path = os.path.join(directory, name)
            if mask & ino.IN_ISDIR:
                if mask & ino.IN_CREATE and name not in PRUNED and path not in self.exclude:
                    self._watch_tree(path, None, scan=True)
            else:
                self._hold(path, closed=bool(mask & ino.IN_CLOSE_WRITE))

    def _hold(self, path: str, closed: bool) -> None:
        """Hold each new file of a core's name open from its creation (IN_CREATE: the kernel
        has just created it and is writing it): when the next crash unlinks the name, the
        inode lives on in this descriptor. Once closed (IN_CLOSE_WRITE) a core still under
        its name is renamed ``NAME.coredump-INODE`` at once, a name no crash writes; one that
        is not a core is let go. A tiny crashing program is dumped, and the next one started
        by a shell, in well under a millisecond: the descriptor, not the rename, is what
        wins that race. Nothing is visible to the step but the rename of its core."""
        if not self._matches(path):
            return
        try:
            st = os.lstat(path)
        except OSError:
            return
        if not stat.S_ISREG(st.st_mode):
            return
        held = self._held.get(st.st_ino)
        if held is None and len(self._held) < MAX_HELD:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                return
            if os.fstat(fd).st_ino != st.st_ino:
                os.close(fd)
                return
            held = self._held[st.st_ino] = [fd, path, path]
        if held is not None and closed and held[2] == path:
            if _is_core_fd(held[0]):
                # A second name for the inode held (not for whatever NAME is by now).
                aside = _link_aside(held[0], f"{path}.coredump-{st.st_ino}")
                if aside is not None:
                    held[2] = aside
            elif os.fstat(held[0]).st_size:
                os.close(held[0])  # written and closed, and no core: the step's own file
                del self._held[st.st_ino]

    def finish(self) -> list[str]:
        """Once the step has exited: each held core of the step is named ``NAME.PID``
        (NT_PRPSINFO's pr_pid) and its other names removed; one that a later crash unlinked
        before it got its second name is copied there from the descriptor. A core of
        another job keeps NAME. The cores of the step, for the harvest."""
        if not self._held:
            return self.moved  # nothing of a core's name appeared: the note reader is not needed
        from coredump.capture.owner import StepTree, read_core_ids

        foreign = StepTree(self.step_pid).foreign if self.step_pid is not None else (lambda ids, shared=False: None)
        for inode, (fd, path, aside) in self._held.items():
            try:
                names = [n for n in {path, aside} if _same_inode(n, inode)]
                linked = os.fstat(fd).st_nlink > 0
                if not _is_core_fd(fd) or (linked and not names):
                    continue  # not a core; or the step renamed it: found where it is, if at all
                ids = read_core_ids(f"/proc/self/fd/{fd}")
                if foreign(ids, shared=self._in_shared(path)) is not None:
                    self._let_go(path, aside, names)
                    continue
                final = self._keep(fd, path, linked, ids)
                for name in names:
                    if final is not None and name != final:
                        _unlink(name)
                if final is not None or names:
                    self.moved.append(final or names[0])  # not renamed: harvested where it is
            finally:
                os.close(fd)
        self._held = {}
        return self.moved

    def _in_shared(self, path: str) -> bool:
        where = os.path.join(os.path.realpath(os.path.dirname(path)), "")
        return any(where.startswith(d) for d in self.shared)

    @staticmethod
    def _let_go(path: str, aside: str, names) -> None:
        """Another job's core keeps NAME: the second name given it goes (its owner may have
        renamed or stored it meanwhile), or becomes NAME again when it is the only one left."""
        if aside == path or aside not in names:
            return
        if path in names or os.lstat(aside).st_nlink > 1:
            _unlink(aside)
        elif not os.path.lexists(path):
            try:
                os.rename(aside, path)
            except OSError:
                pass

    def _keep(self, fd: int, path: str, linked: bool, ids) -> str | None:
        target = f"{path}.{ids.pid}" if ids is not None else f"{path}.coredump-{os.fstat(fd).st_ino}"
        final = (_link_aside(fd, target) or _copy_out(fd, target)) if linked else _copy_out(fd, target)
        what = f"{os.path.relpath(path)}{f' of pid {ids.pid}' if ids else ''}"
        if final is None:
            self.echo(f"coredump: warning: the core {what} could not be kept as {os.path.basename(target)} "
                      f"({'it stays under its name' if linked else 'a later crash unlinked it, and no copy fit'})")
        else:
            how = "moved" if linked else "kept (a later crash unlinked it)"
            self.echo(f"coredump: {what} {how} as {os.path.basename(final)}, so that a later crash could not "
                      "overwrite it")
        return final

    def close(self) -> None:
        """Close every descriptor (again: a no-op)."""
        for fd, _path, _name in self._held.values():
            os.close(fd)
        self._held = {}
        self.inotify.close()


def _is_core_fd(fd: int) -> bool:
    """The ELF header's e_type is ET_CORE (find.is_core_file, on a descriptor)."""
    head = os.pread(fd, 18, 0)
    if len(head) < 18 or head[:4] != b"\x7fELF" or head[5] not in (1, 2):
        return False
    return int.from_bytes(head[16:18], "little" if head[5] == 1 else "big") == ET_CORE


def _copy_out(fd: int, target: str) -> str | None:
    """The unlinked file behind `fd` copied to `target` (or ``target.N``), made O_EXCL
    with the kernel's core mode 0600 (fs/coredump.c); the name, or None."""
    for n in range(100):
        name = target if n == 0 else f"{target}.{n}"
        try:
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        except OSError:
            return None
        try:
            size, offset = os.fstat(fd).st_size, 0
            while offset < size:
                done = os.copy_file_range(fd, out, size - offset, offset, offset)
                if done == 0:
                    break
                offset += done
        except OSError:
            os.close(out)
            _unlink(name)
            return None
        os.close(out)
        return name
    return None


def _same_inode(path: str, inode: int) -> bool:
    try:
        return os.lstat(path).st_ino == inode
    except OSError:
        return False


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _link_aside(fd: int, dst: str) -> str | None:
    """A second name for the file open at `fd`: `dst`, or ``dst.N`` when that exists
    (link(2) replaces no file); the name made, or None (a filesystem without hard links,
    an unlinked file). linkat(2) with AT_SYMLINK_FOLLOW on ``/proc/self/fd/N`` (proc(5))
    links the open file itself, not whatever its old name holds by now."""
    try:
        proc_fd = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        for n in range(100):
            target = dst if n == 0 else f"{dst}.{n}"
            try:
                os.link(str(fd), target, src_dir_fd=proc_fd, follow_symlinks=True)
                return target
            except FileExistsError:
                continue
            except OSError:
                return None
        return None
    finally:
        os.close(proc_fd)
