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
"""

from __future__ import annotations

from typing import Optional, Sequence

from coredump.errors import MemoryFault

__all__ = ("find_death_test", "GTEST_FAST_CHILD", "GTEST_THREADSAFE_FLAG")

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
