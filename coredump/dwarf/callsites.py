"""
Call sites
==========

The call sites of one function (DWARF 5 §3.4.1 ``DW_TAG_call_site``; before DWARF 5 the GNU
extension ``DW_TAG_GNU_call_site`` that gcc emits with ``-gdwarf-4``), read as gdb's
``read_call_site_scope`` (dwarf2/read.c) reads them: where each call returns, whether it is a
tail call, and what it calls. ``coredump.unwind.callchain`` searches them for the tail calls
between a caller and its callee, as gdb's ``call_site_find_chain`` does.
"""

from __future__ import annotations

from coredump.dwarf.dies import subtree, unit_reader
from coredump.dwarf.ranges import die_ranges, entry_pc
from coredump.memo import by_value
from coredump.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable, Dict, Optional, Tuple

__all__ = ("CallSite", "FunctionCallSites", "read_call_sites", "register_of")

_CALL_SITE_TAGS = (0x48, 0x4109)  # DW_TAG_call_site, DW_TAG_GNU_call_site
DW_TAG_subprogram = 0x2E
# DWARF 5 §3.4.1 names first, then the GNU extension gcc used before them (gdb reads both).
_RETURN_PC = ("DW_AT_call_return_pc", "DW_AT_low_pc")
_TAIL_CALL = ("DW_AT_call_tail_call", "DW_AT_GNU_tail_call")
# gdb's order: a DWARF expression for the address called, then the DIE of what is called
# (DW_AT_abstract_origin is the GNU spelling of DW_AT_call_origin).
_TARGET = ("DW_AT_call_target", "DW_AT_GNU_call_site_target", "DW_AT_call_origin", "DW_AT_abstract_origin")
_LINKAGE = ("DW_AT_linkage_name", "DW_AT_MIPS_linkage_name")
_PARAMETER_TAGS = ("DW_TAG_call_site_parameter", "DW_TAG_GNU_call_site_parameter")
_CALL_VALUE = ("DW_AT_call_value", "DW_AT_GNU_call_site_value")
_DW_OP_REG0, _DW_OP_REGX = 0x50, 0x90


@dataclass(frozen=True)
class CallSite:
    """One call. Addresses are the image's own. What it calls is known by address
    (``targets``: the entry of the called function's code, one per range of a function
    split in hot and cold parts, as gdb's ``call_site_target`` keeps them), or by the name
    of a declaration (``target_name``, defined in another unit or file: found through the
    symbol tables); neither when the call is indirect (DW_AT_call_target is an expression
    over the caller's registers, which a tail-called frame no longer has)."""

    return_pc: int
    tail_call: bool
    targets: Tuple[int, ...] = ()
    target_name: Optional[str] = None
    # (DWARF register number, DW_AT_call_value expression) of each DW_TAG_call_site_parameter
    # passed in a register (DWARF 5 §3.4.2): the callee's entry values.
    parameters: Tuple[Tuple[int, bytes], ...] = ()


@dataclass(frozen=True)
class FunctionCallSites:
    """The call sites of one DW_TAG_subprogram, those of its inlined calls included (gdb
    adds a tail call to the tail-call list of the subprogram that holds it)."""

    entry_pc: Optional[int]
    sites: Tuple[CallSite, ...]

    def at(self, return_pc: int) -> Optional[CallSite]:
        return next((s for s in self.sites if s.return_pc == return_pc), None)

    @property
    def tail_calls(self) -> Tuple[CallSite, ...]:
        return tuple(s for s in self.sites if s.tail_call)

    def to_data(self) -> tuple:
        """Plain tuples for the parse cache; ``from_data`` rebuilds the value."""
        return (self.entry_pc, tuple((s.return_pc, s.tail_call, s.targets, s.target_name, s.parameters)
                                     for s in self.sites))

    @classmethod
    def from_data(cls, data: tuple) -> FunctionCallSites:
        return _rebuilt(data)


# A frame's arguments and the tail-call search ask for the call sites of the same few
# functions again and again (one parse-cache entry per pc): each rebuilt once per value. The
# key is the whole value, so equal data gives an equal (frozen) FunctionCallSites.
def _rebuild(data: tuple) -> FunctionCallSites:
    entry, sites = data
    return FunctionCallSites(entry, tuple(CallSite(*s) for s in sites))


_rebuilt = by_value(_rebuild)


