"""
The coredump command in a subprocess
====================================

``command(*args)`` is the argv that runs ``coredump ARGS…`` the way the console script does
(``coredump.cli.entry:main``: the fast ``run`` path, else the click commands), with this
checkout's code when PYTHONPATH names it.
"""

from __future__ import annotations

import sys

__all__ = ("command",)


def command(*args: str):
    return [sys.executable, "-c", "from coredump.cli.entry import main; main()", *args]
