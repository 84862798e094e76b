"""Tests of coredump.dwarf.simple_locations: each decoded shape gives what the stack machine
(coredump.dwarf.expr.evaluate_location) gives, pieces or error, in every kind of frame."""

import itertools

import pytest

from coredump.dwarf import simple_locations
from coredump.dwarf.expr import LocationContext, RegisterUnknown, evaluate_location
from coredump.dwarf.simple_locations import evaluate_simple
from tests.cfiwriter import sleb, uleb
from tests.test_unwind_expr import Memory

STACK = 0x7FFC0000
MEMORY = Memory({STACK - 0x100: bytes(range(256)) * 2})
REGS = {7: STACK, 6: STACK + 0x10, 0: 5}

EXPRESSIONS = [
    b"\x50", b"\x55", b"\x6f",                       # DW_OP_reg0, reg5, reg31
    b"\x30\x9f", b"\x31\x9f", b"\x4f\x9f",          # DW_OP_litN DW_OP_stack_value
    b"\x9c",                                         # DW_OP_call_frame_cfa
    b"\x77" + sleb(8), b"\x76" + sleb(-16), b"\x73\x00", b"\x70" + sleb(-0x10000000),
    b"\x91" + sleb(-24), b"\x91" + sleb(0x58), b"\x91" + sleb(-40) + b"\x06",
    b"\x77" + sleb(-8) + b"\x06", b"\x91" + sleb(-32) + b"\x94\x04", b"\x76\x00\x94\x01",
    b"\xa3" + uleb(1) + b"\x55\x9f", b"\xf3\x01\x54\x9f", b"\xa3\x01\x58\x9f",
    # Near misses, left to the stack machine:
    b"", b"\x55\x9f", b"\x32", b"\x9c\x06", b"\x91", b"\x77\x80", b"\x91\x08\x94\x09", b"\x91\x08\x06\x06",
    b"\xa3\x02\x55\x9f", b"\xa3\x01\x55", b"\xa3\x01\x90\x9f", b"\x76\x00\x94", b"\x31\x9f\x93\x08",
]


def _raise(exc):
    def call(*_):
        raise exc
    return call


FRAME_BASES = [None, lambda: STACK + 0x40, _raise(KeyError(6)), _raise(RegisterUnknown("no base"))]
ENTRY_VALUES = [None, lambda block: 0x1234 + block[0], _raise(KeyError("entry value")), _raise(IndexError())]
REGISTERS = [REGS.__getitem__, {}.__getitem__, _raise(IndexError())]


def _outcome(evaluate, expr, ctx):
    try:
        return evaluate(expr, ctx)
    except Exception as exc:  # noqa: BLE001 - the error is the outcome compared
        return type(exc), str(exc)


@pytest.mark.parametrize("expr", EXPRESSIONS, ids=lambda e: e.hex() or "empty")
def test_the_same_pieces_or_error_as_the_stack_machine(expr):
    for get_register, frame_base, entry_value, cfa, memory in itertools.product(
            REGISTERS, FRAME_BASES, ENTRY_VALUES, (None, STACK + 0x30), (MEMORY, Memory({}))):
        ctx = LocationContext(memory, get_register, frame_base, cfa, entry_value)
        want = _outcome(evaluate_location, expr, ctx)
        assert _outcome(evaluate_simple, expr, ctx) == want, (expr.hex(), ctx)
        assert _outcome(evaluate_simple, bytearray(expr), ctx) == want  # decoded once, by its bytes


def test_the_shapes_are_decoded_and_the_rest_left_to_the_stack_machine():
    decoded = {e for e in EXPRESSIONS[:EXPRESSIONS.index(b"")] if simple_locations._simple(e) is not None}
    assert decoded == set(EXPRESSIONS[:EXPRESSIONS.index(b"")])
    assert [e for e in EXPRESSIONS[EXPRESSIONS.index(b""):] if _decoded_or_none(e) is not None] == []


def _decoded_or_none(expr):
    try:
        return simple_locations._simple(expr)
    except Exception:  # noqa: BLE001 - a truncated operand is left to the stack machine too
        return None


def test_past_the_limit_expressions_are_evaluated_not_kept(monkeypatch):
    monkeypatch.setattr(simple_locations, "MAX_DECODED", len(simple_locations._DECODED))
    ctx = LocationContext(MEMORY, REGS.__getitem__)
    novel = b"\x77" + sleb(0x123457)
    assert evaluate_simple(novel, ctx) == evaluate_location(novel, ctx)
    assert novel not in simple_locations._DECODED
