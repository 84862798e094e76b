"""
Death tests
===========

Whether the crashed process is the child a test framework forked to die on purpose: a
googletest death test (``EXPECT_DEATH``/``ASSERT_DEATH``) runs its statement in a child and
passes when that child dies. Such a crash is the test working, not a bug.

googletest (src/gtest-death-test.cc) marks the child two ways:
- "threadsafe" style re-executes the test binary with ``--gtest_internal_run_death_test=…``;
- "fast" style (the default on Linux) forks and sets the file-static
  ``testing::internal::g_in_fast_death_test_child`` to true before running the statement,
  so the core's copy of that bool says so (the symbol is local: the program's ``.symtab``).

That the child died does not make the test pass: googletest's parent then checks how it
died (``KilledBySignal``, ``ExitedWithCode``) and the stderr matcher, and fails the test
otherwise. So a death test's child is expected only on evidence that its parent's test
passed: that test's verdict in the googletest report (``gtest_report``), else the step's
exit status 0 (a googletest program exits 1 when any test failed).
"""

from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence, Tuple

from coredump.errors import MemoryFault
from coredump.triage.gtest_report import read_verdicts, report_paths, test_class

__all__ = ("find_death_test", "judge_death_test", "GTEST_FAST_CHILD", "GTEST_THREADSAFE_FLAG")

GTEST_FAST_CHILD = "_ZN7testing8internalL26g_in_fast_death_test_childE"
GTEST_THREADSAFE_FLAG = "--gtest_internal_run_death_test"


def find_death_test(target, argv: Sequence[str]) -> Optional[str]:
    """Why the process is a death test's child, or None."""
    if any(str(a).startswith(GTEST_THREADSAFE_FLAG) for a in argv):
        return f"a googletest death test's child ({GTEST_THREADSAFE_FLAG})"
    for mod in target.modules:
        table = mod.symtab
        addr = table.find_symbol(GTEST_FAST_CHILD) if table is not None and hasattr(table, "find_symbol") else None
        if addr is None:
            continue
        try:
            value = target.memory.read(addr + mod.bias, 1)
        except MemoryFault:
            return None
        if value == b"\x01":
            return "a googletest death test's child (testing::internal::g_in_fast_death_test_child)"
        return None
    return None


def _frames(crash):
    if not crash.threads:
        return ()
    index = crash.crashing_thread if crash.crashing_thread is not None else 0
    return crash.threads[min(index, len(crash.threads) - 1)].frames


def judge_death_test(crash, step_status: Optional[int], since: Optional[float] = None,
                     environ: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None
                     ) -> Tuple[Optional[str], Optional[str]]:
    """For a death test's child (``crash.death_test``): why it is expected, or None and a
    note saying why not. `step_status`: the exit status of the step that ran the test
    program (None when unknown); `since`: reports older than this are another run's."""
    marker = crash.death_test
    try:
        cwd = cwd or os.getcwd()
    except OSError:  # the working directory is gone: no relative report to read
        cwd = "/nonexistent"
    cls = test_class([f.function for f in _frames(crash)])
    paths = report_paths(crash.process.argv, crash.process.executable, os.environ if environ is None else environ,
                         cwd)
    verdicts, read = read_verdicts(paths, since) if cls else ({}, [])
    found = verdicts.get(cls or "")
    if found:
        report = os.path.basename(read[0]) if len(read) == 1 else "the googletest reports"
        failed = [(name, why) for name, why in found if why]
        if failed:
            return None, f"{marker}, but its test {failed[0][0]} failed ({report}: {failed[0][1]})"
        return f"{marker}; its test {found[0][0]} passed ({report})", None
    if step_status == 0:
        return f"{marker}; the step passed", None
    why = f"the step failed (exit status {step_status})" if step_status is not None else \
        "the step's exit status is unknown"
    return None, (f"{marker}, but {why} and no googletest report (--gtest_output=xml, $GTEST_OUTPUT) says its "
                  "test passed: not taken as expected")
