"""
Go fatal errors
===============

The text of a Go runtime fatal error (``runtime.throw`` and ``runtime.fatal``: "fatal error:
all goroutines are asleep - deadlock!", "fatal error: concurrent map writes"), read back from
the core. No ``_panic`` holds it: throw's argument is a register. But the runtime keeps what
its builtin ``print`` wrote in a ring, ``runtime.printBacklog`` ([512]byte, next write at
``runtime.printBacklogIndex``; runtime/print.go recordForPanic, "for use in postmortem analysis
of core dumps"), until ``panicking`` is set; throw and fatal print ``fatal error: S\\n`` before
fatalthrow sets it (runtime/panic.go), so the ring's newest such line is the one printed.

Both are ELF symbols, present without DWARF too (``-ldflags=-w``). A ring that does not hold
together (an index outside it, no complete line) gives None.
"""

from __future__ import annotations

import struct

from coredump.errors import MemoryFault
from coredump.symbols.symtab import find_symbol
from coredump.unwind.goruntime import is_go_image

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Optional

__all__ = ("find_go_fatal", "PRINT_BACKLOG")

# runtime/print.go: printBacklog [512]byte (unchanged since it was added in Go 1.17).
PRINT_BACKLOG = 512
_PREFIX = b"fatal error: "


def find_go_fatal(target) -> Optional[str]:
    """``fatal error: <text>`` as the runtime printed it last, or None."""
    module = target.executable
    if module is None or not module.trusted or not is_go_image(module.image):
        return None
    ring, index = (find_symbol(module.image, s) for s in ("runtime.printBacklog", "runtime.printBacklogIndex"))
    if ring is None or index is None:
        return None
    try:
        (at,) = struct.unpack("<q", target.memory.read(index + module.bias, 8))
        data = target.memory.read(ring + module.bias, PRINT_BACKLOG)
    except MemoryFault:
        return None
    if not 0 <= at < PRINT_BACKLOG:
        return None
    return last_fatal_line(data[at:] + data[:at])


def last_fatal_line(text: bytes) -> Optional[str]:
    """The newest complete ``fatal error: ...`` line of `text` (oldest byte first).

    >>> last_fatal_line(b"\\0\\0fatal error: concurrent map writes\\n")
    'fatal error: concurrent map writes'
    """
    start = text.rfind(_PREFIX)
    end = text.find(b"\n", start)
    if start < 0 or end < 0:
        return None
    return text[start:end].decode("utf-8", "replace")
