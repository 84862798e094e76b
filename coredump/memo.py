"""
Memos
=====

What one analysis asks again and again, answered once. ``OwnerMemo`` keeps answers per owner
(an analysis's target, an image) for as long as the owner lives, and at most ``limit`` of them
per owner: hostile input can ask any number of questions, and past the limit an answer is
computed afresh, never dropped. ``by_value`` rebuilds a value from its parse-cache data once
per distinct data: the data is the key, so equal data gives an equal (frozen) value.

Imports nothing of ours, as ``record`` and ``patterns``: any layer may use it.
"""

from __future__ import annotations

import functools
import weakref

__all__ = ("OwnerMemo", "by_value")


class OwnerMemo:
    """Answers by (owner, key), kept while the owner lives (a weak reference to it)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._tables: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def table(self, owner):
        """The owner's dict of answers, or None for an owner that takes no weak reference."""
        try:
            table = self._tables.get(owner)
            if table is None:
                table = self._tables[owner] = {}
        except TypeError:
            return None
        return table

    def get(self, owner, key, compute):
        """The answer for `key`, from `compute()` the first time (while under the limit)."""
        table = self.table(owner)
        if table is None:
            return compute()
        try:
            return table[key]
        except KeyError:
            pass
        value = compute()
        if len(table) < self.limit:
            table[key] = value
        return value


def by_value(rebuild, maxsize: int = 256):
    """`rebuild(data)` remembered by the value of `data` (the `maxsize` most recent); data
    that cannot be hashed (a list where a tuple was) is rebuilt afresh."""
    cached = functools.lru_cache(maxsize=maxsize)(rebuild)

    @functools.wraps(rebuild)
    def rebuilt(data):
        try:
            return cached(data)
        except TypeError:
            return rebuild(data)

    return rebuilt
