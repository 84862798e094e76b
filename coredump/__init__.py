"""coredump: capture, explain and publish core dumps from CI."""

__version__ = "0.1.0"
