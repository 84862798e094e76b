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
- A goroutine's or an M's stack starts in one of a few functions (runtime/traceback.go
  ``topofstack``, Go 1.19: goexit, mstart, mcall, morestack, rt0_go; the first three carry the
  TOPFRAME flag in asm_amd64.s/asm_arm64.s): the traceback stops there. Their CFI may go on
  (cmd/link marks the return address undefined on LR machines only; on amd64 it leads to
  ``runtime.clone``, as gdb shows), a heuristic may not: a new M's ``runtime.mstart0`` saved the
  rbp that ``runtime.clone`` inherited from the thread that made it, so a frame-pointer chain
  past it runs through another thread's stack, or a scan reads a stale word of a reused stack.
  For the same reason no heuristic leads past ``runtime.clone`` itself (sys_linux_amd64.s: the
  child runs on in it, with the parent's registers, until it calls mstart).
"""

from __future__ import annotations

import weakref

from coredump.symbols.symtab import find_symbol

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Tuple

__all__ = ("called_sigpanic", "sigpanic_ranges", "heuristic_top_ranges", "in_ranges", "is_abi_wrapper_of",
           "is_go_image", "SIGPANIC", "TOP_OF_STACK", "HEURISTIC_TOPS", "ABI0_SUFFIX")

SIGPANIC = "runtime.sigpanic"
ABI0_SUFFIX = ".abi0"
_GO_SECTIONS = (".go.buildinfo", ".gopclntab")
# runtime/traceback.go topofstack (Go 1.19: funcID_goexit, _mstart, _mcall, _morestack, _rt0_go);
# the assembly ones are named with their ABI0 suffix in the symbol table.
TOP_OF_STACK = tuple(f"runtime.{name}{abi}" for name in ("goexit", "mstart", "mcall", "morestack", "rt0_go")
                     for abi in ("", ABI0_SUFFIX))
# Where a frame-pointer or scanned chain stops: the tops of stacks, and the clone(2) wrapper.
# Not runtime.sigtramp: the walk goes on through its sigreturn frame to the interrupted code.
HEURISTIC_TOPS = TOP_OF_STACK + ("runtime.clone", "runtime.clone" + ABI0_SUFFIX)

_RANGES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def is_go_image(image) -> bool:
    """Whether the ELF image was linked by the Go linker (it writes these sections)."""
    return image is not None and any(image.get_section_info(name) is not None for name in _GO_SECTIONS)


def sigpanic_ranges(target) -> Tuple[Tuple[int, int], ...]:
    """[start, end) of runtime.sigpanic in every Go module of the target (none elsewhere:
    this costs nothing for a C program)."""
    return _function_ranges(target, (SIGPANIC,))


def heuristic_top_ranges(target) -> Tuple[Tuple[int, int], ...]:
    """[start, end) of the functions past which no frame-pointer or scanned caller is taken
    (HEURISTIC_TOPS, with their ABI0 names), in every Go module of the target."""
    return _function_ranges(target, HEURISTIC_TOPS)


def in_ranges(ranges: Tuple[Tuple[int, int], ...], pc: int) -> bool:
    return any(low <= pc < high for low, high in ranges)


def _function_ranges(target, names: Tuple[str, ...]) -> Tuple[Tuple[int, int], ...]:
    cache = _RANGES.get(target) if _weakly_keyed(target) else None
    if cache is not None and names in cache:
        return cache[names]
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
    if _weakly_keyed(target):
        _RANGES.setdefault(target, {})[names] = found
    return found


def _weakly_keyed(target) -> bool:
    try:
        weakref.ref(target)
    except TypeError:
        return False
    return True


def called_sigpanic(target, lookup_pc: int) -> bool:
    """Whether a frame whose lookup pc is `lookup_pc` is in runtime.sigpanic: its caller's pc
    is then the faulting instruction."""
    return in_ranges(sigpanic_ranges(target), lookup_pc)


def is_abi_wrapper_of(symbol: str, names) -> bool:
    """Whether the ELF symbol `symbol` is the ABI0 wrapper of one of the functions `names`."""
    return symbol.endswith(ABI0_SUFFIX) and symbol[:-len(ABI0_SUFFIX)] in names
