"""
Tracked files
=============

Which found cores git tracks: a repository's core fixtures (tests/data/core.*) are files
of the checkout, not crashes of the job, and a harvest must neither store nor remove them.
git is asked with a fixed argv (no shell, no name from the disk on its command line), in
the core's directory, with a time limit; without git nothing is known to be tracked.
"""

from __future__ import annotations

import os
import subprocess
from typing import Dict, Iterable, NamedTuple, Optional, Set

__all__ = ("Tracked", "find_tracked", "GIT_TIMEOUT")

GIT_TIMEOUT = 20.0
# git-config(1): core.fsmonitor names a program git runs when it reads the index; a step
# could have set one in .git/config. safe.directory=* because a CI checkout is often owned
# by another uid than the harvest's (git then refuses to answer at all).
_GIT = ("git", "-c", "core.fsmonitor=false", "-c", "safe.directory=*", "--no-pager",
        "ls-files", "-z", "--cached", "--")


class Tracked(NamedTuple):
    """`paths`: the cores git tracks; `unknown`: directory -> why git could not say."""

    paths: Set[str]
    unknown: Dict[str, str]


def _ls_files(directory: str) -> tuple:
    """(names git tracks directly in `directory`, None) or (None, why not known); an
    empty set outside a repository or without git."""
    env = {**os.environ, "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}
    try:
        proc = subprocess.run(_GIT, cwd=directory, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=GIT_TIMEOUT, check=False)
    except FileNotFoundError:
        return set(), None  # no git: nothing can be known to be tracked
    except subprocess.TimeoutExpired:
        return None, f"git ls-files took over {GIT_TIMEOUT:g} s"
    except OSError as exc:
        return None, f"git could not run: {exc.strerror}"
    if proc.returncode != 0:
        if b"not a git repository" in proc.stderr:
            return set(), None
        first = proc.stderr.decode("utf-8", "backslashreplace").strip().splitlines()[:1]
        return None, f"git ls-files failed ({first[0] if first else f'exit {proc.returncode}'})"
    # git-ls-files(1): paths relative to the working directory; those below it have a '/'.
    return {os.fsdecode(n) for n in proc.stdout.split(b"\0") if n and b"/" not in n}, None


def find_tracked(cores: Iterable[str]) -> Tracked:
    """Which of `cores` (absolute paths) git tracks, asking once per directory."""
    names: Dict[str, Optional[Set[str]]] = {}
    out = Tracked(set(), {})
    for core in cores:
        directory, name = os.path.split(core)
        if directory not in names:
            names[directory], why = _ls_files(directory or ".")
            if why is not None:
                out.unknown[directory] = why
        if names[directory] is not None and name in names[directory]:
            out.paths.add(core)
    return out
