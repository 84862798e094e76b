"""
Bad location expressions give ``<error>`` for that one value (issue #17, bad input), and the
values budget cuts in with one warning: hostile expressions evaluated against a real kernel
core's memory and registers, and a real analysis with a small budget.
"""

from __future__ import annotations

import pytest

from coredump.analysis import AnalyzeOptions, _find_crashing_thread, _walk_threads
from coredump.dwarf.expr import LocationContext
from coredump.dwarf.frame_values import ValuesBudget, add_values
from coredump.dwarf.types import TypeInfo
from coredump.dwarf.varvalue import OPTIMIZED_OUT, read_planned
from coredump.elf.core import open_core
from coredump.target import Target
from tests.cores import BUILD

INT = TypeInfo("base", "int", 4, 0x05).to_data()
CHARP = TypeInfo("pointer", "char *", 8, None, TypeInfo("base", "char", 1, 0x06)).to_data()


@pytest.fixture(scope="module")
def frame0(make_core):
    core = open_core(str(make_core("O0", "fpe")))
    target = Target(core, AnalyzeOptions(exe=str(BUILD / "O0" / "fpe")).finder())
    crashing = _find_crashing_thread(core)
    threads = _walk_threads(target, AnalyzeOptions(), crashing, [])
    yield target, threads[crashing]
    core.close()


def _context(target, thread):
    regs = thread.registers
    names = target.arch.dwarf_regs

    def make():
        return LocationContext(target.memory, lambda n: regs[names[n]], lambda: regs["rsp"], regs["rsp"])
    return make


@pytest.mark.parametrize("expr,want,why", [
    (b"\xff", "<error>", "an unknown opcode"),
    (b"\x22", "<error>", "DW_OP_plus on an empty stack (underflow)"),
    (b"\x2f\xfd\xff", "<error>", "DW_OP_skip -3: a loop, cut by the step limit"),
    (b"\x0c\x01", "<error>", "a truncated DW_OP_const4u"),
    (b"\x93\x02\x93\x02", OPTIMIZED_OUT, "pieces with no location: the value does not exist"),
])
def test_a_bad_expression_is_error_for_that_value_only(frame0, expr, want, why):
    target, thread = frame0
    assert read_planned(("x", INT, "loc", expr), _context(target, thread)).value == want, why
    # The next value of the same frame is still read (DW_OP_fbreg 0).
    assert read_planned(("y", INT, "loc", b"\x91\x00"), _context(target, thread)).value.lstrip("-").isdigit()


def test_an_unreadable_variable_and_an_unreadable_pointer_target(frame0):
    target, thread = frame0
    # DW_OP_lit16 (a variable at address 0x10): its own bytes cannot be read.
    assert read_planned(("v", INT, "loc", b"\x40"), _context(target, thread)).value == \
        "<error reading variable: Cannot access memory at address 0x10>"
    # DW_OP_lit16 DW_OP_stack_value: a char * whose target cannot be read.
    assert read_planned(("p", CHARP, "loc", b"\x40\x9f"), _context(target, thread)).value == \
        "0x10 <error: Cannot access memory at address 0x10>"
    # DW_OP_reg17 (xmm0): a register the frame does not have.
    assert read_planned(("r", INT, "loc", b"\x61"), _context(target, thread)).value == OPTIMIZED_OUT


def test_the_values_budget_cuts_in_with_one_warning(frame0):
    target, thread = frame0
    budget = ValuesBudget(max_values=1)
    frames = add_values(target, thread.frames, budget)
    assert frames[0].args is not None and all(f.args is None for f in frames[1:])
    assert budget.warning == "values budget of 1 values spent: later frames show no arguments"
    again = add_values(target, thread.frames, budget)
    assert all(f.args is None for f in again) and budget.warning.count("budget") == 1


def test_a_value_in_pieces_of_two_registers(frame0):
    """DW_OP_reg0 DW_OP_piece 4 DW_OP_reg2 DW_OP_piece 4 (DWARF 5 §2.6.1.2): a long whose low
    half is in rax and high half in rcx (psABI DWARF register 2), put together from frame 0's
    registers."""
    target, thread = frame0
    regs = thread.registers
    long_t = TypeInfo("base", "long", 8, 0x05).to_data()
    got = read_planned(("v", long_t, "loc", b"\x50\x93\x04\x52\x93\x04"), _context(target, thread))
    want = int.from_bytes((regs["rax"] & 0xFFFFFFFF).to_bytes(4, "little") + (regs["rcx"] & 0xFFFFFFFF)
                          .to_bytes(4, "little"), "little", signed=True)
    assert (got.value, got.raw) == (str(want), want)


