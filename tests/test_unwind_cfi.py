"""Tests of coredump.unwind.cfi and cfi_tables on hand-assembled CIEs, FDEs and search tables."""

import struct

import pytest

from coredump.arch.x86_64 import X86_64
from coredump.unwind import cfi
from coredump.unwind.cfi import (
    EXPRESSION,
    OFFSET,
    REGISTER,
    SAME_VALUE,
    UNDEFINED,
    VAL_EXPRESSION,
    VAL_OFFSET,
    CfiError,
    apply_row,
    execute_cfa_program,
    make_row,
)
from coredump.unwind.cfi_tables import CfiSection, EhFrameHdr, FdeIndex, ModuleTables, read_encoded
from coredump.unwind.common import OutermostFrame
from tests.cfiwriter import EhFrameWriter, FakeImage, debug_frame, sleb, uleb

EH_VADDR = 0x2000
# GCC's x86_64 CIE: DW_CFA_def_cfa rsp+8; DW_CFA_offset rip at cfa-8.
CIE_X86 = bytes([0x0C, 7, 8, 0x90, 1])


def run(fde_instructions: bytes, pc: int, cie_instructions: bytes = CIE_X86, augmentation: str = "zR"):
    w = EhFrameWriter(EH_VADDR)
    c = w.add_cie(cie_instructions, augmentation=augmentation)
    f = w.add_fde(c, 0x1000, 0x100, fde_instructions)
    section = CfiSection(w.eh_frame(), EH_VADDR)
    fde = section.get_fde(f)
    return execute_cfa_program(fde.cie, fde, pc), fde


def test_cie_initial_rules():
    state, fde = run(b"", 0x1000)
    assert state.cfa == (7, 8)
    assert state.rules == {16: (OFFSET, -8)}
    assert (fde.pc_begin, fde.pc_range) == (0x1000, 0x100)
    assert fde.cie.return_address_register == 16 and fde.cie.data_alignment_factor == -8


# push %rbp; mov %rsp,%rbp; ... the prologue GCC describes at -O0.
PROLOGUE = bytes([0x41, 0x0E, 16, 0x86, 2, 0x43, 0x0D, 6])


@pytest.mark.parametrize("pc, cfa, rbp_rule", [
    (0x1000, (7, 8), None),
    (0x1001, (7, 16), (OFFSET, -16)),
    (0x1003, (7, 16), (OFFSET, -16)),
    (0x1004, (6, 16), (OFFSET, -16)),
    (0x10FF, (6, 16), (OFFSET, -16)),
])
def test_advance_loc_rows(pc, cfa, rbp_rule):
    state, _ = run(PROLOGUE, pc)
    assert state.cfa == cfa
    assert state.rules.get(6) == rbp_rule


def test_advance_loc1_loc2_loc4():
    prog = bytes([0x02, 4, 0x0E, 16, 0x03]) + struct.pack("<H", 4) + bytes([0x0E, 24, 0x04]) + \
        struct.pack("<I", 8) + bytes([0x0E, 32])
    assert run(prog, 0x1003)[0].cfa == (7, 8)
    assert run(prog, 0x1004)[0].cfa == (7, 16)
    assert run(prog, 0x1008)[0].cfa == (7, 24)
    assert run(prog, 0x1010)[0].cfa == (7, 32)


def test_set_loc_uses_the_fde_pointer_encoding():
    # DW_CFA_set_loc with a pcrel sdata4 operand; the operand sits at a known place in the FDE.
    w = EhFrameWriter(EH_VADDR)
    c = w.add_cie(CIE_X86)
    probe = w.add_fde(c, 0x1000, 0x100, b"")
    operand_at = EH_VADDR + probe + 4 + 4 + 8 + 1 + 1  # length, CIE ptr, pc fields, aug size, opcode
    w2 = EhFrameWriter(EH_VADDR)
    c = w2.add_cie(CIE_X86)
    set_loc = bytes([0x01]) + struct.pack("<i", 0x1010 - operand_at)
    f = w2.add_fde(c, 0x1000, 0x100, set_loc + bytes([0x0E, 40]))
    section = CfiSection(w2.eh_frame(), EH_VADDR)
    fde = section.get_fde(f)
    assert execute_cfa_program(fde.cie, fde, 0x100F).cfa == (7, 8)
    assert execute_cfa_program(fde.cie, fde, 0x1010).cfa == (7, 40)


