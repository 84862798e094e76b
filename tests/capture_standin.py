"""
Capture test entry
==================

Runs the capture commands in a subprocess the way the ``coredump`` console script
does. Until ``coredump.analysis`` and ``coredump.report`` are on this branch, a minimal
stand-in built from ``coredump.elf`` and ``coredump.target`` takes their place; once
they exist the real ones are used and the stand-in is dead code to delete.
"""

from __future__ import annotations

import os
import sys
import types

__all__ = ("install", "main", "command")


def _analyze_core(path, options=None):
    from coredump.elf.core import open_core
    from coredump.model import CoreInfo, Crash, Process, Signal
    from coredump.symbols.finder import FileFinder
    from coredump.target import Target

    core = open_core(path)
    try:
        target = Target(core, FileFinder())
        si = core.siginfo
        number = si.si_signo if si else 0
        name = {11: "SIGSEGV", 6: "SIGABRT", 8: "SIGFPE", 4: "SIGILL"}.get(number, f"SIG{number}")
        exe = target.executable.path if target.executable else None
        pid = core.prpsinfo.pr_pid if core.prpsinfo else 0
        return Crash(core=CoreInfo(os.path.abspath(path), core.size), process=Process(pid, exe),
                     signal=Signal(number, name, description=f"{name} (stand-in analysis)"),
                     crashing_thread=None, threads=(), modules=tuple(m.to_model() for m in target.modules),
                     signature=f"{name} in {os.path.basename(exe or '?')}")
    finally:
        core.close()


def _crash_to_dict(crash):
    return {"schema": "coredump.crash/1", "process": {"pid": crash.process.pid,
            "executable": crash.process.executable}, "signal": {"number": crash.signal.number,
            "name": crash.signal.name}, "signature": crash.signature,
            "modules": [{"path": m.path, "build_id": m.build_id} for m in crash.modules]}


def _render_summary(crash):
    return f"{crash.signal.name} in {crash.process.executable} (pid {crash.process.pid})"


def _in_tree(relpath: str) -> bool:
    """Whether this checkout has the module (the editable install's finder would otherwise
    import it from another checkout)."""
    import coredump

    return os.path.exists(os.path.join(os.path.dirname(coredump.__file__), relpath))


def install() -> None:
    """Put the stand-ins in sys.modules where this checkout lacks the real modules."""
    if not _in_tree("analysis.py"):
        mod = types.ModuleType("coredump.analysis")
        mod.analyze_core = _analyze_core
        sys.modules["coredump.analysis"] = mod
    if not (_in_tree("report/json.py") and _in_tree("report/text.py")):
        sys.modules["coredump.report"] = types.ModuleType("coredump.report")
        for name, attr, func in (("coredump.report.json", "crash_to_dict", _crash_to_dict),
                                 ("coredump.report.text", "render_summary", _render_summary)):
            mod = types.ModuleType(name)
            setattr(mod, attr, func)
            sys.modules[name] = mod


def command(*args: str):
    """argv that runs ``coredump ARGS…`` from this checkout (PYTHONPATH must name it)."""
    return [sys.executable, "-c", "from tests.capture_standin import main; main()", *args]


def main() -> None:
    """The console script's path: the entry's fast ``run``, else the click commands."""
    install()
    from coredump.capture.entry import main as entry
    from coredump.cli_capture import main as cli

    entry(cli=cli)
