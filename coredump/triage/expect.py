"""
Expected crashes
================

Crashes a job means to have: a death test's child whose test passed (``death_test``), or a
signature the project lists. They are still explained and stored, but marked "expected": no
JUnit failure, no annotation.

A rule is a signature glob (fnmatch: ``SIGABRT in parse_args < *``) or a fingerprint (16 hex
digits), from ``--expect`` (repeatable) and the ``.coredump-expect`` file of the working
directory (one rule a line; ``#`` starts a comment).
"""

from __future__ import annotations

import fnmatch
import os

from coredump.patterns import lazy_compile
from coredump.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Optional, Sequence, Tuple

__all__ = ("EXPECT_FILE", "ExpectRules", "load_expect_rules")

EXPECT_FILE = ".coredump-expect"
MAX_RULES = 1000
_FINGERPRINT = lazy_compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class ExpectRules:
    """The rules in force, each with where it came from; death tests whose test passed are
    expected unless `death_tests` is False. `step_status` and `step_started`: the exit
    status and start (seconds since the epoch) of the step that crashed, where known."""

    rules: Tuple[Tuple[str, str], ...] = ()
    death_tests: bool = True
    step_status: Optional[int] = None
    step_started: Optional[float] = None
    # The step's trees, searched for a googletest report when the crashed process's working
    # directory is not known (triage.death_test).
    search: Tuple[str, ...] = ()

    def match_crash(self, crash, notes: List[str], cwd: Optional[str] = None) -> Optional[str]:
        """Why `crash` is expected, or None; why a death test's child is not, or how its
        report was found, goes to `notes`. `cwd`: the crashed process's working directory,
        where the core's location proves it."""
        death_test = None
        if crash.death_test and self.death_tests:
            from coredump.triage.death_test import judge_death_test

            death_test, found = judge_death_test(crash, self.step_status, self.step_started, cwd=cwd,
                                                 search=self.search)
            notes.extend(found)
        return self.match(crash.signature, crash.fingerprint, death_test)

    def match(self, signature: Optional[str], fingerprint: Optional[str],
              death_test: Optional[str] = None) -> Optional[str]:
        """Why a crash with this signature and fingerprint is expected, or None."""
        if death_test and self.death_tests:
            return death_test
        for rule, source in self.rules:
            if _FINGERPRINT.fullmatch(rule):
                if fingerprint == rule:
                    return f"fingerprint {rule} ({source})"
            elif signature is not None and fnmatch.fnmatchcase(signature, rule):
                return f"matches {rule!r} ({source})"
        return None


def load_expect_rules(patterns: Sequence[str] = (), directory: str = ".") -> ExpectRules:
    """`patterns` (from --expect) and the rules of `directory`'s .coredump-expect."""
    rules = [(p.strip(), "--expect") for p in patterns if p.strip()]
    path = os.path.join(directory, EXPECT_FILE)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read(1 << 20).splitlines()
    except OSError:
        lines = []
    rules += [(line.strip(), EXPECT_FILE) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return ExpectRules(tuple(rules[:MAX_RULES]))