def test_type_from_data_by_value():
    """TypeInfo.from_data remembers by the whole value: equal data gives the same record,
    data differing in a name, a size or a member's type its own."""
    int_data = ("base", "int", 4, 5, None, (), None, None)
    struct = ("struct", "struct s", 8, None, None, (), (("a", 0, int_data, None, None, False),), None)
    assert TypeInfo.from_data(int_data) is TypeInfo.from_data(tuple(int_data))
    assert TypeInfo.from_data(("base", "unsigned int", 4, 8, None, (), None, None)).name == "unsigned int"
    assert TypeInfo.from_data(("base", "int", 8, 5, None, (), None, None)).size == 8
    long_member = ("struct", "struct s", 8, None, None, (),
                   (("a", 0, ("base", "long", 8, 5, None, (), None, None), None, None, False),), None)
    assert TypeInfo.from_data(struct).members[0][2].name == "int"
    assert TypeInfo.from_data(long_member).members[0][2].name == "long"
    assert TypeInfo.from_data(["base", "char", 1, 6, None, [], None, None]).is_char  # unhashable: built afresh


def test_a_plan_is_made_once_per_analysis_under_its_pc_and_kind(make_core, monkeypatch):
    """With the parse cache off, the frames' plans (arguments, locals) come from the
    analysis's memo after the first: each equals the plan a fresh analysis makes for that
    pc and kind, and the DIEs are read once per (kind, pc), not once per thread."""
    from coredump.dwarf.frame_values import _plan

    monkeypatch.setenv("COREDUMP_CACHE", "0")
    exe = str(BUILD / "O2" / "threads")
    path = str(make_core("O2", "threads"))

    def analysis():
        core = open_core(path)
        target = Target(core, AnalyzeOptions(exe=exe).finder())
        return core, target, _walk_threads(target, AnalyzeOptions(), _find_crashing_thread(core), [])

    core, target, threads = analysis()
    frames = [f for t in threads for f in t.frames if not f.inline and f.module == exe]
    pcs = [f.lookup_pc - target.find_module(f.lookup_pc).bias for f in frames]
    dwarf = target.find_module(frames[0].lookup_pc).dwarf
    assert len(set(pcs)) >= 3 and len(pcs) > len(set(pcs))  # threads share pcs
    asked = []
    scopes = dwarf.find_scopes
    monkeypatch.setattr(dwarf, "find_scopes", lambda pc: asked.append(pc) or scopes(pc))
    got = [(what, pc, _plan(dwarf, pc, what)) for pc in pcs for what in ("args", "locals")]
    assert sorted(asked) == sorted(list(set(pcs)) * 2)
    # Another analysis asked in the other order: a key missing the kind or the pc would
    # answer one of them with the other's plan.
    other_core, other, _ = analysis()
    other_dwarf = other.find_module(frames[0].lookup_pc).dwarf
    assert [(what, pc, _plan(other_dwarf, pc, what)) for what, pc, _ in reversed(got)] == got[::-1]
    assert any(plan != _plan(dwarf, pc, "locals") for what, pc, plan in got if what == "args")
    other_core.close()
    core.close()


def test_a_pointer_target_is_named_once_per_analysis_by_its_address(make_core):
    """The name after a pointer (``<crunch+4>``) is looked up once per address in an
    analysis; addresses in one function, in two, and in none each keep their own name,
    asked in either order, as a fresh analysis names them."""
    from coredump.dwarf.frame_values import _POINTED, _symbol_at
    from coredump.symbols.symtab import find_symbol

    exe = str(BUILD / "O2" / "threads")
    path = str(make_core("O2", "threads"))

    def fresh():
        core = open_core(path)
        return core, Target(core, AnalyzeOptions(exe=exe).finder())

    core, target = fresh()
    module = next(m for m in target.modules if m.path == exe)
    starts = [find_symbol(module.image, name) + module.bias for name in ("crunch", "idle_worker")]
    addresses = [starts[0], starts[0] + 4, starts[1], starts[1] + 4, 8]
    names = []
    for address in addresses:
        other_core, other = fresh()
        names.append(_symbol_at(other, address))
        other_core.close()
    assert names == ["crunch", "crunch+4", "idle_worker", "idle_worker+4", None]
    for order in (addresses, addresses[::-1], addresses):
        assert {a: _symbol_at(target, a) for a in order} == dict(zip(addresses, names))
    assert sorted(_POINTED.table(target)) == sorted(addresses)
    core.close()
