"""
Analysis
========

From a core file to a ``Crash``: open the core, find its modules' files, walk and
symbolize every thread (with the frames tail calls removed put back), and explain the signal.
"""

from __future__ import annotations

import gc
import os

from coredump.elf.core import Core, open_core
from coredump.errors import CoreFormatError
from coredump.model import CoreInfo, Crash, Process, Signal, Thread
from coredump.record import dataclass, field, replace
from coredump.symbols.finder import DEFAULT_DEBUG_DIRS, FileFinder, FinderOptions
from coredump.target import Target
from coredump.triage.signals import describe_fault, si_code_name, signal_name
from coredump.unwind.budget import MAX_WALKED_THREADS, WalkBudget

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Optional, Sequence

__all__ = ("AnalyzeOptions", "analyze_core", "analyze_target", "MAX_WALKED_THREADS", "ANALYSIS_GC_THRESHOLD")

# Allocations between two collections of the youngest generation during an analysis.
ANALYSIS_GC_THRESHOLD = 10_000


@dataclass(frozen=True)
class AnalyzeOptions:
    exe: Optional[str] = None
    sysroot: Optional[str] = None
    search_paths: Sequence[str] = ()
    debug_dirs: Sequence[str] = DEFAULT_DEBUG_DIRS
    build_id_dirs: Sequence[str] = field(default_factory=tuple)
    max_frames: int = 1024
    debuginfod_timeout: Optional[float] = None  # None: $DEBUGINFOD_TIMEOUT, else 5 s
    values: bool = True  # frames' arguments and the crashing thread's locals (--no-values: none)

    def finder(self) -> FileFinder:
        return FileFinder(FinderOptions(
            exe=self.exe, sysroot=self.sysroot, search_paths=tuple(self.search_paths),
            debug_dirs=tuple(self.debug_dirs), build_id_dirs=tuple(self.build_id_dirs),
            debuginfod_timeout=self.debuginfod_timeout))


def analyze_core(path: str, options: Optional[AnalyzeOptions] = None, name: Optional[str] = None) -> Crash:
    """Analyze the core at `path` (called `name` in messages and the report, when it is a
    temporary copy); raises CoreDumpError only when nothing can be read."""
    options = options or AnalyzeOptions()
    core = open_core(path, name)
    threshold = gc.get_threshold()
    # An analysis allocates ~10^6 small objects and frees few in cycles: CPython's collector
    # (gc.set_threshold: a collection of the young generation per 700 allocations) scanned
    # the growing heap ~500 times, 10% of a cold 200-thread analysis. Restored after.
    gc.set_threshold(max(threshold[0], ANALYSIS_GC_THRESHOLD), *threshold[1:])
    try:
        _require_notes(core)
        return analyze_target(Target(core, options.finder()), options)
    finally:
        gc.set_threshold(*threshold)
        core.close()


def _require_notes(core) -> None:
    """A core whose notes gave no thread, signal or process (cut inside its first notes)
    explains nothing: an error that says why, not an empty report."""
    if core.threads or core.siginfo is not None or core.prpsinfo is not None:
        return
    why = next((w for w in core.warnings if "notes" in w), None) or "no NT_PRSTATUS, NT_SIGINFO or NT_PRPSINFO note"
    raise CoreFormatError(f"{core.path}: nothing could be read from the core's notes ({why})")


def analyze_target(target: Target, options: AnalyzeOptions) -> Crash:
    core = target.core
    warnings: List[str] = []  # the threads' own; the other channels are joined at the end
    crashing = _find_crashing_thread(core)
    threads = _walk_threads(target, options, crashing, warnings)
    if options.values:
        threads = _with_values(target, threads, crashing, warnings)
    signal = _signal(core, crashing)
    slim = core.slim
    slimmed = [f"slimmed core: {slim.omitted_bytes} bytes of memory left out (heap/anon mappings); "
               "values there are unknown"] if slim is not None else []
    crash = Crash(
        core=CoreInfo(os.path.abspath(core.path), core.size, core.truncated,
                      slim.omitted_bytes if slim is not None else None),
        process=_process(core, target),
        signal=signal,
        crashing_thread=crashing,
        threads=tuple(threads),
        modules=tuple(m.to_model() for m in target.modules),
        # The core's, then the files' (loading them, and what the unwinders and the symbolizer
        # found missing, DWARF limits, debuginfod), then each thread's: read once, at the end.
        warnings=tuple(dict.fromkeys(slimmed + core.warnings + target.warnings + target.dwarf_budget.warnings
                                     + target.finder.warnings + warnings)),
    )
    from coredump.triage.explain import explain

    try:
        return explain(crash, target)
    except Exception as exc:  # noqa: BLE001 - the frames stand without an explanation
        return replace(crash, warnings=crash.warnings + (
            f"explaining the crash failed ({type(exc).__name__}: {exc})",))


