"""
Rust demangling
===============

Rust symbol names, both manglings rustc emits: v0 (RFC 2603, ``_R…``, in
:mod:`coredump.demangle.rust_v0`) and legacy (an Itanium nested name ending in a ``17h<hash>``
element, in :mod:`coredump.demangle.rust_legacy`), printed the way libiberty's rust-demangle.c
prints them (the text of c++filt and gdb), with crate disambiguators and legacy hashes left
out unless ``verbose`` (c++filt's default) asks for them. The split follows rustc-demangle's
``legacy`` and ``v0`` modules.
"""

from __future__ import annotations

from coredump.demangle.rust_legacy import demangle_legacy
from coredump.demangle.rust_v0 import MAX_DEPTH, MAX_OUTPUT, MAX_STEPS, demangle_v0

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Optional

__all__ = ("demangle_rust", "demangle_v0", "demangle_legacy", "MAX_DEPTH", "MAX_OUTPUT", "MAX_STEPS")


def demangle_rust(name: str, verbose: bool = False) -> Optional[str]:
    """A Rust symbol of either mangling demangled, or None when `name` is neither."""
    if name.startswith(("_R", "__R")):
        return demangle_v0(name, verbose)
    if name.startswith("_ZN"):
        return demangle_legacy(name, verbose)
    return None
