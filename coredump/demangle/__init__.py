"""
Demangling
==========

C++ (Itanium C++ ABI §5.1, ``_Z…``) symbol names shown the way c++filt and gdb show them,
and Rust's (v0 ``_R…`` and legacy, in :mod:`coredump.demangle.rust`) without their
crate disambiguators and hashes; ``None`` for a name that is not mangled or not understood.

The grammars live apart, as in cpp_demangle and rustc-demangle: :mod:`~coredump.demangle.itanium`
(<encoding>, <name>), :mod:`~coredump.demangle.itanium_types` (<type>, <template-args>) and
:mod:`~coredump.demangle.itanium_reader` (cursor, substitution tables) for C++.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Optional

__all__ = ("demangle",)


def demangle(name: str) -> Optional[str]:
    """The demangled form of `name`, or None when it is not a mangled name we understand.

    >>> demangle("_ZN5store11load_configERKNS_6ConfigE")
    'store::load_config(store::Config const&)'
    >>> demangle("_RINvCs1234_7mycrate3fooReEB2_")
    'mycrate::foo::<&str>'
    """
    if not name:
        return None
    # The grammars are imported on first use: a C program's names are not mangled.
    if name.startswith(("_R", "__R")):
        from coredump.demangle.rust_v0 import demangle_v0

        return demangle_v0(name)
    if not name.startswith(("_Z", "__Z")):
        return None
    if name.startswith("_ZN") and "17h" in name:
        from coredump.demangle.rust_legacy import demangle_legacy

        rust = demangle_legacy(name)
        if rust is not None:
            return rust
    from coredump.demangle.itanium import demangle_itanium

    return demangle_itanium(name[1:] if name.startswith("__Z") else name)
