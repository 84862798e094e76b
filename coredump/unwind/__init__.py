"""
Unwinder
========

Physical frames of a thread from its registers and stack: DWARF CFI, signal frames,
frame pointers and stack scanning, tried in that order per frame (``walk.py``).
"""

from coredump.unwind.walk import WalkResult, walk_thread

__all__ = ("WalkResult", "walk_thread")
