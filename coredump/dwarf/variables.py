"""
Variables
=========

The parameters and local variables of the source-level frames at a pc (DW_TAG_subprogram
and DW_TAG_inlined_subroutine, DWARF 5 §3.3, §3.9, §4.1), read from the DIEs once into a
*plan*: plain tuples that name each variable, its type (``coredump.dwarf.types``) and where
its value is at that pc (a location expression from ``coredump.dwarf.locations``, a
DW_AT_const_value, or nowhere). A plan depends on the file and the pc only, so the parse
cache keeps it (``coredump.dwarf.cache``): a second analysis reads no DIE. The values
themselves are read by ``coredump.dwarf.varvalue`` from the frame's registers and memory.

A variable is ``(name, type data, source, payload)``; source is ``loc`` (payload: the
expression), ``const`` (the value's bytes), ``none`` (no location at this pc: gdb's
``<optimized out>``), ``aggregate`` (not a scalar: gdb's ``bt`` prints ``...``) or ``error``
(the DIE or its location list could not be read). A local is planned in full (gdb's ``bt full``
prints it so): its type with members and bounds, and its location whatever its type.
"""

from __future__ import annotations

from coredump.dwarf.callsites import register_of
from coredump.dwarf.locations import location_at
from coredump.dwarf.ranges import die_ranges, entry_pc
from coredump.dwarf.supplementary import ALT_REFERENCE_FORMS, string_value
from coredump.dwarf.types import TypeInfo, read_type

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Optional, Tuple

__all__ = ("plan_parameters", "plan_entry_registers", "plan_locals", "plan_variable", "function_entry",
           "frame_base_expression",
           "MAX_LOCALS")

# Locals listed per frame (gdb's bt full has no cap; a generated function may have thousands).
MAX_LOCALS = 64
_BLOCK_TAGS = ("DW_TAG_lexical_block", "DW_TAG_try_block", "DW_TAG_catch_block")
_UNREADABLE = ("?", TypeInfo("unknown", "<unknown type>").to_data(), "error", None)


def plan_parameters(scope, pc: int, entry: Optional[int] = None) -> Tuple[tuple, ...]:
    """The DW_TAG_formal_parameter children of `scope`, in order, at image address `pc`
    (`entry`: the function's entry pc, ``coredump.dwarf.locations.location_at``)."""
    return tuple(plan_variable(child, pc, entry=entry) for child in scope.iter_children()
                 if child.tag == "DW_TAG_formal_parameter")


def plan_entry_registers(scope) -> Tuple[Optional[int], ...]:
    """Per parameter of the function `scope`, the register its location names at the
    function's entry (gdb's read_variable_at_entry reads the location at get_frame_func's
    pc): the register whose entry value (``coredump.dwarf.entry_values``) is ``name@entry``."""
    try:
        entry = entry_pc(scope.dwarfinfo, scope)
    except Exception:  # noqa: BLE001 - no entry pc: no entry values
        entry = None
    out = []
    for child in scope.iter_children():
        if child.tag == "DW_TAG_formal_parameter":
            try:
                expr = location_at(child, entry) if entry is not None else None
            except Exception:  # noqa: BLE001 - a malformed list names no register
                expr = None
            out.append(register_of(expr) if expr else None)
    return tuple(out)


def plan_locals(scope, pc: int, entry: Optional[int] = None) -> Tuple[tuple, ...]:
    """The DW_TAG_variable DIEs of `scope` and of its lexical blocks that hold `pc`, the
    innermost block first (gdb's ``bt full`` order); inlined calls are frames of their own."""
    out: List[tuple] = []
    for block in reversed(_blocks_at(scope, pc)):
        for child in block.iter_children():
            if child.tag == "DW_TAG_variable" and len(out) < MAX_LOCALS:
                out.append(plan_variable(child, pc, full=True, entry=entry))
    return tuple(out)


def frame_base_expression(subprogram, pc: int) -> Optional[bytes]:
    """DW_AT_frame_base at `pc` (DWARF 5 §3.3.5), None where there is none."""
    try:
        return location_at(subprogram, pc, "DW_AT_frame_base")
    except Exception:  # noqa: BLE001 - a malformed list: DW_OP_fbreg values are <error>
        return None


def _blocks_at(scope, pc: int) -> list:
    """`scope` and the nested lexical blocks holding `pc`, outermost first."""
    chain, die = [scope], scope
    for _ in range(64):
        inner = next((c for c in die.iter_children()
                      if c.tag in _BLOCK_TAGS and any(lo <= pc < hi for lo, hi in _ranges(c))), None)
        if inner is None:
            break
        chain.append(inner)
        die = inner
    return chain


def _ranges(die):
    try:
        return die_ranges(die.dwarfinfo, die)
    except Exception:  # noqa: BLE001 - a block whose ranges cannot be read holds nothing
        return []


def _origin_attr(die, name: str):
    """The attribute on `die` or on the DIE its DW_AT_abstract_origin names (an inlined or
    out-of-line instance takes its name and type from the abstract one, DWARF 5 §3.3.8.2)."""
    cur = die
    for _ in range(4):
        attr = cur.attributes.get(name)
        if attr is not None:
            return attr, cur
        ref = cur.attributes.get("DW_AT_abstract_origin")
        if ref is None or (ref.form in ALT_REFERENCE_FORMS and not cur.dwarfinfo.supplementary_dwarfinfo):
            return None, cur
        cur = cur.get_DIE_from_attribute("DW_AT_abstract_origin")
    return None, cur


def function_entry(subprogram) -> Optional[int]:
    """The entry pc of the function `subprogram` (DWARF 5 §3.3.3), None where unknown."""
    try:
        return entry_pc(subprogram.dwarfinfo, subprogram)
    except Exception:  # noqa: BLE001 - no entry pc: no entry-pc location records
        return None


def plan_variable(die, pc: int, full: bool = False, entry: Optional[int] = None) -> tuple:
    """One parameter or variable's plan at `pc` (`full`: as ``bt full`` prints a local);
    never raises."""
    try:
        name_attr, _ = _origin_attr(die, "DW_AT_name")
        name = (string_value(name_attr) if name_attr is not None else None) or "?"
        type_attr, typed = _origin_attr(die, "DW_AT_type")
        vtype = read_type(typed if type_attr is not None else die, members=full)
    except Exception:  # noqa: BLE001 - a broken reference: the variable is shown as unreadable
        return _UNREADABLE
    try:
        source, payload = _source(die, vtype, pc, full, entry)
    except Exception:  # noqa: BLE001 - a malformed location list: this value is <error>
        source, payload = "error", None
    return name, vtype.to_data(), source, payload


def _source(die, vtype: TypeInfo, pc: int, full: bool, entry: Optional[int]) -> Tuple[str, Optional[bytes]]:
    const = die.attributes.get("DW_AT_const_value")
    if const is not None:
        data = _const_bytes(const, vtype)
        return ("const", data) if data is not None else ("aggregate", None)
    if not vtype.is_scalar and not full:
        return "aggregate", None  # gdb's bt prints a non-scalar as ... without reading it
    expr = location_at(die, pc, entry=entry)
    return ("loc", expr) if expr is not None else ("none", None)


def _const_bytes(const, vtype: TypeInfo) -> Optional[bytes]:
    """DW_AT_const_value as the value's bytes (DWARF 5 §4.1 item 10): a constant or a block."""
    value = const.value
    size = vtype.size or 8
    if isinstance(value, int):
        return (value & ((1 << 8 * size) - 1)).to_bytes(size, "little")
    if isinstance(value, (list, bytes)):
        return bytes(value)
    return None
