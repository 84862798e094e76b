"""
Symbolize
=========

Names, files and lines for physical frames (placeholder: ELF symbols only).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence, Tuple

from coredump.model import Frame

__all__ = ("symbolize_frames",)


def symbolize_frames(target, frames: Sequence[Frame]) -> Tuple[Frame, ...]:
    out = []
    for frame in frames:
        mod = target.find_module(frame.pc)
        if mod is None:
            out.append(frame)
            continue
        changes = {"module": mod.path, "module_offset": frame.pc - mod.start}
        table = mod.symtab
        hit = table.lookup(frame.lookup_pc - mod.bias) if table is not None else None
        if hit is not None and frame.function is None:
            changes["function"] = hit[0]
            changes["symbol_offset"] = hit[1] + (frame.pc - frame.lookup_pc)
        out.append(dataclasses.replace(frame, **changes))
    return tuple(out)
