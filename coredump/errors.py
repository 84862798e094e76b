"""
Errors
======

The one error tree of coredump: the CLI turns every ``CoreDumpError`` into a single
``Error: …`` line and a non-zero exit status.
"""

__all__ = ("CoreDumpError", "CoreFormatError", "MemoryFault", "MissingFileError", "StorageError")


class CoreDumpError(Exception):
    """Base of every error coredump reports to its user."""


class CoreFormatError(CoreDumpError):
    """The input is not an ELF core, or is damaged beyond reading."""


class MemoryFault(CoreDumpError):
    """An address of the crashed process whose bytes the core does not hold.

    >>> str(MemoryFault(0x10))
    'cannot read memory at 0x10'
    """

    def __init__(self, address: int, message: str = "cannot read memory"):
        self.address = address
        super().__init__(f"{message} at {address:#x}")


class MissingFileError(CoreDumpError):
    """A file the user named does not exist or cannot be read."""


class StorageError(CoreDumpError):
    """Writing or uploading artifacts failed."""
