"""Tests of coredump.dwarf.expr: one DWARF operation (or family) per test."""

import struct

import pytest

from coredump.dwarf.expr import ExpressionError, evaluate, read_sleb128, read_uleb128
from coredump.errors import MemoryFault
from tests.cfiwriter import sleb, uleb

M = (1 << 64) - 1
REGS = {7: 0x7FFC0000, 6: 0x7FFC0100, 0: 5, 16: 0x401000}


class Memory:
    def __init__(self, blobs):
        self.blobs = blobs

    def read(self, address, size):
        for base, blob in self.blobs.items():
            if base <= address and address + size <= base + len(blob):
                return blob[address - base:address - base + size]
        raise MemoryFault(address)


def ev(code: bytes, memory=None, initial=(), cfa=None):
    return evaluate(code, memory, REGS.__getitem__, initial, cfa)


def test_leb128():
    assert read_uleb128(uleb(624485), 0) == (624485, 3)
    assert read_sleb128(sleb(-123456), 0) == (-123456, 3)
    assert read_sleb128(sleb(63), 0) == (63, 1) and read_sleb128(sleb(64), 0) == (64, 2)


@pytest.mark.parametrize("code, value", [
    (bytes([0x30]), 0), (bytes([0x4F]), 31),
    (bytes([0x08, 0xFF]), 0xFF), (bytes([0x09, 0xFF]), M),
    (bytes([0x0A]) + struct.pack("<H", 0xFFFE), 0xFFFE), (bytes([0x0B]) + struct.pack("<h", -2), M - 1),
    (bytes([0x0C]) + struct.pack("<I", 0xDEADBEEF), 0xDEADBEEF),
    (bytes([0x0D]) + struct.pack("<i", -3), M - 2),
    (bytes([0x0E]) + struct.pack("<Q", 1 << 63), 1 << 63), (bytes([0x0F]) + struct.pack("<q", -1), M),
    (bytes([0x10]) + uleb(1000), 1000), (bytes([0x11]) + sleb(-1000), (-1000) & M),
    (bytes([0x03]) + struct.pack("<Q", 0x601000), 0x601000),
])
def test_constants(code, value):
    assert ev(code) == value


def test_registers():
    assert ev(bytes([0x77]) + sleb(-8)) == 0x7FFC0000 - 8     # DW_OP_breg7
    assert ev(bytes([0x76]) + sleb(16)) == 0x7FFC0110          # DW_OP_breg6
    assert ev(bytes([0x50])) == 5                              # DW_OP_reg0
    assert ev(bytes([0x92]) + uleb(16) + sleb(4)) == 0x401004  # DW_OP_bregx
    assert ev(bytes([0x90]) + uleb(16)) == 0x401000            # DW_OP_regx


def test_unknown_register():
    with pytest.raises(ExpressionError):
        ev(bytes([0x73, 0]))


@pytest.mark.parametrize("op, a, b, value", [
    (0x1A, 0b1100, 0b1010, 0b1000),       # and
    (0x21, 0b1100, 0b1010, 0b1110),       # or
    (0x27, 0b1100, 0b1010, 0b0110),       # xor
    (0x22, M, 2, 1),                      # plus wraps
    (0x1C, 1, 2, M),                      # minus wraps
    (0x1E, 6, 7, 42),                     # mul
    (0x24, 1, 4, 16),                     # shl
    (0x25, M, 60, 15),                    # shr (logical)
    (0x26, M - 15, 2, M - 3),             # shra (arithmetic)
    (0x1B, (-7) & M, 2, (-3) & M),        # div (signed, toward zero)
    (0x1D, 7, 3, 1),                      # mod
    (0x29, 3, 3, 1), (0x2E, 3, 3, 0),     # eq, ne
    (0x2A, M, 0, 0), (0x2B, 1, M, 1),     # ge, gt: signed (-1 < 0)
    (0x2C, M, 0, 1), (0x2D, 0, M, 0),     # le, lt
])
def test_binary_operations(op, a, b, value):
    code = bytes([0x0E]) + struct.pack("<Q", a) + bytes([0x0E]) + struct.pack("<Q", b) + bytes([op])
    assert ev(code) == value


