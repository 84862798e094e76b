"""``coredump.record``: the same behaviour as ``dataclasses`` for what the project uses, checked
side by side on one class definition built both ways."""

from __future__ import annotations

import dataclasses
import pickle
from typing import ClassVar, Optional, Tuple

import pytest

from coredump import record
from coredump.model import Frame, Module, Trust


def _build(kind):
    dc, fld = (dataclasses.dataclass, dataclasses.field) if kind == "dataclasses" else (record.dataclass, record.field)

    @dc(frozen=True)
    class Point:
        LIMIT: ClassVar[int] = 3
        x: int
        y: int = 0
        tags: Tuple[str, ...] = fld(default_factory=tuple)
        note: Optional[str] = fld(default=None, compare=False, repr=False)

    @dc
    class Box:
        items: list = fld(default_factory=list)
        label: str = "box"
        seen: dict = fld(default_factory=dict, init=False, repr=False)

        def __post_init__(self):
            self.size = len(self.items)

    return Point, Box, dataclasses.replace if kind == "dataclasses" else record.replace


def _plain(kind):
    """Fields that are all plain parameters: record builds its __init__ from a template."""
    dc = dataclasses.dataclass if kind == "dataclasses" else record.dataclass

    @dc(frozen=True)
    class Pair:
        x: int
        y: int = 0
        note: Optional[str] = None

    return Pair


def _outcome(cls, args, kwargs):
    try:
        return vars(cls(*args, **kwargs))
    except TypeError as exc:
        return str(exc)


def test_plain_records_bind_arguments_as_dataclasses_do():
    calls = [((1,), {}), ((1, 2, "n"), {}), ((), {"x": 3, "note": "k"}), ((), {}), ((1, 2, 3, 4), {}),
             ((1,), {"x": 2}), ((1,), {"z": 0})]
    theirs, ours = _plain("dataclasses"), _plain("record")
    for args, kwargs in calls:
        assert _outcome(ours, args, kwargs) == _outcome(theirs, args, kwargs)
    assert ours(1) == ours(1, 0) and ours(1) != ours(2) and hash(ours(1)) == hash(ours(1))


@pytest.fixture(params=["dataclasses", "record"])
def classes(request):
    return _build(request.param)


def test_init_defaults_and_factories(classes):
    Point, Box, _ = classes
    p = Point(1)
    assert (p.x, p.y, p.tags, p.note) == (1, 0, (), None)
    assert Point.LIMIT == 3 and "LIMIT" not in vars(p)  # a ClassVar is no field
    a, b = Box(), Box()
    a.items.append(1)
    assert b.items == [] and Box([1, 2]).size == 2  # a fresh list each; __post_init__ ran
    assert a.seen == {} and a.seen is not b.seen
    with pytest.raises(TypeError):
        Box([], "x", {})  # init=False: no parameter
    with pytest.raises(TypeError):
        Point()
    with pytest.raises(TypeError):
        Point(1, 2, (), None, 5)


def test_equality_hash_and_repr(classes):
    Point, Box, _ = classes
    assert Point(1, 2, note="a") == Point(1, 2, note="b")  # compare=False
    assert Point(1, 2) != Point(1, 3) and Point(1) != (1, 0, (), None)
    assert hash(Point(1, 2, ("t",))) == hash(Point(1, 2, ("t",)))
    assert len({Point(1), Point(1), Point(2)}) == 2
    assert repr(Point(1, 2)).endswith("Point(x=1, y=2, tags=())")  # repr=False hides note
    with pytest.raises(TypeError):
        hash(Box())  # mutable with __eq__: unhashable
    assert Box([1]) == Box([1]) and Box([1]) != Box([2])


def test_frozen_refuses_assignment(classes):
    Point, Box, _ = classes
    p = Point(1)
    with pytest.raises(AttributeError):
        p.x = 2
    with pytest.raises(AttributeError):
        del p.y
    box = Box()
    box.label = "other"
    assert box.label == "other"


def test_replace(classes):
    Point, Box, replace = classes
    p = Point(1, 2, ("a",), note="n")
    q = replace(p, y=5)
    assert (q.x, q.y, q.tags, q.note) == (1, 5, ("a",), "n") and p.y == 2
    box = Box([1])
    box.seen["k"] = 1
    assert replace(box, label="l").seen == {}  # init=False starts afresh
    with pytest.raises(ValueError):
        replace(box, seen={})


@pytest.mark.parametrize("kind", ["dataclasses", "record"])
def test_replace_of_plain_records_as_dataclasses(kind):
    """A record of plain fields is copied without its __init__: the same values, the same
    errors, and a subclass's own __init__ or __post_init__ still runs, as dataclasses does."""
    import functools

    dc = dataclasses.dataclass if kind == "dataclasses" else record.dataclass
    replace = dataclasses.replace if kind == "dataclasses" else record.replace
    Pair = _plain(kind)

    class Counted(Pair):
        made = 0

        def __init__(self, *args, **kwargs):
            type(self).made += 1
            super().__init__(*args, **kwargs)

    @dc(frozen=True)
    class Checked:
        x: int

        def __post_init__(self):
            if self.x < 0:
                raise ValueError("negative")

    @dc(frozen=True)
    class Cached:
        x: int

        @functools.cached_property
        def double(self):
            return 2 * self.x

    q = replace(Pair(1, 2, "n"), y=5)
    assert (type(q), vars(q)) == (Pair, {"x": 1, "y": 5, "note": "n"})
    with pytest.raises(TypeError):
        replace(Pair(1), z=3)
    c = replace(Counted(1), x=2)
    assert (type(c), c.x, Counted.made) == (Counted, 2, 2)
    with pytest.raises(ValueError):
        replace(Checked(1), x=-1)
    cached = Cached(3)
    assert cached.double == 6 and replace(cached, x=4).double == 8


def test_a_non_default_field_after_a_default_one_is_refused():
    with pytest.raises(TypeError):
        @record.dataclass
        class Bad:
            a: int = 0
            b: int


def test_model_records_pickle_and_replace():
    frame = Frame(index=0, pc=0x401000, sp=0x7ffc0000, cfa=None, trust=Trust.CONTEXT, module="/bin/x")
    assert pickle.loads(pickle.dumps(frame)) == frame
    moved = record.replace(frame, index=3)
    assert moved.index == 3 and moved.pc == frame.pc and moved != frame
    assert [f.name for f in record.fields(Module)][:3] == ["path", "start", "end"]
