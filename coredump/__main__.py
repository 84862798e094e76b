"""``python -m coredump``: the console script."""

from coredump.cli.entry import main

main()
