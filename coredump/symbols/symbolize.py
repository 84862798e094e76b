"""
Symbolization
=============

Names, ``file:line`` and inline frames for the physical frames an unwinder found.
"""

from __future__ import annotations

from coredump.demangle import demangle
from coredump.memo import OwnerMemo
from coredump.model import SIGNAL_HANDLER_CALLED, Frame
from coredump.record import replace

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Iterable, List, Tuple

__all__ = ("symbolize_frames", "symbolize_frame")


def symbolize_frames(target, frames: Iterable[Frame]) -> Tuple[Frame, ...]:
    """The frames with module, function, file and line filled in, each physical frame
    preceded by the frames inlined into it at its pc, and numbered as gdb's ``bt`` numbers
    them (inline frames count; a stretch the walk omitted keeps its gap in the numbers).

    Names follow drgn's ``StackFrame.name`` fallback: the DWARF function, then the ELF
    symbol (demangled; the raw name goes to ``mangled``), else ``function`` stays None and
    ``module`` + ``module_offset`` say where the pc is.
    """
    out: List[Frame] = []
    inlined = 0
    for frame in frames:
        group = symbolize_frame(target, frame)
        # Keep the walk's numbering where it left frames out (a stack past the frame cap
        # keeps its bottom frames under their own numbers); inline frames shift what follows.
        out.extend(f if f.index == frame.index + inlined + k else replace(f, index=frame.index + inlined + k)
                   for k, f in enumerate(group))
        inlined += len(group) - 1
    return tuple(out)


def symbolize_frame(target, frame: Frame) -> List[Frame]:
    """One physical frame as gdb lists it: its inline frames, innermost first, then itself."""
    if frame.function is not None:
        return _named(target, frame)
    # What the frames get depends on pc and lookup_pc alone (the module, the symbol, the
    # DWARF at lookup_pc): 201 threads stand at a handful of them.
    changes = _MEMOS.get(target, (frame.pc, frame.lookup_pc), lambda: _changes(target, frame))
    return [replace(frame, **c) for c in changes] if changes else [frame]


def _named(target, frame: Frame) -> List[Frame]:
    """A frame the unwinder named ("<signal handler called>"): its module only."""
    # A sigreturn trampoline is found by its code at pc, not by a call before it: it may
    # start a page of its own right after another module (qemu-user's), so pc - 1 is not its.
    trampoline = frame.function == SIGNAL_HANDLER_CALLED
    module = target.find_module(frame.pc if trampoline else frame.lookup_pc)
    if target.is_jit_code(frame.lookup_pc):
        return [replace(frame, jit=True)]  # no module's code, even inside a module's span
    if module is None:
        return [frame]
    return [replace(frame, module=module.path, module_offset=frame.pc - module.start)]


def _changes(target, frame: Frame) -> Tuple[dict, ...]:
    """The fields each frame listed for the unnamed `frame` takes from it (none: as it is)."""
    module = target.find_module(frame.lookup_pc)
    if target.is_jit_code(frame.lookup_pc):
        return ({"jit": True},)  # no module's code, even inside a module's span
    if module is None:
        return ()
    place = {"module": module.path, "module_offset": frame.pc - module.start}
    if not module.trusted:
        return (place,)  # an untrusted file
    vaddr = frame.lookup_pc - module.bias
    after = frame.pc - frame.lookup_pc  # a caller's pc is one past its lookup address
    sym = _symbol(module, vaddr)
    source = module.dwarf.find_frames(vaddr) if module.dwarf is not None else []
    out = [dict(place, function=sf.function, mangled=_mangled(sf.function, sf.linkage_name), symbol_offset=None,
                file=sf.file, line=sf.line, source_path=sf.path, inline=True) for sf in source[:-1]]
    function = mangled = file = line = path = None
    offset = None
    if sym is not None:
        name, off = sym
        shown = demangle(name) or name
        function, mangled, offset = shown, _mangled(shown, name), off + after
    if source:
        physical = source[-1]
        file, line, path = physical.file, physical.line, physical.path
        if physical.function:
            function = physical.function
            mangled = _mangled(physical.function, physical.linkage_name)
            if sym is None and physical.low_pc is not None and vaddr >= physical.low_pc:
                # Counted from the entry only where the pc follows it: a split function's
                # cold part may lie before its entry (DWARF 5 §2.17.3 non-contiguous
                # ranges; gcc's .text.unlikely), and without its own symbol (f.cold) the
                # start of the part that holds the pc is unknown here: no offset.
                offset = vaddr - physical.low_pc + after
    out.append(dict(place, function=function, mangled=mangled, symbol_offset=offset,
                    file=file, line=line, source_path=path, inline=False))
    return tuple(out)


# The analysis's (pc, lookup_pc) -> _changes (a walk's frames are bounded by its own limits).
_MEMOS = OwnerMemo(1 << 20)


def _symbol(module, vaddr: int):
    table = module.symtab
    if table is None:
        return None
    try:
        return table.lookup(vaddr)
    except Exception:
        return None


def _mangled(shown, raw):
    """The raw linkage name, kept only when it differs from what is shown."""
    return raw if raw and raw != shown else None