def test_def_cfa_variants():
    assert run(bytes([0x0C, 6, 32]), 0x1000)[0].cfa == (6, 32)
    assert run(bytes([0x12, 6]) + sleb(-2), 0x1000)[0].cfa == (6, 16)  # factored by -8
    assert run(bytes([0x0D, 3]), 0x1000)[0].cfa == (3, 8)
    assert run(bytes([0x0E]) + uleb(200), 0x1000)[0].cfa == (7, 200)
    assert run(bytes([0x13]) + sleb(-3), 0x1000)[0].cfa == (7, 24)
    assert run(bytes([0x0F, 2, 0x77, 0x08]), 0x1000)[0].cfa == ("expr", bytes([0x77, 0x08]))


def test_register_rules():
    prog = bytes([0x05, 3]) + uleb(2)           # offset_extended rbx, cfa-16
    prog += bytes([0x11, 12]) + sleb(3)         # offset_extended_sf r12, cfa-24
    prog += bytes([0x14, 13]) + uleb(1)         # val_offset r13, cfa-8
    prog += bytes([0x15, 14]) + sleb(2)         # val_offset_sf r14, cfa-16
    prog += bytes([0x09, 15, 0])                # register r15 in rax
    prog += bytes([0x10, 1, 2, 0x77, 0x10])     # expression rdx: [rsp+16]
    prog += bytes([0x16, 2, 1, 0x31])           # val_expression rcx: 1
    prog += bytes([0x07, 4, 0x08, 5])           # undefined rsi, same_value rdi
    prog += bytes([0x2F, 8]) + uleb(1)          # GNU_negative_offset_extended r8, cfa+8
    prog += bytes([0x2E]) + uleb(32) + bytes([0x00])  # GNU_args_size, nop
    rules = run(prog, 0x1000)[0].rules
    assert rules[3] == (OFFSET, -16)
    assert rules[12] == (OFFSET, -24)
    assert rules[13] == (VAL_OFFSET, -8)
    assert rules[14] == (VAL_OFFSET, -16)
    assert rules[15] == (REGISTER, 0)
    assert rules[1] == (EXPRESSION, bytes([0x77, 0x10]))
    assert rules[2] == (VAL_EXPRESSION, bytes([0x31]))
    assert rules[4] == (UNDEFINED, None) and rules[5] == (SAME_VALUE, None)
    assert rules[8] == (OFFSET, 8)


def test_restore_and_restore_extended_return_to_cie_rules():
    cie = CIE_X86 + bytes([0x83, 3])  # rbx at cfa-24 in the CIE
    prog = bytes([0x83, 5, 0x90, 4, 0x41, 0xC3, 0x06, 16, 0x41, 0xC6])
    at0 = run(prog, 0x1000, cie)[0].rules
    assert at0[3] == (OFFSET, -40) and at0[16] == (OFFSET, -32)
    at1 = run(prog, 0x1001, cie)[0].rules
    assert at1[3] == (OFFSET, -24) and at1[16] == (OFFSET, -8)
    assert 6 not in run(prog, 0x1002, cie)[0].rules  # restore of a register the CIE left alone


def test_remember_and_restore_state():
    # The epilogue pattern: remember; pop rbp (cfa rsp+8); ret; restore for the code after.
    prog = PROLOGUE + bytes([0x4A, 0x0A, 0xC6, 0x0C, 7, 8, 0x41, 0x0B])
    mid = run(prog, 0x100E)[0]
    assert mid.cfa == (7, 8) and 6 not in mid.rules
    after = run(prog, 0x100F)[0]
    assert after.cfa == (6, 16) and after.rules[6] == (OFFSET, -16)


def test_restore_state_without_remember_is_an_error():
    with pytest.raises(CfiError):
        run(bytes([0x0B]), 0x1000)


def test_truncated_instructions_are_an_error():
    w = EhFrameWriter(EH_VADDR)
    c = w.add_cie(CIE_X86)
    # 7 bytes of instructions fill the FDE to a multiple of 8: no padding ends the LEB.
    f = w.add_fde(c, 0x1000, 0x10, bytes([0x0C]) + b"\x87" * 6)
    section = CfiSection(w.eh_frame(), EH_VADDR)
    fde = section.get_fde(f)
    with pytest.raises(CfiError):
        execute_cfa_program(fde.cie, fde, 0x1008)


