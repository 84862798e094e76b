"""
Stack walk
==========

Frame 0 from the thread's registers (placeholder until the CFI unwinder lands).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Tuple

from coredump.model import Frame, Trust

__all__ = ("WalkResult", "walk_thread")


@dataclass(frozen=True)
class WalkResult:
    frames: Tuple[Frame, ...]
    truncated: bool = False
    frames_omitted: int = 0
    warnings: List[str] = field(default_factory=list)


def walk_thread(target, registers: dict, max_frames: int = 1024) -> WalkResult:
    arch = target.arch
    if arch is None or arch.pc not in registers:
        return WalkResult(())
    frame = Frame(0, registers[arch.pc], sp=registers.get(arch.sp), trust=Trust.CONTEXT,
                  registers=dict(registers))
    return WalkResult((frame,))
