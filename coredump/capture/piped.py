"""
Piped cores
===========

When core_pattern pipes cores to a program the kernel writes no file: read them back
from systemd-coredump (``coredumpctl dump``, or its store of zstd/lz4/xz files) or from
apport's ``/var/crash``, and otherwise say what is going on and how to fix it.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess

from coredump.capture.core_pattern import CorePattern, describe_core_pattern, pipe_kind
from coredump.record import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Optional

__all__ = ("PipedCores", "read_back", "SYSTEMD_STORE", "APPORT_DIR", "decompress_systemd_core",
           "fix_hint", "summary_line")

SYSTEMD_STORE = "/var/lib/systemd/coredump"
APPORT_DIR = "/var/crash"
# coredumpctl list: TIME (weekday date time zone) PID UID GID SIG COREFILE EXE SIZE
_COREDUMPCTL_LINE = re.compile(
    r"^\S+ \S+ \S+ \S+\s+(?P<pid>\d+)\s+\d+\s+\d+\s+\S+\s+(?P<corefile>\S+)\s+(?P<exe>\S+)")


@dataclass
class PipedCores:
    """Cores read back into ``directory`` (temporary: the pipe's program keeps its own
    copy), and ``messages`` saying what was done or why nothing could be."""

    kind: str
    cores: List[str] = field(default_factory=list)
    messages: List[str] = field(default_factory=list)
    # Whether the program's cores can be read back here at all: False for an unknown
    # program, apport (it keeps a core only of a packaged program), or systemd-coredump
    # without coredumpctl and its store.
    readable: bool = False


def fix_hint(kind: Optional[str] = None, pattern: Optional[CorePattern] = None) -> str:
    """How to make the kernel write core files where coredump looks; for apport and
    systemd-coredump it starts by saying that cores are piped there (`pattern`)."""
    hint = ("to have core files written instead, set a file pattern on the host: "
            "`sudo sysctl -w kernel.core_pattern=core` (inside a container the host's "
            "core_pattern applies: set it on the host or in a privileged container), "
            "or pass --core-dir DIR when the cores are written to DIR")
    if kind == "systemd-coredump":
        hint = "install coredumpctl (package systemd-coredump) to read cores back, or " + hint
    if pattern is not None and kind in ("systemd-coredump", "apport"):
        hint = f"{describe_core_pattern(pattern)}; {hint}"
    return hint


def summary_line(pattern: CorePattern, got: PipedCores) -> str:
    """The one line ``coredump run`` prints at the end of every step on a piped core_pattern."""
    head = f"core_pattern pipes cores to {pattern.program}"
    n = len(got.cores)
    if n or got.readable:
        return f"{head}; {n} core{'' if n == 1 else 's'} read back"
    return f"{head}; none could be read back: {fix_hint(got.kind, pattern)}"


def decompress_systemd_core(src: str, dst: str) -> None:
    """Write the raw core of a systemd-coredump store file (.zst, .lz4, .xz or plain)."""
    if src.endswith(".zst"):
        from coredump.capture.compress import decompress_file

        decompress_file(src, dst)
    elif src.endswith(".xz"):
        import lzma

        with lzma.open(src, "rb") as fin, open(dst, "wb") as fout:
            shutil.copyfileobj(fin, fout, 4 << 20)
    elif src.endswith(".lz4"):
        _decompress_lz4(src, dst)
    else:
        shutil.copyfile(src, dst)


def _decompress_lz4(src: str, dst: str) -> None:
    try:
        import lz4.frame  # optional
    except ImportError:
        tool = shutil.which("lz4")
        if tool is None:
            raise OSError(f"{src} is lz4-compressed: install the lz4 tool or python package") from None
        subprocess.run([tool, "-d", "-q", "-f", src, dst], check=True)
        return
    with lz4.frame.open(src, "rb") as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout, 4 << 20)


def _coredumpctl(since: float, directory: str, out: PipedCores) -> bool:
    tool = shutil.which("coredumpctl")
    if tool is None:
        return False
    try:
        listing = subprocess.run([tool, "list", "--no-pager", "--no-legend", f"--since=@{int(since)}"],
                                 capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        out.messages.append(f"coredumpctl list failed: {exc}")
        return False
    if listing.returncode not in (0, 1):  # 1: "No coredumps found."
        out.messages.append(f"coredumpctl list failed: {listing.stderr.strip()}")
        return False
    for line in listing.stdout.splitlines():
        m = _COREDUMPCTL_LINE.match(line.strip())
        if m is None or m["corefile"] not in ("present", "journal"):
            continue
        dst = os.path.join(directory, f"core.{m['pid']}")
        got = subprocess.run([tool, "dump", "--no-pager", m["pid"], "-o", dst],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=600)
        if got.returncode == 0 and os.path.exists(dst):
            out.cores.append(dst)
            out.messages.append(f"read back the core of pid {m['pid']} ({m['exe']}) with coredumpctl")
        else:
            out.messages.append(f"coredumpctl dump {m['pid']} failed: {got.stderr.strip()}")
    return True


def _systemd_store(since: float, directory: str, out: PipedCores, store: str) -> None:
    for src in sorted(glob.glob(os.path.join(store, "core.*"))):
        try:
            if os.stat(src).st_mtime < since:
                continue
            dst = os.path.join(directory, os.path.basename(src).rsplit(".", 1)[0]
                               if src.endswith((".zst", ".lz4", ".xz")) else os.path.basename(src))
            decompress_systemd_core(src, dst)
        except (OSError, subprocess.SubprocessError) as exc:
            out.messages.append(f"cannot read {src}: {exc}")
            continue
        out.cores.append(dst)
        out.messages.append(f"read back {src} from the systemd-coredump store")


def _apport(since: float, directory: str, out: PipedCores, crash_dir: str) -> None:
    unpack = shutil.which("apport-unpack")
    for report in sorted(glob.glob(os.path.join(crash_dir, "*.crash"))):
        try:
            if os.stat(report).st_mtime < since:
                continue
        except OSError:
            continue
        if unpack is None:
            out.messages.append(f"apport wrote {report}; install apport-unpack to extract its CoreDump")
            continue
        target = os.path.join(directory, os.path.basename(report) + ".d")
        subprocess.run([unpack, report, target], capture_output=True, timeout=600)
        core = os.path.join(target, "CoreDump")
        if os.path.exists(core):
            out.cores.append(core)
            out.messages.append(f"extracted the core of {report} with apport-unpack")
        else:
            out.messages.append(f"apport wrote {report} without a core (apport keeps cores only for "
                                "packaged programs)")


def read_back(pattern: CorePattern, since: float, directory: str, systemd_store: str = SYSTEMD_STORE,
              apport_dir: str = APPORT_DIR) -> PipedCores:
    """Read back into `directory` the cores a piped core_pattern took since `since`."""
    kind = pipe_kind(pattern) or "other"
    out = PipedCores(kind)
    if kind == "systemd-coredump":
        out.readable = _coredumpctl(since, directory, out)
        if not out.readable and os.access(systemd_store, os.R_OK | os.X_OK):
            _systemd_store(since, directory, out, systemd_store)
            out.readable = True
    elif kind == "apport":
        _apport(since, directory, out, apport_dir)
    else:
        out.messages.append(f"core_pattern pipes cores to {pattern.program}, which coredump cannot read back")
    return out
