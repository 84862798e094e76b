"""
Records
=======

``@dataclass`` / ``@dataclass(frozen=True)``, ``field`` and ``replace`` for the project's
records, with the behaviour of the standard library's for what the project uses: fields from
the class's annotations in order (``ClassVar`` ones excluded), defaults and
``default_factory``, ``compare=False``, ``repr=False`` and ``init=False``, ``__post_init__``, equality of
records of one class, a hash for frozen ones, and a frozen record refusing assignment with
``FrozenInstanceError`` (an ``AttributeError``).

Why not ``dataclasses``: on the stock CPython 3.11 a class costs ~0.7 ms to build there (one
``exec`` per generated method) and the module ~12 ms to import (``inspect``); ``analyze``
builds ~45 of them at start-up, about a quarter of a warm analysis's CPU. Here only
``__init__`` is generated, in one ``exec`` at the record's first construction (about half the
classes one analysis imports are never constructed); equality, hash and repr read the fields
through one ``operator.attrgetter``.
"""

from __future__ import annotations

import functools
import operator
import types

__all__ = ("dataclass", "field", "replace", "fields", "FrozenInstanceError", "MISSING")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record (as ``dataclasses.FrozenInstanceError``)."""


class Field:
    __slots__ = ("name", "default", "default_factory", "compare", "repr", "init")

    def __init__(self, default=MISSING, default_factory=MISSING, compare=True, repr=True, init=True):
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("cannot specify both default and default_factory")
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.compare = compare
        self.repr = repr
        self.init = init


def field(*, default=MISSING, default_factory=MISSING, compare: bool = True, repr: bool = True,
          init: bool = True):
    return Field(default, default_factory, compare, repr, init)


def fields(obj) -> tuple:
    """The record's (or record class's) fields, in order."""
    return obj.__record_fields__


def replace(obj, **changes):
    """A copy of ``obj`` with ``changes`` (as ``dataclasses.replace``: a field that is not an
    ``__init__`` parameter starts afresh)."""
    cls = obj.__class__
    values = obj.__dict__
    if cls.__dict__.get("__record_plain__") and len(values) == len(cls.__record_init_names__):
        # Every field an __init__ parameter, no __post_init__, and the record holds exactly
        # its fields: the copy is its values with the changes (12,000 frames copied per
        # analysis of 200 threads spent a tenth of its values' time in __init__'s keywords).
        merged = {**values, **changes}
        if len(merged) == len(values):  # each change names a field (else __init__ says which not)
            new = object.__new__(cls)
            new.__dict__.update(merged)
            return new
    for name in changes:
        if name in cls.__record_not_init__:
            raise ValueError(f"field {name} is not an __init__ parameter")
    return cls(**{name: values[name] for name in cls.__record_init_names__ if name not in changes}, **changes)


def _is_classvar(annotation) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _fields_of(cls) -> tuple:
    out = []
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if _is_classvar(annotation):
            continue
        value = cls.__dict__.get(name, MISSING)
        f = value if isinstance(value, Field) else Field(default=value)
        f.name = name
        if isinstance(value, Field):
            if f.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        out.append(f)
    return tuple(out)


def _check_order(fields_: tuple) -> None:
    """As dataclasses, at class creation: no parameter without a default after one with."""
    seen_default = False
    for f in fields_:
        if not f.init:
            continue
        if f.default is not MISSING or f.default_factory is not MISSING:
            seen_default = True
        elif seen_default:
            raise TypeError(f"non-default argument {f.name!r} follows default argument")


@functools.cache
def _template(count: int) -> types.CodeType:
    """The code of ``__init__(self, p0, …)`` storing each parameter in ``self.__dict__``
    under a placeholder key; ``_plain_init`` renames parameters and keys. A compile costs
    0.1-0.4 ms a class, ~5 ms of an analysis' start-up; one per field count is 1-2 ms."""
    params = "".join(f", _p{i}" for i in range(count))
    body = "".join(f"    _d['@{i}'] = _p{i}\n" for i in range(count))
    glob: dict = {}
    exec(f"def __init__(self{params}):\n    _d = self.__dict__\n{body}", glob)  # noqa: S102 - fixed text
    return glob["__init__"].__code__