def test_signal_augmentation_and_lsda_are_decoded():
    w = EhFrameWriter(EH_VADDR)
    c = w.add_cie(CIE_X86, augmentation="zPLRS")
    f = w.add_fde(c, 0x1000, 0x10, bytes([0x0E, 16]), lsda=True)
    fde = CfiSection(w.eh_frame(), EH_VADDR).get_fde(f)
    assert fde.cie.signal and fde.pc_begin == 0x1000
    assert execute_cfa_program(fde.cie, fde, 0x1000).cfa == (7, 16)


def test_read_encoded_forms():
    sec = CfiSection(struct.pack("<iHqI", -16, 7, -2, 0x40) + uleb(300) + sleb(-5), 0x5000)
    assert read_encoded(sec, 0, 0x1B) == (0x5000 - 16, 4)          # pcrel sdata4
    assert read_encoded(sec, 4, 0x02) == (7, 6)                    # udata2
    assert read_encoded(sec, 6, 0x0C) == ((1 << 64) - 2, 14)       # sdata8
    assert read_encoded(sec, 14, 0x33, datarel=0x100) == (0x140, 18)  # datarel udata4
    assert read_encoded(sec, 18, 0x01) == (300, 20)                # uleb128
    assert read_encoded(sec, 20, 0x09) == ((1 << 64) - 5, 21)      # sleb128
    assert read_encoded(sec, 0, 0xFF) == (None, 0)                 # omit
    ind = CfiSection(struct.pack("<Q", 0x9000), 0, deref=lambda a: a + 1)
    assert read_encoded(ind, 0, 0x80) == (0x9001, 8)               # indirect


def _module_with(w: EhFrameWriter, hdr: bool = True):
    sections = {".eh_frame": (w.vaddr, w.eh_frame())}
    if hdr:
        sections[".eh_frame_hdr"] = (0x1800, w.eh_frame_hdr(0x1800))
    return FakeImage(sections)


def _three_functions():
    w = EhFrameWriter(EH_VADDR)
    c = w.add_cie(CIE_X86)
    w.add_fde(c, 0x1200, 0x40, bytes([0x0E, 48]))
    w.add_fde(c, 0x1000, 0x80, bytes([0x0E, 16]))
    w.add_fde(c, 0x1100, 0x20, bytes([0x0E, 32]))
    return w


@pytest.mark.parametrize("hdr", [True, False], ids=["eh_frame_hdr", "eh_frame_index"])
@pytest.mark.parametrize("pc, cfa", [
    (0x0FFF, None), (0x1000, 16), (0x107F, 16), (0x1080, None), (0x1100, 32), (0x1120, None),
    (0x1200, 48), (0x123F, 48), (0x1240, None),
])
def test_fde_lookup(hdr, pc, cfa):
    tables = ModuleTables(_module_with(_three_functions(), hdr))
    found = tables.find_fde(pc)
    if cfa is None:
        assert found is None
    else:
        assert execute_cfa_program(found[0], found[1], pc).cfa == (7, cfa)


def test_eh_frame_hdr_table_is_binary_searched():
    w = _three_functions()
    table = EhFrameHdr(CfiSection(w.eh_frame_hdr(0x1800), 0x1800), CfiSection(w.eh_frame(), EH_VADDR))
    assert table.count == 3 and table.eh_frame_ptr == EH_VADDR
    assert [table._entry(i)[0] for i in range(3)] == [0x1000, 0x1100, 0x1200]
    assert table.find(0x1110).pc_begin == 0x1100


def test_debug_frame_index():
    data = debug_frame(CIE_X86, [(0x3000, 0x10, bytes([0x0E, 24])), (0x2000, 0x10, bytes([0x0E, 40]))])
    index = FdeIndex(CfiSection(data, 0, is_eh=False))
    assert [e[0] for e in index.entries] == [0x2000, 0x3000]
    fde = index.find(0x3008)
    assert execute_cfa_program(fde.cie, fde, 0x3008).cfa == (7, 24)
    assert index.find(0x2010) is None


def test_debug_frame_of_separate_debug_file_is_used_after_eh_frame():
    w = _three_functions()
    debug = FakeImage({".debug_frame": (0, debug_frame(CIE_X86, [(0x5000, 0x10, bytes([0x0E, 56]))]))})
    tables = ModuleTables(_module_with(w), debug)
    cie, fde = tables.find_fde(0x5004)
    assert execute_cfa_program(cie, fde, 0x5004).cfa == (7, 56)
    assert tables.find_fde(0x1000)[1].pc_begin == 0x1000


