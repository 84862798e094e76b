"""
Bench start-up
==============

What ``analyze`` pays before it reads a byte of the core, step by step, for ``make bench``:
the interpreter, its ``site``, then the very modules a warm analysis imported, then those a
cold one adds (each step imports what the one before did and more). The module lists come
from ``python -X importtime`` of the same analyses, so a row names what the run imports,
not a list kept by hand.
"""

from __future__ import annotations

import subprocess
import tempfile
from typing import Callable, Dict, List

__all__ = ("imported_modules", "import_times", "startup_steps")

# Import each name as the analysis did; the ones it tried and missed (nt, _winapi, …) too.
_IMPORT_ALL = """
import importlib, sys
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
"""


def _importtime(python: str, analyze: List[str], env: dict) -> List[tuple]:
    """(self µs, cumulative µs, indent, module) per line of `python -X importtime`."""
    proc = subprocess.run([python, "-X", "importtime", *analyze], env=env, capture_output=True, text=True)
    out = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not line.startswith("import time:") or "cumulative" in line:
            continue
        name = parts[2].rstrip()
        out.append((int(parts[0].split(":")[1]), int(parts[1]), len(name) - len(name.lstrip()), name.strip()))
    return out


def imported_modules(python: str, analyze: List[str], env: dict) -> List[str]:
    """The modules `analyze` imported, in the order their imports finished."""
    return list(dict.fromkeys(name for *_, name in _importtime(python, analyze, env)))


def import_times(python: str, analyze: List[str], env: dict, top: int = 15) -> List[dict]:
    """The top-level imports' cumulative times (microseconds), largest first."""
    totals: Dict[str, int] = {}
    for _, cumulative, indent, name in _importtime(python, analyze, env):
        if indent == 1:  # a top-level import (one space of indent)
            totals[name] = cumulative
    return [{"module": m, "cumulative_us": us} for m, us in sorted(totals.items(), key=lambda kv: -kv[1])[:top]]


def startup_steps(python: str, dev_python: str, analyze: List[str], env: dict,
                  best: Callable[[List[str], dict], float]) -> List[dict]:
    """Each step's seconds by `best(argv, env)`, then the whole warm analysis."""
    with tempfile.TemporaryDirectory(prefix="coredump-startup-") as cold:
        cold_modules = imported_modules(python, analyze, dict(env, XDG_CACHE_HOME=cold))
    subprocess.run([python, *analyze], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    warm_modules = imported_modules(python, analyze, env)
    extra = [m for m in cold_modules if m not in warm_modules]
    steps = [
        ("python -S (no site)", [python, "-S", "-c", "pass"]),
        ("python (site, .pth files)", [python, "-c", "pass"]),
        (f"+ a warm analyze's {len(warm_modules)} modules", [python, "-c", _IMPORT_ALL, *warm_modules]),
        (f"+ {len(extra)} more of a cold one", [python, "-c", _IMPORT_ALL, *warm_modules, *extra]),
        ("(click, not on analyze's path)", [python, "-c", "import click"]),
        # What the installed copy spares: the developer's interpreter runs an editable finder's .pth.
        ("(dev venv python: editable .pth)", [dev_python, "-c", "pass"]),
        ("whole analyze --format json, warm", [python, *analyze]),
    ]
    rows = [{"step": label, "seconds": round(best(argv, env), 4)} for label, argv in steps]
    rows[2]["modules"], rows[3]["modules"] = warm_modules, extra
    return rows
