"""
Explain
=======

Fill in the crash's reason and signature from the facts already gathered.
"""

from __future__ import annotations

import dataclasses
import hashlib

from coredump.model import Crash

__all__ = ("explain", "simple_signature")


def simple_signature(crash: Crash, depth: int = 3) -> str:
    """``SIGNAME in f < g < h`` from the crashing thread's named frames."""
    if crash.crashing_thread is None:
        return crash.signal.name
    frames = crash.threads[crash.crashing_thread].frames
    names = [f.function.split("(", 1)[0] for f in frames if f.function][:depth]
    if not names:
        return f"{crash.signal.name} at {frames[0].pc:#x}" if frames else crash.signal.name
    return f"{crash.signal.name} in {' < '.join(names)}"


def explain(crash: Crash, target=None) -> Crash:
    signature = simple_signature(crash)
    return dataclasses.replace(
        crash, reason=crash.signal.description, signature=signature,
        fingerprint=hashlib.sha256(signature.encode()).hexdigest()[:16])
