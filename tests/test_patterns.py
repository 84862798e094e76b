"""``coredump.patterns``: a pattern compiled on first use gives what ``re`` gives, and
``analyze``'s modules compile none at import."""

from __future__ import annotations

import re
import subprocess
import sys

from coredump.patterns import lazy_compile
from tests.cores import ROOT


def test_same_results_as_re():
    text = "a1 b22 c333"
    lazy, eager = lazy_compile(r"([a-z])(\d+)"), re.compile(r"([a-z])(\d+)")
    assert lazy._compiled is None
    assert lazy.match(text).groups() == eager.match(text).groups()
    assert lazy.fullmatch("b22").group(2) == "22" and lazy.fullmatch(text) is None
    assert lazy.search(" x9").span() == eager.search(" x9").span()
    assert lazy.sub(r"\2", text) == eager.sub(r"\2", text) and lazy.sub("-", text, count=1) == "- b22 c333"
    assert lazy.findall(text) == eager.findall(text)
    assert [m.span() for m in lazy.finditer(text)] == [m.span() for m in eager.finditer(text)]
    assert lazy.split(text) == eager.split(text) and lazy.pattern == eager.pattern
    assert lazy_compile("a.b", re.S).match("a\nb") and not lazy_compile("a.b").match("a\nb")


def test_importing_analyze_compiles_no_pattern_of_ours():
    # sre's compiler, counted while the modules analyze imports are imported.
    probe = ("import re, sys, traceback\n"
             "ours = []\n"
             "orig = re._compile\n"
             "def spy(p, f):\n"
             "    caller = traceback.extract_stack(limit=3)[0].filename\n"
             "    if '/coredump/' in caller and p not in re._cache:\n"
             "        ours.append((caller, p))\n"
             "    return orig(p, f)\n"
             "re._compile = spy\n"
             "import coredump.cli.analyze, coredump.analysis, coredump.report.json, coredump.report.text\n"
             "print(ours)\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout



def test_a_text_without_what_every_match_needs_compiles_nothing():
    pattern = r"\.constprop\.\d+$"
    eager, lazy = re.compile(pattern), lazy_compile(pattern, needs=(".constprop",))
    assert (lazy.match("main"), lazy.fullmatch("main"), lazy.search("main")) == (None, None, None)
    assert lazy.sub("", "main") == "main" and lazy.findall("main") == [] and lazy.split("main") == ["main"]
    assert list(lazy.finditer("main")) == [] and lazy._compiled is None
    text = "store_value.constprop.0"
    assert lazy.search(text).span() == eager.search(text).span() and lazy.sub("", text) == "store_value"
    assert lazy.findall(text) == eager.findall(text) and lazy._compiled is not None
