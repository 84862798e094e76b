"""``python -m coredump.cli``: the console script."""

from coredump.cli.entry import main

main()
