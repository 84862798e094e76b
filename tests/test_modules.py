"""Modules of cores nobody here made, their build-ids read from the core's memory, against
elfutils' `eu-unstrip -n --core` on the same core (the oracle)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from coredump.elf.core import open_core
from coredump.elf.modules import VDSO_NAME, find_modules

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "elfutils"
CORES = ("backtrace.x86_64.core", "backtrace.aarch64.core", "test-core.core", "testfile-backtrace-demangle.core")


def _eu_unstrip(core):
    """start -> build-id, from lines such as ``0x400000+0x202000 b0c4...@0x400284 - - /path``."""
    out = subprocess.run(["eu-unstrip", "-n", "--core", str(core)], capture_output=True, text=True,
                         timeout=60).stdout
    found = {}
    for line in out.splitlines():
        m = re.match(r"0x([0-9a-f]+)\+0x[0-9a-f]+ ([0-9a-f]+)@", line)
        if m:
            found[int(m.group(1), 16)] = m.group(2)
    return found


@pytest.mark.parametrize("name", CORES)
def test_build_ids_from_core_memory_are_eu_unstrips(name):
    if not (CORPUS / name).exists():
        pytest.skip("the elfutils corpus is not beside this checkout")
    if shutil.which("eu-unstrip") is None:
        pytest.skip("eu-unstrip (elfutils) is not installed: the oracle for build-ids")
    theirs = _eu_unstrip(CORPUS / name)
    with open_core(str(CORPUS / name)) as core:
        ours = {m.start: m.build_id for m in find_modules(core)}
        vdso = next((m for m in find_modules(core) if m.path == VDSO_NAME), None)
    compared = {start: bid for start, bid in ours.items() if start in theirs and bid is not None}
    assert compared == {start: theirs[start] for start in compared}
    # Every module whose ELF headers the core holds (eu-unstrip found its build-id) has ours too.
    assert set(theirs) <= {start for start, bid in ours.items() if bid}, (theirs, ours)
    assert vdso is None or vdso.build_id == theirs.get(vdso.start)
