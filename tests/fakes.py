"""
Fakes
=====

One hand-built target for the unwinder tests: two modules and a stack at fixed addresses
(rust-minidump's ``amd64_unittest.rs`` fixture), with the attributes the unwinders read of a
:class:`coredump.target.Target` (``core``, ``memory``, ``read_code``, ``warnings``, ``find_module``).
"""

from __future__ import annotations

import struct
from typing import Dict, Optional

from coredump.errors import MemoryFault
from tests.cfiwriter import FakeImage

__all__ = ("APP", "APP_END", "LIB", "LIB_END", "ORPHAN", "STACK", "STACK_SIZE", "SP",
           "Region", "FakeMemory", "FakeModule", "FakeCore", "FakeTarget")

APP, APP_END = 0x400000, 0x401000
LIB, LIB_END = 0x7F0000000000, 0x7F0000001000
ORPHAN = 0x500000  # executable, but no module claims it
STACK = 0x7FFC00000000
STACK_SIZE = 0x10000
SP = STACK + 0x1000


class Region:
    def __init__(self, start, size, flags):
        self.p_vaddr, self.data, self.p_flags = start, bytearray(size), flags
        self.end = start + size


class FakeMemory:
    def __init__(self):
        self.regions = [Region(APP, APP_END - APP, 5), Region(LIB, LIB_END - LIB, 5),
                        Region(ORPHAN, 0x1000, 5), Region(STACK, STACK_SIZE, 6)]
        for r in self.regions[:3]:
            r.data[:] = b"\x90" * len(r.data)  # nops: no call before any address

    def find_segment(self, address):
        for r in self.regions:
            if r.p_vaddr <= address < r.end:
                return r
        return None

    def read(self, address, size):
        r = self.find_segment(address)
        if r is None or address + size > r.end:
            raise MemoryFault(address)
        return bytes(r.data[address - r.p_vaddr:address - r.p_vaddr + size])

    def read_word(self, address):
        return struct.unpack("<Q", self.read(address, 8))[0]

    def is_executable(self, address):
        r = self.find_segment(address)
        return r is not None and bool(r.p_flags & 1)

    def write(self, address, blob):
        r = self.find_segment(address)
        r.data[address - r.p_vaddr:address - r.p_vaddr + len(blob)] = blob

    def word(self, address, value):
        self.write(address, struct.pack("<Q", value))

    def call_before(self, return_address, code=b"\xe8\0\0\0\0"):
        """Put a call instruction that ends at `return_address`."""
        self.write(return_address - len(code), code)
        return return_address


class FakeModule:
    def __init__(self, path, start, end, image=None):
        self.path, self.start, self.end = path, start, end
        self.image = image or FakeImage({}, path)
        self.debug_image, self.bias, self.build_id, self.trusted = None, 0, None, True


class FakeCore:
    """What the unwinders read of a :class:`coredump.elf.core.Core`: its auxiliary vector,
    its NT_ARM_PAC_MASK insn_mask and whether it is truncated. None of them by default."""

    def __init__(self, pac_insn_mask: Optional[int] = None, auxv: Optional[Dict[int, int]] = None,
                 truncated: bool = False):
        self.pac_insn_mask = pac_insn_mask
        self.auxv = dict(auxv or {})
        self.truncated = truncated

    def get_auxv(self, a_type: int) -> Optional[int]:
        return self.auxv.get(a_type)


class FakeTarget:
    """The app and lib.so modules over :class:`FakeMemory`; `arch` is set by a subclass.
    Code is read from memory only (a real Target also reads the module's file)."""

    arch = None

    def __init__(self, core: Optional[FakeCore] = None):
        self.core = core if core is not None else FakeCore()
        self.memory = FakeMemory()
        self.read_code = self.memory.read
        self.warnings = []
        self.modules = [FakeModule("app", APP, APP_END), FakeModule("lib.so", LIB, LIB_END)]

    def find_module(self, address):
        for m in self.modules:
            if m.start <= address < m.end:
                return m
        return None

    def is_jit_code(self, address):
        """No NT_FILE here: which memory files back is unknown (AddressSpace.is_anonymous_code)."""
        return False