def _walk_threads(target: Target, options: AnalyzeOptions, crashing: Optional[int],
                  warnings: List[str]) -> List[Thread]:
    """Every thread, the crashing one walked first, the others while the analysis' budget
    lasts (``coredump.unwind.budget``); past it a thread keeps frame 0, and one warning
    says how many did."""
    core = target.core
    budget = WalkBudget()
    order = ([crashing] if crashing is not None else []) + [i for i in range(len(core.threads)) if i != crashing]
    threads: List[Optional[Thread]] = [None] * len(core.threads)
    cut, cut_threads = None, 0
    for n, i in enumerate(order):
        ct = core.threads[i]
        if not ct.registers:
            threads[i] = Thread(ct.tid, {}, (), ct.cursig, status="no_registers")
            continue
        why = budget.exhausted()
        if why is None:
            hidden = None if n == 0 else budget.share(len(order) - n)  # None: walk.py's own limit
            threads[i] = _walk_thread(target, ct, budget.frames_for_thread(options.max_frames), budget.deadline,
                                      warnings, hidden_seconds=hidden)
            budget.charge(len(threads[i].frames))
        else:
            cut, cut_threads = cut or why, cut_threads + 1
            threads[i] = _walk_thread(target, ct, 1, budget.deadline, warnings, hidden_seconds=0, quiet=True)
    if cut is not None:
        warnings.append(f"{cut}: {cut_threads} of {len(core.threads)} threads show frame 0 only")
    return threads


def _walk_thread(target: Target, ct, max_frames: int, deadline: float, warnings: List[str],
                 hidden_seconds: Optional[float], quiet: bool = False) -> Thread:
    """One thread walked and symbolized; `quiet` (frame 0 only, past the budget) keeps the
    walk's own warnings (the cap it met) out: the budget's one warning says it."""
    from coredump.symbols.symbolize import symbolize_frames
    from coredump.unwind.walk import WalkResult, walk_thread

    try:
        walked = walk_thread(target, ct.registers, max_frames, deadline, hidden_seconds)
    except Exception as exc:  # a bug in the walk must not cost the other threads
        warnings.append(f"thread {ct.tid}: unwinding failed ({type(exc).__name__}: {exc})")
        walked = WalkResult(())
    if not quiet:
        warnings.extend(f"thread {ct.tid}: {w}" for w in walked.warnings)
    frames = _with_tail_calls(target, ct.tid, symbolize_frames(target, walked.frames), warnings)
    return Thread(ct.tid, ct.registers, frames, ct.cursig, status="ok" if frames else "no_stack_memory",
                  truncated=walked.truncated, frames_omitted=walked.frames_omitted)


def _with_values(target: Target, threads: List[Thread], crashing: Optional[int],
                 warnings: List[str]) -> List[Thread]:
    """Every frame's arguments, the crashing thread's first; its top frames' locals too."""
    from coredump.dwarf.frame_values import LOCALS_FRAMES, ValuesBudget, add_values

    budget = ValuesBudget()
    order = ([crashing] if crashing is not None else []) + [i for i in range(len(threads)) if i != crashing]
    out = list(threads)
    for i in order:
        try:
            frames = add_values(target, out[i].frames, budget, LOCALS_FRAMES if i == crashing else 0,
                                target.core.threads[i].vector if i < len(target.core.threads) else None)
        except Exception as exc:  # noqa: BLE001 - values must not cost the backtrace
            warnings.append(f"thread {out[i].tid}: arguments not read ({type(exc).__name__}: {exc})")
            continue
        out[i] = replace(out[i], frames=frames)
    if budget.warning:
        warnings.append(budget.warning)
    return out


def _with_tail_calls(target: Target, tid: int, frames, warnings: List[str]):
    """The frames with those tail calls removed put back (gdb shows them too)."""
    from coredump.unwind.tailcall import infer_tail_calls

    try:
        return infer_tail_calls(frames, target)
    except Exception as exc:  # noqa: BLE001 - reading code must not cost the backtrace
        warnings.append(f"thread {tid}: tail-call frames not inferred ({type(exc).__name__}: {exc})")
        return frames


def _find_crashing_thread(core: Core) -> Optional[int]:
    """The kernel writes the dumping thread's NT_PRSTATUS first (fs/binfmt_elf.c
    fill_note_info: "dump_task" first); its pr_cursig is the fatal signal."""
    if not core.threads:
        return None
    signo = core.siginfo.si_signo if core.siginfo else None
    for i, t in enumerate(core.threads):
        if t.cursig and (signo is None or t.cursig == signo):
            return i
    return 0


def _signal(core: Core, crashing: Optional[int]) -> Signal:
    si = core.siginfo
    if si is not None:
        number, code = si.si_signo, si.si_code
        address, sender = si.si_addr, si.si_pid
    else:
        # qemu-user and old kernels write no NT_SIGINFO: the signal is pr_cursig.
        number = core.threads[crashing].cursig if crashing is not None else 0
        code = address = sender = None
    name = signal_name(number)
    return Signal(number, name, code, si_code_name(number, code), address,
                  describe_fault(number, code, address, sender), sender)


def _process(core: Core, target: Target) -> Process:
    ps = core.prpsinfo
    pid = ps.pr_pid if ps else (core.threads[0].tid if core.threads else 0)
    exe = target.executable
    executable = exe.path if exe is not None else (ps.pr_fname if ps else None)
    return Process(pid, executable, core.get_argv(), ps.pr_fname if ps else None,
                   ps.pr_uid if ps else None, core.arch.name if core.arch else core.e_machine)
