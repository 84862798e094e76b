"""
File finder
===========

Find the file behind each module and its separate debug file, the way gdb and elfutils do:
the path in the core, the sysroot, search directories (by path suffix and basename), then
by build-id; debug files under ``<debug-dir>/.build-id/xx/yyyy.debug`` and via
``.gnu_debuglink`` with its CRC checked.
"""

from __future__ import annotations

import functools
import os
import zlib

from coredump.elf.image import ElfImage, open_image
from coredump.record import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable, Dict, Iterator, List, Optional, Sequence

__all__ = ("FinderOptions", "FileFinder")

DEFAULT_DEBUG_DIRS = ("/usr/lib/debug",)


@dataclass(frozen=True)
class FinderOptions:
    exe: Optional[str] = None
    sysroot: Optional[str] = None
    search_paths: Sequence[str] = ()
    debug_dirs: Sequence[str] = DEFAULT_DEBUG_DIRS
    # Directories laid out as <build-id>/<name> (an artifact bundle's files/): checked first.
    build_id_dirs: Sequence[str] = field(default_factory=tuple)
    # Seconds to wait for DEBUGINFOD_URLS servers (used only when that variable is set).
    debuginfod_timeout: Optional[float] = None  # None: $DEBUGINFOD_TIMEOUT, else 5 s
    # Roots tried after the path itself (a foreign-architecture core's cross root).
    fallback_sysroots: Sequence[str] = ()


