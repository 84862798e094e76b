"""Signature lists matched line by line against the one-alternation regex they stand for."""

import json
import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from coredump.triage.siglist import SIGLISTS, Siglist, literal_prefix, load_siglist, read_lines

LISTS = sorted(p.name for p in Path(SIGLISTS).glob("*.txt"))
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"


def _alternation(name):
    """What the lists meant before: every line wrapped in (?:…), joined with |, fullmatch."""
    lines = [s.strip() for s in (Path(SIGLISTS) / name).read_text().splitlines()]
    return re.compile("|".join(f"(?:{s})" for s in lines if s and not s.startswith("#")) or r"(?!)")


def _real_names():
    """Every function and module name in the corpus snapshots, and the lists' own lines."""
    names = set()
    for path in SNAPSHOTS.rglob("*.json"):
        def walk(node):
            if isinstance(node, dict):
                for key, value in node.items():
                    if key in ("function", "module", "path", "name") and isinstance(value, str):
                        names.add(value)
                        names.add(value.rsplit("/", 1)[-1])
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)
        walk(json.loads(path.read_text()))
    for name in LISTS:
        names.update(s.strip() for s in (Path(SIGLISTS) / name).read_text().splitlines())
    return sorted(names)


def test_literal_prefix():
    assert literal_prefix("__\\w+_chk") == "__"
    assert literal_prefix("stp(n)?cpy") == "stp"
    assert literal_prefix("ab?c") == "a"
    assert literal_prefix("(?:\\w+::)*rust_panic") == ""
    assert literal_prefix("malloc|free") == ""
    assert literal_prefix("__pthread_kill(_implementation|_internal)?") == "__pthread_kill"
    assert literal_prefix("abort") == "abort"


def test_every_list_agrees_with_its_alternation_on_real_names():
    names = _real_names()
    assert len(names) > 100
    for name in LISTS:
        old, new = _alternation(name), load_siglist(name)
        matched = [n for n in names if new.fullmatch(n)]
        assert matched == [n for n in names if old.fullmatch(n)], name
        assert matched, name  # each list matches something real: the comparison is not vacuous


_PIECES = st.sampled_from(["std::", "core::", "__", "_", "malloc", "free", "str", "cpy", "len", "rust_panic",
                           "libc", ".so", ".6", "-2.36", "abort", "raise", "x", "::", "chk", "Unwind_", "<T>"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, min_size=1, max_size=5).map("".join))
def test_every_list_agrees_with_its_alternation_on_made_up_names(name):
    for list_name in LISTS:
        assert load_siglist(list_name).fullmatch(name) == bool(_alternation(list_name).fullmatch(name))


def test_an_empty_list_matches_nothing():
    assert not Siglist(()).fullmatch("") and not Siglist(()).fullmatch("main")


def test_read_lines_keeps_order_and_drops_comments_and_blanks(tmp_path):
    """An indented comment is a comment, as load_siglist reads it; order is the file's."""
    (tmp_path / "list.txt").write_text("# head\nzeta\n\n   # indented comment\n  alpha  \nmid\n")
    assert read_lines("list.txt", tmp_path) == ("zeta", "alpha", "mid")
    assert load_siglist("list.txt", tmp_path).fullmatch("alpha")
    assert not load_siglist("list.txt", tmp_path).fullmatch("# indented comment")
