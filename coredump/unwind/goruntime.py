"""
Go runtime frames
=================

Two rules of the Go runtime's own traceback (``runtime/traceback.go``) that neither CFI nor
DWARF states, for the modules that are Go programs (they have ``.go.buildinfo`` or
``.gopclntab``):

- A fault becomes a call of ``runtime.sigpanic``: the signal handler makes it look as if the
  faulting instruction called it (``sigctxt.preparePanic``, runtime/signal_amd64.go and
  signal_arm64.go), so the caller's pc is the faulting instruction itself, not a return
  address. The traceback uses that pc as it is; so does this walk (the caller is interrupted).
- An ABI wrapper ``F.abi0`` (cmd/compile's ABI0 -> ABIInternal wrapper, named so in the ELF
  symbol table by cmd/link) jumps to ``F``: it is ``F`` itself, not a frame of its own, as
  the traceback elides wrappers.
- A function with the TOPFRAME flag (``runtime.mstart``, ``runtime.rt0_go``,
  ``runtime.goexit``: asm_amd64.s, asm_arm64.s) is the outermost frame of its stack: the
  traceback stops there (``funcFlag_TOPFRAME``). Its CFI may go on (cmd/link marks the
  return address undefined on LR machines only; on amd64 it leads to ``runtime.clone``, as
  gdb shows), a heuristic may not: a new M's ``runtime.mstart0`` saved the rbp that
  ``runtime.clone`` inherited from the thread that made it, so a frame-pointer chain past
  it runs through another thread's stack. For the same reason no heuristic leads past
  ``runtime.clone`` itself (sys_linux_amd64.s: the child runs on in it, with the parent's
  registers, until it calls mstart; the parent's frames are lost where there is no CFI).
"""

from __future__ import annotations

import weakref
from typing import Tuple

from coredump.symbols.symtab import find_symbol

__all__ = ("called_sigpanic", "sigpanic_ranges", "heuristic_top_ranges", "in_ranges", "is_abi_wrapper_of",
           "is_go_image", "SIGPANIC", "TOPFRAME", "HEURISTIC_TOPS", "ABI0_SUFFIX")

SIGPANIC = "runtime.sigpanic"
# The runtime's functions marked TOPFRAME (runtime/asm_amd64.s, asm_arm64.s; go1.19). Not
# runtime.sigtramp: the walk goes on through its sigreturn frame to the interrupted code.
TOPFRAME = ("runtime.mstart", "runtime.rt0_go", "runtime.goexit")
# Where a frame-pointer or scanned chain stops: the top frames, and the clone(2) wrapper.
HEURISTIC_TOPS = TOPFRAME + ("runtime.clone",)
ABI0_SUFFIX = ".abi0"
_GO_SECTIONS = (".go.buildinfo", ".gopclntab")

_RANGES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def is_go_image(image) -> bool:
    """Whether the ELF image was linked by the Go linker (it writes these sections)."""
    return image is not None and any(image.get_section_info(name) is not None for name in _GO_SECTIONS)


def sigpanic_ranges(target) -> Tuple[Tuple[int, int], ...]:
    """[start, end) of runtime.sigpanic in every Go module of the target (none elsewhere:
    this costs nothing for a C program)."""
    return _ranges(target, (SIGPANIC,))


def heuristic_top_ranges(target) -> Tuple[Tuple[int, int], ...]:
    """[start, end) of the HEURISTIC_TOPS functions in every Go module of the target.
    Assembly functions are ABI0: cmd/link names them ``F.abi0`` where Go code calls them
    through a wrapper, ``F`` otherwise."""
    return _ranges(target, tuple(n + s for n in HEURISTIC_TOPS for s in ("", ABI0_SUFFIX)))


def in_ranges(ranges: Tuple[Tuple[int, int], ...], pc: int) -> bool:
    return any(low <= pc < high for low, high in ranges)


def _ranges(target, names: Tuple[str, ...]) -> Tuple[Tuple[int, int], ...]:
    try:
        return _RANGES[target][names]
    except (KeyError, TypeError):
        pass
    ranges = []
    for mod in getattr(target, "modules", ()):
        if not mod.trusted or not is_go_image(mod.image) or mod.symtab is None:
            continue
        for name in names:
            start = find_symbol(mod.image, name)
            span = mod.symtab.function_range(start) if start is not None else None
            if span is not None:
                ranges.append((span[0] + mod.bias, span[1] + mod.bias))
    found = tuple(ranges)
    try:
        _RANGES.setdefault(target, {})[names] = found
    except TypeError:
        pass
    return found


def called_sigpanic(target, lookup_pc: int) -> bool:
    """Whether a frame whose lookup pc is `lookup_pc` is in runtime.sigpanic: its caller's pc
    is then the faulting instruction."""
    return in_ranges(sigpanic_ranges(target), lookup_pc)


def is_abi_wrapper_of(symbol: str, names) -> bool:
    """Whether the ELF symbol `symbol` is the ABI0 wrapper of one of the functions `names`."""
    return symbol.endswith(ABI0_SUFFIX) and symbol[:-len(ABI0_SUFFIX)] in names
