"""
Reasons that name the guilty variable (issue #17 item 3), on real kernel cores of the
null-dereference and divide-by-zero samples at -O0 (the variable in a stack slot, loaded into
the faulting register just before) and -O2 (the variable in the register itself); where no
variable is proven, and with --no-values, the generic wording stays.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.cores import BUILD


def reason(core, exe, *extra) -> str:
    out = subprocess.run([sys.executable, "-m", "coredump.cli.main", "analyze", "--format", "json", "--exe",
                          str(exe), *extra, str(core)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    return json.loads(out.stdout)["reason"]


@pytest.mark.parametrize("variant", ["O0", "O2"])
def test_null_dereference_names_the_pointer(make_core, variant):
    core, exe = make_core(variant, "segv"), BUILD / variant / "segv"
    assert reason(core, exe) == "null pointer dereference: `n` is NULL (offset 0x8) in store_value"
    assert reason(core, exe, "--no-values") == "null pointer dereference at offset 0x8 in store_value"


@pytest.mark.parametrize("variant", ["O0", "O2"])
def test_division_by_zero_names_the_divisor(make_core, variant):
    core, exe = make_core(variant, "fpe"), BUILD / variant / "fpe"
    assert reason(core, exe) == "integer division by zero: `count` is 0 in average"
    assert reason(core, exe, "--no-values") == "integer division by zero in average"


@pytest.mark.parametrize("variant", ["O0", "O2"])
def test_a_pointer_no_variable_holds_keeps_the_generic_reason(make_core, variant):
    """next_id's it->next->id faults through it->next, a field no DWARF variable is."""
    core, exe = make_core(variant, "wild", "unmapped"), BUILD / variant / "wild"
    got = reason(core, exe)
    assert got == reason(core, exe, "--no-values") and "`" not in got
    assert got.startswith("access to unmapped address 0x10000000000")
