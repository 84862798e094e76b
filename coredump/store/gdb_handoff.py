"""
gdb hand-off
============

Open a crash (a crash directory, a core or a core.zst) in gdb with the bundled files: a
sysroot-like tree of links for the shared libraries, a debug-file directory of
``.build-id/xx/yyyy.debug`` links (the dwz supplementary files included), and the executable
that matches the core's build-id.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile

from coredump.errors import MissingFileError
from coredump.record import dataclass, field
from coredump.store.bundle import CrashInput, decompress_to, find_crash_input

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Optional, Sequence

__all__ = ("GdbModule", "GdbSession", "prepare_gdb", "list_core_modules", "bundled_file", "file_build_id")


@dataclass(frozen=True)
class GdbModule:
    """A module of the core: its path in the process, build-id, and the file gdb gets; the
    link map's name for it and the file's DT_SONAME, when they differ (store.gdb_names)."""

    path: str
    build_id: Optional[str]
    is_executable: bool
    file: Optional[str] = None
    debug_file: Optional[str] = None
    link_name: Optional[str] = None
    soname: Optional[str] = None
    supplementary_file: Optional[str] = None  # the dwz file debug_file names, bundled


@dataclass
class GdbSession:
    """Everything one gdb run needs; ``workdir`` holds the links (and the decompressed core)."""

    argv: List[str]
    workdir: str
    core: str
    executable: Optional[str]
    modules: List[GdbModule] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def bundled_file(files_dir: Optional[str], build_id: Optional[str], name: str, debug: bool = False) -> Optional[str]:
    """``files/<build-id>/<name>`` (or its ``.debug``), else any file of that build-id."""
    if not files_dir or not build_id:
        return None
    d = os.path.join(files_dir, build_id)
    want = name + ".debug" if debug else name
    if os.path.isfile(os.path.join(d, want)):
        return os.path.join(d, want)
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return None
    return next((os.path.join(d, n) for n in names if n.endswith(".debug") == debug), None)


def file_build_id(path: str) -> Optional[str]:
    """The GNU build-id of the ELF file at `path` (None when it has none or is no ELF)."""
    from coredump.elf.image import open_image

    image = open_image(path)
    return image.build_id if image is not None else None


def _checked(file: Optional[str], build_id: Optional[str], path: str, warnings: List[str]) -> Optional[str]:
    """`file` when its build-id is the module's; else None and a warning: gdb given a file
    of another build shows wrong symbols and lines without a word."""
    if file is None or build_id is None:
        return file
    found = file_build_id(file)
    if found == build_id:
        return file
    warnings.append(f"{path}: BUILD-ID MISMATCH: {file} has build-id {found or 'none'}, the core's module "
                    f"{build_id}; not given to gdb")
    return None


def list_core_modules(core_path: str, files_dir: Optional[str],
                      warnings: Optional[List[str]] = None) -> List[GdbModule]:
    """The core's file-backed modules (NT_FILE, build-ids from the dumped ELF headers), each
    with the bundled file and debug file whose build-id is the module's; `warnings` gains one
    line per bundled file of another build-id."""
    from coredump.elf.core import open_core
    from coredump.elf.modules import VDSO_NAME, find_modules
    from coredump.store.gdb_names import link_map_names, read_soname

    warnings = warnings if warnings is not None else []
    with open_core(core_path) as core:
        found = find_modules(core)
        link_names = link_map_names(core, found)
    out = []
    for m in found:
        if m.path == VDSO_NAME:
            continue  # gdb reads the vDSO from the core itself
        name = os.path.basename(m.path)
        file = _checked(bundled_file(files_dir, m.build_id, name), m.build_id, m.path, warnings)
        debug = _checked(bundled_file(files_dir, m.build_id, name, debug=True), m.build_id, m.path, warnings)
        soname = read_soname(file) if file is not None and not m.is_executable else None
        sup = _bundled_supplementary(files_dir, debug)
        out.append(GdbModule(m.path, m.build_id, m.is_executable, file, debug, link_name=link_names.get(m.path),
                             soname=soname, supplementary_file=sup))
    return out


def _bundled_supplementary(files_dir: Optional[str], debug: Optional[str]) -> Optional[str]:
    """The bundled dwz file (``files/<identity>/*.debug``) that the debug file `debug` names,
    checked by its identity; None when it names none or none is bundled."""
    from coredump.dwarf.supplementary import file_identity, read_link
    from coredump.elf.image import open_image

    image = open_image(debug) if debug else None
    link = read_link(image) if image is not None else None
    if link is None or not link.build_id or not all(c in "0123456789abcdef" for c in link.build_id):
        return None
    found = bundled_file(files_dir, link.build_id, os.path.basename(link.name), debug=True)
    sup = open_image(found) if found else None
    return found if sup is not None and file_identity(sup) == link.build_id else None


def _link(target: str, root: str, name: str, warnings: List[str]) -> None:
    """``root/<name> -> target``. `name` comes from the core (NT_FILE) and is hostile: it is
    flattened under `root` as if `root` were ``/`` (``..`` stops there, as in path
    resolution at the root directory, POSIX.1 §4.13), and the link's folder must resolve
    (realpath) inside `root`, so no link lands outside the work folder."""
    relative = os.path.normpath("/" + name).lstrip("/")
    link = os.path.join(root, relative)
    real_root = os.path.realpath(root)
    if relative in ("", ".") or os.path.commonpath(
            [real_root, os.path.realpath(os.path.dirname(link))]) != real_root:
        warnings.append(f"{name}: not linked, the name leaves {root}")
        return
    try:
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(target), link)
    except OSError as exc:
        warnings.append(f"{name}: not linked in {root} ({exc.strerror})")


def _build_trees(workdir: str, modules: Sequence[GdbModule]) -> List[str]:
    """sysroot/<path> and solib/<basename> links to each module's file (the bundled one,
    else the local file at that path); debug/.build-id/xx/yyyy.debug links (gdb manual,
    "Separate Debug Files": the build-id method). Returns warnings."""
    warnings = []
    for m in modules:
        file = m.file
        if file is None:
            if os.path.isfile(m.path) and _checked(m.path, m.build_id, m.path, warnings):
                file = m.path
                warnings.append(f"{m.path}: not bundled; gdb uses the local file")
            elif os.path.isfile(m.path):
                continue
            else:
                warnings.append(f"{m.path}: not bundled and not on this machine")
                continue
        # gdb looks for a shared library at sysroot + l_name, then in solib-search-path by
        # basename (solib.c solib_find_1); l_name may differ from NT_FILE's path (/lib vs
        # /usr/lib, libstdc++.so.6 vs the real libstdc++.so.6.0.30), so each name the
        # library is known by gets a link in both trees.
        for name in dict.fromkeys(n for n in (m.path, m.link_name) if n):
            _link(file, os.path.join(workdir, "sysroot"), name, warnings)
        if not m.is_executable:
            for name in dict.fromkeys(n for n in (m.path, m.link_name, m.soname) if n):
                _link(file, os.path.join(workdir, "solib"), os.path.basename(name), warnings)
        if m.build_id and m.debug_file:
            _link(m.debug_file, os.path.join(workdir, "debug"),
                  f".build-id/{m.build_id[:2]}/{m.build_id[2:]}.debug", warnings)
        if m.debug_file and m.supplementary_file:
            _link_supplementary(workdir, m.supplementary_file, warnings)
    return warnings


def _link_supplementary(workdir: str, path: str, warnings: List[str]) -> None:
    """debug/.build-id/xx/yyyy.debug for a dwz file, by the identity its users name it by:
    gdb's dwarf2_get_dwz_file tries the link's path, then that build-id under the
    debug-file-directory (dwarf2/dwz.c)."""
    from coredump.dwarf.supplementary import file_identity
    from coredump.elf.image import open_image

    image = open_image(path)
    identity = file_identity(image) if image is not None else None
    if identity and all(c in "0123456789abcdef" for c in identity):
        _link(path, os.path.join(workdir, "debug"), f".build-id/{identity[:2]}/{identity[2:]}.debug", warnings)


def prepare_gdb(path: str, gdb: str = "gdb", exe: Optional[str] = None, extra: Sequence[str] = (),
                workdir: Optional[str] = None) -> GdbSession:
    """Build the link trees and the gdb command line for the crash at `path`."""
    from coredump.symbols.finder import DEFAULT_DEBUG_DIRS

    crash: CrashInput = find_crash_input(path)
    workdir = workdir or tempfile.mkdtemp(prefix="coredump-gdb-")
    core = crash.core
    if crash.compressed:
        core = os.path.join(workdir, "core")
        with open(core, "wb") as out:
            decompress_to(crash.core, out)
    warnings: List[str] = []
    modules = list_core_modules(core, crash.files_dir, warnings)
    warnings += _build_trees(workdir, modules)
    executable = exe or _executable(modules)
    if executable is not None:
        # gdb/main.c parses options with getopt_long_only wherever they appear: a relative
        # name from NT_FILE such as "--eval-command=shell …" would be an option; an
        # absolute path never is.
        executable = os.path.abspath(executable)
    core = os.path.abspath(core)
    if executable is None:
        warnings.append("executable not found: gdb starts with the core alone")
    elif not os.path.isfile(executable):
        raise MissingFileError(f"{executable}: no such file")
    debug_dirs = [os.path.join(workdir, "debug"), *DEFAULT_DEBUG_DIRS]
    argv = [gdb,
            "-iex", f"set sysroot {os.path.join(workdir, 'sysroot')}",
            "-iex", f"set solib-search-path {os.path.join(workdir, 'solib')}",
            "-iex", f"set debug-file-directory {os.pathsep.join(debug_dirs)}",
            *extra]
    argv += [executable, core] if executable else ["-c", core]
    return GdbSession(argv, workdir, core, executable, modules, warnings)


def _executable(modules: Sequence[GdbModule]) -> Optional[str]:
    for m in modules:
        if m.is_executable:
            if m.file is not None:
                return m.file
            # The local file only when it is the build that crashed (_build_trees warned otherwise).
            return m.path if os.path.isfile(m.path) and _checked(m.path, m.build_id, m.path, []) else None
    return None
