"""
Store
=====

Where crashes go: the artifact directory (``artifacts``) and remote backends.
"""

__all__ = ()
