"""
Capture
=======

Get cores out of CI steps: the ``run`` wrapper, core_pattern parsing, finding and
harvesting cores, compression. Submodules are imported on demand so that the ``run``
wrapper's success path stays cheap.
"""

__all__ = ()