def test_unary_operations():
    assert ev(bytes([0x35, 0x1F])) == M - 4              # neg
    assert ev(bytes([0x30, 0x20])) == M                  # not
    assert ev(bytes([0x09, 0xFB, 0x19])) == 5            # abs(-5)
    assert ev(bytes([0x31, 0x23]) + uleb(300)) == 301    # plus_uconst


def test_division_by_zero():
    with pytest.raises(ExpressionError):
        ev(bytes([0x31, 0x30, 0x1B]))


def test_stack_operations():
    assert ev(bytes([0x31, 0x12, 0x22])) == 2                   # dup
    assert ev(bytes([0x31, 0x32, 0x13])) == 1                   # drop
    assert ev(bytes([0x31, 0x32, 0x16, 0x1C])) == 1             # swap: 2 - 1
    assert ev(bytes([0x31, 0x32, 0x14])) == 1                   # over
    assert ev(bytes([0x31, 0x32, 0x33, 0x15, 2])) == 1          # pick 2
    # rot: (1, 2, 3) -> (3, 1, 2): top 2, then 1, then 3.
    assert ev(bytes([0x31, 0x32, 0x33, 0x17])) == 2
    assert ev(bytes([0x31, 0x32, 0x33, 0x17, 0x13])) == 1
    assert ev(bytes([0x31, 0x32, 0x33, 0x17, 0x13, 0x13])) == 3


def test_branches():
    # lit0; bra +1 (not taken); lit5; skip +1; lit6 -> 5
    assert ev(bytes([0x30, 0x28, 1, 0, 0x35, 0x2F, 1, 0, 0x36])) == 5
    # lit1; bra +1 (taken) over lit7; lit8
    assert ev(bytes([0x31, 0x28, 1, 0, 0x37, 0x38])) == 8


def test_deref_and_deref_size():
    mem = Memory({0x1000: struct.pack("<Q", 0x1122334455667788)})
    assert ev(bytes([0x0A, 0x00, 0x10, 0x06]), mem) == 0x1122334455667788
    assert ev(bytes([0x0A, 0x00, 0x10, 0x94, 2]), mem) == 0x7788
    with pytest.raises(MemoryFault):
        ev(bytes([0x0A, 0x00, 0x20, 0x06]), mem)


def test_initial_value_and_call_frame_cfa():
    assert ev(bytes([0x23, 8]), initial=(0x100,)) == 0x108
    assert ev(bytes([0x9C]), cfa=0x4000) == 0x4000
    with pytest.raises(ExpressionError):
        ev(bytes([0x9C]))


def test_nop_and_stack_value():
    assert ev(bytes([0x96, 0x33, 0x9F])) == 3


def test_glibc_plt_expression():
    # GCC's CFA for a PLT: rsp + 8 + ((rip & 15) >= 11) << 3 (binutils elf_x86_64_eh_frame_plt).
    code = bytes([0x77, 8, 0x80, 0, 0x3F, 0x1A, 0x3B, 0x2A, 0x33, 0x24, 0x22])
    assert ev(code) == 0x7FFC0000 + 8  # rip 0x401000: 0 < 11, the first push of the PLT entry
    assert evaluate(code, None, {7: 0x1000, 16: 0x40100C}.__getitem__) == 0x1000 + 8 + 8


def test_hostile_loop_is_bounded():
    with pytest.raises(ExpressionError):
        ev(bytes([0x2F]) + struct.pack("<h", -3))  # skip back onto itself


@pytest.mark.parametrize("code", [
    bytes([0x22]),                 # underflow
    bytes([0x0C, 1, 2]),           # truncated operand
    bytes([0x2F, 100, 0]),         # branch past the end
    bytes([0xE0]),                 # unknown op
    b"",                           # empty
])
def test_malformed(code):
    with pytest.raises(ExpressionError):
        ev(code)


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    given = None

if given is not None:
    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=64))
    def test_any_bytes_give_a_value_or_an_expression_error(code):
        memory = Memory({0x7FFC0000: bytes(range(256)) * 4})
        try:
            value = ev(code, memory, initial=(0x7FFC0010,), cfa=0x7FFC0000)
        except (ExpressionError, MemoryFault):
            return
        assert 0 <= value <= M