class FileFinder:
    def __init__(self, options: FinderOptions = FinderOptions()):  # noqa: B008 - a frozen record, shared safely
        self.options = options
        self._basename_index: Optional[Dict[str, List[str]]] = None
        self._debuginfod = None  # a debuginfod.Session, made on first use

    @property
    def warnings(self) -> List[str]:
        """What went wrong while looking for files (a debuginfod server that did not answer)."""
        return list(self._debuginfod.warnings) if self._debuginfod is not None else []

    # -- the module's own file ------------------------------------------------------------

    def iter_candidates(self, path: str, build_id: Optional[str], is_executable: bool) -> Iterator[str]:
        opts = self.options
        if build_id:
            for d in opts.build_id_dirs:
                # A bundle's <name>.debug shares the build-id but holds no code (its
                # .text is SHT_NOBITS): it is a debug file, never the module itself.
                yield from (f for f in _files_in(os.path.join(d, build_id)) if not f.endswith(".debug"))
        if is_executable and opts.exe:
            yield opts.exe
        if opts.sysroot:
            yield os.path.join(opts.sysroot, path.lstrip("/"))
        for d in opts.search_paths:
            rel = path.lstrip("/")
            while rel:
                yield os.path.join(d, rel)
                if "/" not in rel:
                    break
                rel = rel.split("/", 1)[1]
        if not opts.sysroot:
            yield path
        for root in opts.fallback_sysroots:
            yield os.path.join(root, path.lstrip("/"))
        name = os.path.basename(path)
        yield from self._by_basename(name)
        if build_id:
            for d in opts.debug_dirs:
                # The debug-dir's .build-id/xx/yyyy link points at the stripped object itself.
                yield os.path.join(d, ".build-id", build_id[:2], build_id[2:])

    def find_file(self, path: str, build_id: Optional[str], is_executable: bool = False) -> Optional[ElfImage]:
        """The best ELF image for a module: the first candidate whose build-id matches, else
        the first readable candidate (its mismatch is the caller's to report)."""
        fallback = None
        for cand in self.iter_candidates(path, build_id, is_executable):
            image = open_image(cand)
            if image is None:
                continue
            if build_id is None or image.build_id == build_id:
                return image
            if fallback is None:
                fallback = image
            if is_executable and cand == self.options.exe:
                return image  # an explicit --exe wins even when mismatched
        return self._from_debuginfod(build_id, "executable") or fallback

    def _from_debuginfod(self, build_id: Optional[str], kind: str,
                         accept: Optional[Callable[[ElfImage], bool]] = None) -> Optional[ElfImage]:
        """The last resort, only when DEBUGINFOD_URLS is set (elfutils' and gdb's rule); the
        file must have `build_id`, or pass `accept`."""
        from coredump.symbols import debuginfod

        if self._debuginfod is None:
            self._debuginfod = debuginfod.Session(self.options.debuginfod_timeout)
        path = self._debuginfod.fetch(build_id, kind)
        image = open_image(path) if path else None
        if image is None:
            return None
        return image if (accept(image) if accept else image.build_id == build_id) else None

    def _by_basename(self, name: str) -> List[str]:
        if self._basename_index is None:
            index: Dict[str, List[str]] = {}
            for d in self.options.search_paths:
                for root, _dirs, files in os.walk(d):
                    for f in files:
                        index.setdefault(f, []).append(os.path.join(root, f))
            self._basename_index = index
        return self._basename_index.get(name, [])

    # -- separate debug files -------------------------------------------------------------

    def find_debug_file(self, image: ElfImage, build_id: Optional[str]) -> Optional[ElfImage]:
        """A separate debug file for `image` (gdb manual, "Separate Debug Files")."""
        build_id = build_id or image.build_id
        found = self.find_debug_by_build_id(build_id) if build_id else None
        return found or self._find_by_debuglink(image) or self._from_debuginfod(build_id, "debuginfo")

    def find_debug_by_build_id(self, build_id: str, accept: Optional[Callable[[ElfImage], bool]] = None
                               ) -> Optional[ElfImage]:
        """The debug file of `build_id` in the bundle's ``files/<build-id>/`` or under a debug
        directory's ``.build-id/xx/yyyy.debug``. `accept(image)` checks a candidate (default:
        its build-id is `build_id` and it has DWARF; a dwz supplementary file has its own test)."""
        accept = accept or functools.partial(_is_debug_file_of, build_id)
        for d in self.options.build_id_dirs:
            for cand in _files_in(os.path.join(d, build_id)):
                if cand.endswith(".debug"):
                    dbg = open_image(cand)
                    if dbg is not None and accept(dbg):
                        return dbg
        for d in self.debug_dirs():
            dbg = open_image(os.path.join(d, ".build-id", build_id[:2], build_id[2:] + ".debug"))
            if dbg is not None and accept(dbg):
                return dbg
        return None

    def fetch_debuginfo(self, build_id: str, accept: Callable[[ElfImage], bool]) -> Optional[ElfImage]:
        """The debuginfod server's debug file of `build_id`, if `accept` takes it (only when
        DEBUGINFOD_URLS is set)."""
        return self._from_debuginfod(build_id, "debuginfo", accept)

    def _find_by_debuglink(self, image: ElfImage) -> Optional[ElfImage]:
        link = image.debuglink
        if link is None:
            return None
        name, crc = link
        here = os.path.dirname(os.path.realpath(image.path))
        candidates = [os.path.join(here, name), os.path.join(here, ".debug", name)]
        candidates += [os.path.join(d, here.lstrip("/"), name) for d in self.debug_dirs()]
        for cand in candidates:
            if os.path.realpath(cand) == os.path.realpath(image.path):
                continue
            dbg = open_image(cand)
            if dbg is not None and _crc32(cand) == crc:
                return dbg
        return None

    def debug_dirs(self) -> List[str]:
        dirs = list(self.options.debug_dirs)
        if self.options.sysroot:
            dirs.insert(0, os.path.join(self.options.sysroot, "usr/lib/debug"))
        return dirs


def _is_debug_file_of(build_id: str, image: ElfImage) -> bool:
    return image.build_id == build_id and image.has_debug_info


def _files_in(directory: str) -> List[str]:
    try:
        return sorted(os.path.join(directory, f) for f in os.listdir(directory))
    except OSError:
        return []


def _crc32(path: str) -> int:
    crc = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            crc = zlib.crc32(chunk, crc)
    return crc & 0xFFFFFFFF