def read_call_sites(dwarfinfo, sub, visit: Callable[[int], None]) -> FunctionCallSites:
    """The call sites under the subprogram DIE `sub`. `visit(count)` sees each DIE read and
    raises ``DwarfTooLarge`` past the walk's limits. A call site without a return address
    is dropped, and a second one at the same address too (gdb's complaints)."""
    found: Dict[int, CallSite] = {}
    cu = sub.cu
    if not sub.has_children:
        return FunctionCallSites(entry_pc(dwarfinfo, sub), ())
    # One pass of the unit reader over the function's DIEs; only the call sites become DIE
    # objects. Lexical blocks and inlined calls are entered, a nested function has its own.
    tree = subtree(unit_reader(dwarfinfo, cu, {}), sub.offset + sub.size - cu.cu_offset,
                   lambda ab: ab.tag not in _CALL_SITE_TAGS and ab.tag != DW_TAG_subprogram, visit)
    stack = [tree]
    while stack:  # the order gdb's read_call_site_scope sees them in, kept from the DIE walk
        for offset, ab, kids in stack.pop():
            if ab.tag in _CALL_SITE_TAGS:
                site = _call_site(dwarfinfo, cu.get_DIE_from_refaddr(cu.cu_offset + offset))
                if site is not None and site.return_pc not in found:
                    found[site.return_pc] = site
            elif kids is not None:
                stack.append(kids)
    return FunctionCallSites(entry_pc(dwarfinfo, sub), tuple(found.values()))


def _call_site(dwarfinfo, die) -> Optional[CallSite]:
    attrs = die.attributes
    pc = next((attrs[k].value for k in _RETURN_PC if k in attrs), None)
    if not isinstance(pc, int):
        return None
    tail = any(bool(attrs[k].value) for k in _TAIL_CALL if k in attrs)
    params = _parameters(die)
    key = next((k for k in _TARGET if k in attrs), None)
    if key is None or not attrs[key].form.startswith("DW_FORM_ref"):
        return CallSite(pc, tail, parameters=params)  # no target, or an expression (an indirect call)
    try:
        called = die.get_DIE_from_attribute(key)
    except Exception:
        return CallSite(pc, tail, parameters=params)  # a reference outside this file (dwz's DW_FORM_GNU_ref_alt)
    if _is_declaration(called):
        return CallSite(pc, tail, target_name=_physname(called), parameters=params)
    # gdb's dwarf2_get_pc_bounds: the code ranges of a definition, each range's start a
    # possible entry; an abstract instance (DW_AT_inline) has none and names no address.
    return CallSite(pc, tail, targets=tuple(low for low, _ in die_ranges(dwarfinfo, called)), parameters=params)


def _parameters(site) -> Tuple[Tuple[int, bytes], ...]:
    """(register, DW_AT_call_value) of the site's parameters whose DW_AT_location is a
    DW_OP_regN or DW_OP_regx (gdb's CALL_SITE_PARAMETER_DWARF_REG); a stack-passed one
    (DW_OP_fbreg) is left out. At most 64 (a call passes a handful)."""
    out = []
    for child in site.iter_children() if site.has_children else ():
        if child.tag not in _PARAMETER_TAGS or len(out) >= 64:
            continue
        loc = child.attributes.get("DW_AT_location")
        value = next((child.attributes[k] for k in _CALL_VALUE if k in child.attributes), None)
        if loc is None or value is None or not isinstance(loc.value, list) or not isinstance(value.value, list):
            continue
        regno = register_of(bytes(loc.value))
        if regno is not None:
            out.append((regno, bytes(value.value)))
    return tuple(out)


def register_of(expr: bytes) -> Optional[int]:
    """N of an expression that is exactly DW_OP_regN or DW_OP_regx N (DWARF 5 §2.6.1.1.3)."""
    if len(expr) == 1 and _DW_OP_REG0 <= expr[0] <= _DW_OP_REG0 + 31:
        return expr[0] - _DW_OP_REG0
    if len(expr) >= 2 and expr[0] == _DW_OP_REGX:
        value, shift = 0, 0
        for n, byte in enumerate(expr[1:11]):
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value if n + 2 == len(expr) else None
    return None


def _is_declaration(die) -> bool:
    """gdb's die_is_declaration: DW_AT_declaration without DW_AT_specification."""
    attrs = die.attributes
    return "DW_AT_declaration" in attrs and bool(attrs["DW_AT_declaration"].value) \
        and "DW_AT_specification" not in attrs


def _physname(die) -> Optional[str]:
    """The name a declaration's minimal symbol has: its linkage name (through
    DW_AT_specification and DW_AT_abstract_origin, as gdb's dwarf2_attr follows them), else
    its DW_AT_name (C)."""
    name = None
    cur = die
    for _ in range(8):
        attrs = cur.attributes
        for key in _LINKAGE:
            if key in attrs:
                return _text(attrs[key].value)
        if name is None and "DW_AT_name" in attrs:
            name = _text(attrs["DW_AT_name"].value)
        ref = next((k for k in ("DW_AT_specification", "DW_AT_abstract_origin") if k in attrs), None)
        if ref is None:
            break
        try:
            cur = cur.get_DIE_from_attribute(ref)
        except Exception:
            break
    return name


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)
