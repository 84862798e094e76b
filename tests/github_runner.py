"""
Workflow commands as the GitHub runner reads them
=================================================

``parse(line)`` follows actions/runner's ActionCommand.TryParseV2
(src/Runner.Worker/ActionCommandManager.cs, src/Sdk/.../ActionCommand.cs): a line that starts
with ``::`` (after leading whitespace), the command name up to the first space or ``::``,
``key=value`` properties split on ``,``, the data after the next ``::``; properties unescape
%25 %0D %0A %3A %2C, data %25 %0D %0A.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

__all__ = ("parse",)

_DATA = (("%0D", "\r"), ("%0A", "\n"), ("%25", "%"))
_PROPERTY = (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%"))


def _unescape(text: str, table) -> str:
    for escaped, plain in table:
        text = text.replace(escaped, plain)
    return text


def parse(line: str) -> Optional[Tuple[str, Dict[str, str], str]]:
    """(command, properties, data) of a workflow command line, else None."""
    line = line.strip()
    if not line.startswith("::"):
        return None
    end = line.find("::", 2)
    if end < 0:
        return None
    head, data = line[2:end], line[end + 2:]
    name, _, props_text = head.partition(" ")
    props = {}
    for item in props_text.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            props[key.strip()] = _unescape(value, _PROPERTY)
    return name, props, _unescape(data, _DATA)