def _plain_init(cls, fields_: tuple):
    """``_make_init``'s function for a record of plain fields (each an ``__init__``
    parameter, with no default_factory, and no ``__post_init__``) from the template of its
    field count; None for any other record."""
    names = tuple(f.name for f in fields_)
    if hasattr(cls, "__post_init__") or not all(f.init and f.default_factory is MISSING for f in fields_) \
            or {"self", "_d"} & set(names):
        return None
    code = _template(len(names))
    keys = {f"@{i}": name for i, name in enumerate(names)}
    code = code.replace(co_varnames=("self",) + names + ("_d",),
                        co_consts=tuple(keys.get(c, c) if isinstance(c, str) else c for c in code.co_consts))
    defaults = tuple(f.default for f in fields_ if f.default is not MISSING)  # trailing (_check_order)
    init = types.FunctionType(code, {}, "__init__", defaults or None)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def _make_init(cls, fields_: tuple, frozen: bool):
    plain = _plain_init(cls, fields_)
    if plain is not None:
        return plain
    glob = {"MISSING": MISSING}
    params, body = [], ["_d = self.__dict__"]
    for f in fields_:
        if not f.init:
            if f.default is MISSING and f.default_factory is MISSING:
                continue  # as dataclasses: left unset
            glob[f"_v_{f.name}"] = f.default
            glob[f"_f_{f.name}"] = f.default_factory
            value = f"_v_{f.name}" if f.default_factory is MISSING else f"_f_{f.name}()"
            body.append(f"_d[{f.name!r}] = {value}")
            continue
        if f.default_factory is not MISSING:
            glob[f"_f_{f.name}"] = f.default_factory
            params.append(f"{f.name}=MISSING")
            body.append(f"_d[{f.name!r}] = _f_{f.name}() if {f.name} is MISSING else {f.name}")
            continue
        if f.default is not MISSING:
            glob[f"_v_{f.name}"] = f.default
            params.append(f"{f.name}=_v_{f.name}")
        else:
            params.append(f.name)
        body.append(f"_d[{f.name!r}] = {f.name}")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    source = f"def __init__(self, {', '.join(params)}):\n    " + "\n    ".join(body) + "\n"
    exec(source, glob)  # noqa: S102 - the source is built from the class's own field names
    init = glob["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def _lazy_init(cls, fields_: tuple, frozen: bool):
    """An ``__init__`` that builds the real one on the record's first construction: of the
    ~50 record classes ``analyze`` imports, one analysis constructs about half."""

    def __init__(self, *args, **kwargs):
        init = _make_init(cls, fields_, frozen)
        type.__setattr__(cls, "__init__", init)
        init(self, *args, **kwargs)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return __init__


def _getter(names):
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return lambda obj: (one(obj),)
    return operator.attrgetter(*names)


def _frozen_setattr(self, name, value):
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self, name):
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _process(cls, frozen: bool):
    fields_ = _fields_of(cls)
    cls.__record_fields__ = fields_
    _check_order(fields_)
    cls.__record_init_names__ = tuple(f.name for f in fields_ if f.init)  # what replace copies
    cls.__record_not_init__ = frozenset(f.name for f in fields_ if not f.init)
    # What replace may copy without __init__: the class's own, not a subclass's that may
    # bring an __init__ or __post_init__ of its own.
    cls.__record_plain__ = not cls.__record_not_init__ and not hasattr(cls, "__post_init__")
    cls.__init__ = _lazy_init(cls, fields_, frozen)
    key = _getter([f.name for f in fields_ if f.compare])
    shown = [f.name for f in fields_ if f.repr]

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return key(self) == key(other)

    def __repr__(self):
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
        return f"{self.__class__.__qualname__}({inner})"

    if "__repr__" not in cls.__dict__:
        cls.__repr__ = __repr__
    if "__eq__" not in cls.__dict__:
        cls.__eq__ = __eq__
    if frozen:
        cls.__setattr__ = _frozen_setattr
        cls.__delattr__ = _frozen_delattr
        if "__hash__" not in cls.__dict__ or cls.__dict__["__hash__"] is None:
            cls.__hash__ = lambda self: hash(key(self))
    elif "__hash__" not in cls.__dict__:
        cls.__hash__ = None  # as dataclasses: a mutable record with __eq__ is unhashable
    return cls


def dataclass(cls=None, *, frozen: bool = False):
    """``@dataclass`` or ``@dataclass(frozen=True)``: see the module's docstring."""
    if cls is None:
        return lambda c: _process(c, frozen)
    return _process(cls, frozen)
