"""The divisor of a faulting div/idiv, decoded from hand-assembled instructions."""

import pytest

from coredump.elf.memory import AddressSpace, Segment
from coredump.triage.x86_divide import decode_divide_fault

CODE, DATA = 0x1000, 0x2000


def _memory(code: bytes, data: bytes = b"\0" * 16) -> AddressSpace:
    blob = code.ljust(0x100, b"\x90") + data
    return AddressSpace(blob, [Segment(CODE, 0x100, 0, 0x100, 5, 0x100),
                               Segment(DATA, len(data), 0x100, len(data), 6, len(data))])


@pytest.mark.parametrize("code, regs, data, expected", [
    (b"\xf7\xfe", {"rsi": 0}, b"", "zero"),                              # idiv %esi
    (b"\xf7\xfe", {"rsi": 0xFFFFFFFF}, b"", "overflow"),                 # idiv %esi, esi = -1
    (b"\xf7\xf6", {"rsi": 0xFFFFFFFF}, b"", None),                       # div %esi: no overflow case
    (b"\x48\xf7\xf9", {"rcx": (1 << 64) - 1}, b"", "overflow"),          # idiv %rcx
    (b"\x49\xf7\xf8", {"r8": 0}, b"", "zero"),                           # idiv %r8 (REX.B)
    (b"\xf7\x7d\xf8", {"rbp": DATA + 8}, b"\xff\xff\xff\xff" + b"\0" * 12, "overflow"),  # idivl -0x8(%rbp)
    (b"\xf7\x7c\x24\x04", {"rsp": DATA}, b"\0" * 16, "zero"),            # idivl 0x4(%rsp) (SIB)
    (b"\x0f\x0b", {}, b"", None),                                        # ud2: not a divide
])
def test_decode_divide_fault(code, regs, data, expected):
    assert decode_divide_fault(_memory(code, data.ljust(16, b"\0")), CODE, regs) == expected