class _Module:
    def __init__(self, image, bias=0):
        self.image, self.debug_image, self.bias = image, None, bias
        self.trusted, self.build_id = True, None


class _Memory:
    def __init__(self, words):
        self.words = words

    def read_word(self, address):
        return self.words[address]

    def read(self, address, size):
        return self.words[address].to_bytes(8, "little")[:size]


def test_find_cfi_row_with_bias_and_cache():
    cfi.clear_caches()
    module = _Module(_module_with(_three_functions()), bias=0x7F0000000000)
    row = cfi.find_cfi_row(module, 0x7F0000001110, X86_64)
    assert row.cfa == ("rsp", 32) and row.ra == "rip" and not row.ra_undefined
    assert cfi.find_cfi_row(module, 0x7F0000001110, X86_64) is row
    assert cfi.find_cfi_row(module, 0x7F0000001180, X86_64) is None


def test_apply_row_prologue():
    state, fde = run(PROLOGUE + bytes([0x83, 3]), 0x1004)
    row = make_row(state, fde.cie, X86_64)
    memory = _Memory({0x7008: 0x401234, 0x7000: 0x7100, 0x6FF8: 0x55})
    cfa, caller = apply_row(row, {"rsp": 0x6FF0, "rbp": 0x7000, "rip": 0x1004, "r12": 9}, memory, X86_64)
    assert cfa == 0x7010
    assert caller["rip"] == 0x401234 and caller["rsp"] == 0x7010
    assert caller["rbp"] == 0x7100 and caller["rbx"] == 0x55
    assert caller["r12"] == 9  # callee-saved without a rule: same value


def test_apply_row_expressions():
    # glibc's __restore_rt style: CFA = [rsp + 160]; rip = [rsp + 168]; rax = 5 (value).
    prog = bytes([0x0F, 4, 0x77]) + uleb(160) + bytes([0x06])
    prog += bytes([0x10, 16, 3, 0x77]) + uleb(168)
    prog += bytes([0x16, 0, 1, 0x35])
    state, fde = run(prog, 0x1000)
    row = make_row(state, fde.cie, X86_64)
    memory = _Memory({0x9000 + 160: 0xA000, 0x9000 + 168: 0x402000})
    cfa, caller = apply_row(row, {"rsp": 0x9000}, memory, X86_64)
    assert cfa == 0xA000 and caller["rip"] == 0x402000 and caller["rax"] == 5


def test_undefined_return_address_is_the_outermost_frame():
    state, fde = run(bytes([0x07, 16]), 0x1000)
    row = make_row(state, fde.cie, X86_64)
    assert row.ra_undefined
    with pytest.raises(OutermostFrame):
        apply_row(row, {"rsp": 0x1000}, _Memory({}), X86_64)


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    given = None

if given is not None:
    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=48), st.integers(0x1000, 0x10FF))
    def test_any_instructions_give_a_row_or_a_cfi_error(program, pc):
        try:
            state, fde = run(program, pc)
        except CfiError:
            return
        make_row(state, fde.cie, X86_64)


@pytest.mark.parametrize("path", ["static/segv", "libc"])
def test_eh_frame_index_of_a_real_binary_matches_pyelftools(path):
    # A static binary's .eh_frame has no search table: FdeIndex reads its every FDE's range.
    from elftools.dwarf.callframe import FDE
    from elftools.elf.elffile import ELFFile

    from coredump.elf.image import ElfImage
    from coredump.unwind.cfi_tables import _section
    from tests.cores import BUILD

    file = str(BUILD / path) if path != "libc" else _libc()
    index = FdeIndex(_section(ElfImage(file), ".eh_frame", True))
    with open(file, "rb") as f:
        cfi = ELFFile(f).get_dwarf_info().EH_CFI_entries()
        expected = sorted((e.header.initial_location, e.header.initial_location + e.header.address_range,
                           e.offset) for e in cfi if isinstance(e, FDE) and e.header.address_range)
    assert index.entries == expected and len(expected) > 500


def _libc() -> str:
    import ctypes.util
    import os

    for name in ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"):
        if os.path.exists(name):
            return name
    pytest.skip(f"no x86-64 libc here ({ctypes.util.find_library('c')})")
