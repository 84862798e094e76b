"""
dwz-compressed debug files, made at test time
=============================================

``c_samples``' O0 ``uselib`` and ``libcrash.so`` with their debug info split off
(``objcopy --only-keep-debug``, then ``--strip-debug``: the symbol table stays) and the two
debug files compressed together by Debian's ``dwz -m`` into one supplementary file, laid
out in a debug directory the way a distribution lays out its -dbg packages.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Dict, Optional

from coredump.elf.image import ElfImage
from tests.cores import BUILD, build_samples

__all__ = ("dwz_skip_reason", "strip_pair", "dwz_debug_dir", "LAYOUTS")

PAIR = ("uselib", "libcrash.so")

# How a debug file names its supplementary file, and where the file then is: the places
# coredump.dwarf.supplementary looks, after gdb's dwarf2_get_dwz_file.
LAYOUTS: Dict[str, dict] = {
    # Debian's: an absolute /usr/lib/debug/.dwz/ path; here under another debug directory.
    "dwz-dir": {"name": "/usr/lib/debug/.dwz/coredump-test/common.debug",
                "at": ".dwz/coredump-test/common.debug"},
    # Fedora's: relative to the debug file (.build-id/xx/ -> ../../.dwz/).
    "relative": {"name": "../../.dwz/common.debug", "at": ".dwz/common.debug"},
    # Only the build-id leads to it.
    "build-id": {"name": "/nonexistent-coredump-test/common.debug", "at": None},
    # DWARF 5 supplementary object file (.debug_sup, DW_FORM_strp_sup / DW_FORM_ref_sup4).
    "dwarf5": {"name": "../../.dwz/common5.debug", "at": ".dwz/common5.debug", "dwarf5": True},
}


def dwz_skip_reason() -> Optional[str]:
    for tool, package in (("dwz", "dwz"), ("objcopy", "binutils")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: {package}): the dwz cases are made with it"
    return None


def _run(*argv) -> None:
    subprocess.run([str(a) for a in argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def strip_pair(out: Path) -> Dict[str, Path]:
    """``out/bin/{uselib,libcrash.so}`` without DWARF and ``out/split/<name>.debug`` beside;
    returns name -> the split debug file."""
    build_samples()
    (out / "bin").mkdir(parents=True)
    (out / "split").mkdir()
    debug = {}
    for name in PAIR:
        exe = out / "bin" / name
        shutil.copyfile(BUILD / "O0" / name, exe)
        exe.chmod(0o755)
        debug[name] = out / "split" / (name + ".debug")
        _run("objcopy", "--only-keep-debug", exe, debug[name])
        _run("objcopy", "--strip-debug", exe)
    return debug


def dwz_debug_dir(split: Dict[str, Path], root: Path, layout: str) -> Path:
    """A debug directory `root` with ``.build-id/xx/yyyy.debug`` for each split file, all of
    them compressed by ``dwz -m`` into one supplementary file placed as `layout` says."""
    spec = LAYOUTS[layout]
    work = root / "work"
    work.mkdir(parents=True)
    copies = []
    for path in split.values():
        copies.append(work / path.name)
        shutil.copyfile(path, copies[-1])
    common = work / "common.debug"
    _run("dwz", *(["--dwarf-5"] if spec.get("dwarf5") else []), "-m", common, "-M", spec["name"], *copies)
    for copy in copies:
        build_id = ElfImage(str(copy)).build_id
        dest = root / ".build-id" / build_id[:2] / (build_id[2:] + ".debug")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(copy), dest)
    if spec["at"] is None:
        from coredump.dwarf.supplementary import file_identity

        identity = file_identity(ElfImage(str(common)))
        at = root / ".build-id" / identity[:2] / (identity[2:] + ".debug")
    else:
        at = root / spec["at"]
    at.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(common), at)
    shutil.rmtree(work)
    return at
