"""
Command line
============

The ``coredump`` command. ``entry`` is the console script (``coredump run`` without click);
``main`` is the click group, with one module per command family: ``analyze``, ``capture``
(run, harvest, doctor), ``report``, ``store`` (upload, fetch, ls), ``bundle`` (gdb, slim) and
``triage`` (diff). ``errors`` turns a ``CoreDumpError`` into one ``Error: …`` line.

This package imports nothing itself: the fast ``run`` path must not pay for click.
"""
