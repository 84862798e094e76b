"""Note decoders against gdb's view of the same real cores."""

import re
import subprocess

import pytest

from coredump.elf.core import open_core
from coredump.elf.notes import decode_nt_file, decode_nt_siginfo
from tests.cores import BUILD


def gdb_registers(gdb, exe, core):
    out = subprocess.run([gdb, "-batch", "-nx", "-ex", "info registers", str(exe), str(core)],
                         capture_output=True, text=True, timeout=120).stdout
    return {m.group(1): int(m.group(2), 16) for m in re.finditer(r"^(\w+)\s+(0x[0-9a-f]+)", out, re.M)}


@pytest.mark.parametrize("program", ["segv", "fpe", "threads"])
def test_prstatus_registers_match_gdb(make_core, gdb, program):
    core = make_core("O0", program)
    theirs = gdb_registers(gdb, BUILD / "O0" / program, core)
    with open_core(str(core)) as c:
        ours = c.threads[0].registers
    for name in ("rip", "rsp", "rbp", "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r15", "eflags"):
        assert ours[name] == theirs[name], name


def test_siginfo_fault_address(make_core):
    core = make_core("O0", "segv")
    with open_core(str(core)) as c:
        assert c.siginfo.si_signo == 11 and c.siginfo.si_code == 1
        assert c.siginfo.si_addr == 8  # &((struct node *)0)->value


def test_siginfo_kill_sender():
    desc = bytearray(128)
    desc[0:12] = (6).to_bytes(4, "little") + bytes(4) + (-6).to_bytes(4, "little", signed=True)
    desc[16:24] = (4242).to_bytes(4, "little") + (1000).to_bytes(4, "little")
    si = decode_nt_siginfo(bytes(desc))
    assert (si.si_code, si.si_pid, si.si_uid, si.si_addr) == (-6, 4242, 1000, None)


def test_nt_file_matches_eu_readelf(make_core, eu_readelf):
    core = make_core("O0", "uselib")
    eu = subprocess.run([eu_readelf, "-n", str(core)], capture_output=True, text=True)
    assert eu.returncode == 0, eu.stderr
    with open_core(str(core)) as c:
        ours = c.files
    rows = re.findall(r"^\s+([0-9a-f]+)-([0-9a-f]+)\s+([0-9a-f]+)\s+\d+\s+(\S+)", eu.stdout, re.M)
    assert len(rows) == len(ours) > 3
    for (start, end, off, name), m in zip(rows, ours):
        assert (int(start, 16), int(end, 16), int(off, 16), name) == (m.vm_start, m.vm_end, m.offset, m.filename)
    assert any(m.filename.endswith("libcrash.so") for m in ours)


def test_nt_file_rejects_impossible_count():
    from coredump.errors import CoreFormatError

    with pytest.raises(CoreFormatError):
        decode_nt_file((10**9).to_bytes(8, "little") + (4096).to_bytes(8, "little"))


def test_prpsinfo_ids_match_eu_readelf(make_core, eu_readelf):
    """pr_pid, pr_ppid, pr_pgrp, pr_sid of struct elf_prpsinfo as elfutils reads them."""
    core = make_core("O0", "segv")
    eu = subprocess.run([eu_readelf, "-n", str(core)], capture_output=True, text=True).stdout
    m = re.search(r"pid: (\d+), ppid: (\d+), pgrp: (\d+), sid: (\d+)", eu)
    with open_core(str(core)) as c:
        ps = c.prpsinfo
    assert (ps.pr_pid, ps.pr_ppid, ps.pr_pgrp, ps.pr_sid) == tuple(int(g) for g in m.groups())
    assert ps.pr_fname == "segv"
