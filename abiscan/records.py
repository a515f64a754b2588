"""Frozen dataclasses whose value methods are made on first use, not at import.

:func:`record` is ``dataclasses.dataclass(frozen=True)``: the same fields,
``__init__``, frozen ``__setattr__``/``__delattr__``, ``__match_args__``,
equality, hash and repr. Only when ``__eq__``, ``__hash__`` and ``__repr__``
are made differs. The standard library writes each class's methods as source
text and compiles it when the class is created (one ``exec`` per method before
CPython 3.13, one per class since): at start-up, most of what abiscan's own
modules cost, for classes most of which a run never compares, hashes or
prints (docs/decisions.md, *Start-up*). Here the class is made with
``eq=False, repr=False`` and given:

* ``__eq__`` and ``__hash__`` that, on their first call, compile the method
  ``dataclass`` writes (CPython 3.10 to 3.12: ``NotImplemented`` unless
  ``other.__class__ is self.__class__``, else the tuples of the fields with
  ``compare=True`` compared; the hash of the tuple of the fields with
  ``hash=True``, or ``hash=None`` and ``compare=True``) and put it on the
  class: a hot class runs the same code as before, a class never compared
  never compiles it;
* a shared ``__repr__``: ``QualName(a=..., b=...)`` over the fields with
  ``repr=True``, ``...`` for an instance already being printed (a cycle) in
  the same thread.

A method the class body defines is kept, as ``dataclass`` keeps it (and, as
there, an ``__eq__`` defined without ``__hash__`` still gets the field hash).
What differs is introspection only: ``__dataclass_params__`` says
``eq=False, repr=False``.
"""

from __future__ import annotations

import builtins
import dataclasses
from _thread import get_ident
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

__all__ = ["record"]

_T = TypeVar("_T")

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:  # only type checkers read it (typing has it from 3.11 only)

    def dataclass_transform(**_: object) -> Callable[[_T], _T]:
        return lambda decorated: decorated


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def record(cls: type[_T]) -> type[_T]:
    """``@dataclass(frozen=True)``, with ``__eq__``, ``__hash__`` and ``__repr__`` made
    on first use."""
    own = dict(cls.__dict__)
    cls = dataclasses.dataclass(frozen=True, eq=False, repr=False)(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if "__eq__" not in own:
        _attach(cls, _first_eq(cls, [f.name for f in fields if f.compare]))
    # As dataclass: a body's own __hash__ stays, unless it is the None that
    # defining __eq__ without __hash__ leaves.
    if "__hash__" not in own or (own["__hash__"] is None and "__eq__" in own):
        hashed = [f.name for f in fields if (f.compare if f.hash is None else f.hash)]
        _attach(cls, _first_hash(cls, hashed))
    if "__repr__" not in own:
        _attach(cls, _repr(tuple(f.name for f in fields if f.repr)))
    return cls


def _attach(cls: type, method: Callable[..., Any]) -> None:
    method.__qualname__ = f"{cls.__qualname__}.{method.__name__}"
    method.__module__ = cls.__module__
    setattr(cls, method.__name__, method)


def _compiled(cls: type, text: str) -> Callable[..., Any]:
    """The method ``text`` defines (abiscan's own text, over the class's field
    names, which are identifiers), put on ``cls`` in place of the first-use one."""
    scope: dict[str, Any] = {}
    exec(text, {"__builtins__": builtins}, scope)
    (method,) = scope.values()
    _attach(cls, method)
    return method  # type: ignore[no-any-return]


def _first_eq(cls: type, names: list[str]) -> Callable[[Any, Any], Any]:
    # Equality and hashing are hot on a large layer (records in sets and dict keys):
    # the method compiled once, as dataclass writes it, runs faster than any shared
    # one, and a class never compared never compiles it.
    def __eq__(self: Any, other: Any) -> Any:
        mine = "".join(f"self.{n}," for n in names)
        theirs = "".join(f"other.{n}," for n in names)
        return _compiled(cls, f"def __eq__(self, other):\n"
                              f" if other.__class__ is self.__class__:\n"
                              f"  return ({mine}) == ({theirs})\n"
                              f" return NotImplemented\n")(self, other)

    return __eq__


def _first_hash(cls: type, names: list[str]) -> Callable[[Any], int]:
    def __hash__(self: Any) -> int:
        mine = "".join(f"self.{n}," for n in names)
        method = _compiled(cls, f"def __hash__(self):\n return hash(({mine}))\n")
        return method(self)  # type: ignore[no-any-return]

    return __hash__


def _repr(names: tuple[str, ...]) -> Callable[[Any], str]:
    running: set[tuple[int, int]] = set()

    def __repr__(self: Any) -> str:
        key = id(self), get_ident()
        if key in running:
            return "..."
        running.add(key)
        try:
            inner = ", ".join([f"{n}={getattr(self, n)!r}" for n in names])
        finally:
            running.discard(key)
        return f"{self.__class__.__qualname__}({inner})"

    return __repr__

