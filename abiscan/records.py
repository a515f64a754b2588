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

:func:`mutable_record` is ``dataclasses.dataclass()`` (not frozen) made the same
way: ``__init__`` and ``__eq__`` compiled on first use, the shared ``__repr__``,
and ``__hash__`` None as ``dataclass`` sets it (unless the body defines one).

An ``__init__`` is compiled ahead, with the package, when its text is one of
:mod:`abiscan._record_inits` (the ``__init__`` of each of abiscan's own records,
written by ``tools/gen_record_inits.py``): the class gets it at once, the same
code with the class's module as its globals. Compiling them at start-up was a
tenth of a one-.so scan's instructions (docs/decisions.md, *Start-up*). A text
the table lacks (a record changed since, or one made elsewhere) is compiled on
first use, as above.

A frozen record's ``__init__`` puts its fields in the instance's ``__dict__``
itself, where ``dataclass``'s calls ``object.__setattr__`` for each (which puts
them there): half the time per field, and a cold scan of the real big layer
makes 117,613 records. Where ``object.__setattr__`` would not reach the
``__dict__`` (a class with ``__slots__``, or a data descriptor under a field's
name), the record's ``__init__`` calls it, as ``dataclass``'s does.
"""

from __future__ import annotations

import builtins
import dataclasses
import sys
import weakref
from _thread import get_ident
from collections.abc import Callable
from types import CodeType, FunctionType
from typing import TYPE_CHECKING, Any, TypeVar

from abiscan._record_inits import INITS as _AHEAD

if TYPE_CHECKING:
    from inspect import Signature

__all__ = ["init_source", "mutable_record", "record"]

_T = TypeVar("_T")

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:  # only type checkers read it (typing has it from 3.11 only)

    def dataclass_transform(**_: object) -> Callable[[_T], _T]:
        return lambda decorated: decorated


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def record(cls: type[_T]) -> type[_T]:
    """``@dataclass(frozen=True)``, its methods made on first use (see the module)."""
    own = dict(cls.__dict__)
    if _plain(cls, own):
        cls = dataclasses.dataclass(init=False, repr=False, eq=False)(cls)
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        _attach(cls, _first_init(cls, fields, frozen=True))
        for method in _frozen(cls, fields):
            _attach(cls, method)
    else:
        cls = dataclasses.dataclass(frozen=True, eq=False, repr=False)(cls)
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    params.init = params.repr = params.eq = params.frozen = True  # what the class behaves as
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


@dataclass_transform(field_specifiers=(dataclasses.field,))
def mutable_record(cls: type[_T]) -> type[_T]:
    """``@dataclass``, its methods made on first use (see the module): for the state
    of one scan's stages, which a scan makes a few of and never compares."""
    own = dict(cls.__dict__)
    if not _plain(cls, own):
        return dataclasses.dataclass(cls)
    cls = dataclasses.dataclass(init=False, repr=False, eq=False)(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    _attach(cls, _first_init(cls, fields, frozen=False))
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    params.init = params.repr = params.eq = True  # what the class behaves as
    if "__eq__" not in own:
        _attach(cls, _first_eq(cls, [f.name for f in fields if f.compare]))
    if "__hash__" not in own:  # as dataclass: eq without frozen is unhashable
        cls.__hash__ = None  # type: ignore[assignment]
    if "__repr__" not in own:
        _attach(cls, _repr(tuple(f.name for f in fields if f.repr)))
    return cls


def _plain(cls: type, own: dict[str, Any]) -> bool:
    """Whether ``cls`` uses only what :func:`_first_init` writes as ``dataclass`` does:
    no dataclass base, no keyword-only or ``InitVar`` field, its own
    docstring (``dataclass`` writes a missing one from the ``__init__`` signature),
    no ``__setattr__``/``__delattr__`` of its own (``dataclass`` refuses those)."""
    notes = own.get("__annotations__", {})
    return (
        bool(own.get("__doc__"))
        and not any(hasattr(base, "__dataclass_fields__") for base in cls.__mro__[1:])
        and not any("InitVar" in str(t) or "KW_ONLY" in str(t) for t in notes.values())
        and not any(isinstance(v, dataclasses.Field) and v.kw_only is True
                    for v in own.values())
        and "__setattr__" not in own
        and "__delattr__" not in own
    )


def _attach(cls: type, method: Callable[..., Any]) -> None:
    method.__qualname__ = f"{cls.__qualname__}.{method.__name__}"
    method.__module__ = cls.__module__
    setattr(cls, method.__name__, method)


def _code(text: str) -> CodeType:
    # Not under this module's ``from __future__ import annotations``, which exec
    # would pass on: the annotations are the fields' types, as dataclass makes them.
    return compile(text, "<string>", "exec", dont_inherit=True)


def _compiled(cls: type, text: str) -> Callable[..., Any]:
    """The method ``text`` defines (abiscan's own text, over the class's field
    names, which are identifiers), put on ``cls`` in place of the first-use one."""
    scope: dict[str, Any] = {}
    exec(_code(text), {"__builtins__": builtins}, scope)
    (method,) = scope.values()
    _attach(cls, method)
    return method  # type: ignore[no-any-return]


class _Factory:
    """Stands for a default the field's factory makes (``dataclass`` prints it so)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


# Each class's __init__ text, for tools/gen_record_inits.py (see init_source).
_SOURCES: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()


def init_source(cls: type) -> str | None:
    """The text of ``cls``'s ``__init__`` when :mod:`abiscan.records` made it (the
    keys of :mod:`abiscan._record_inits`); None for any other class."""
    return _SOURCES.get(cls)


def _first_init(
    cls: type, fields: tuple[dataclasses.Field[Any], ...], *, frozen: bool
) -> Callable[..., None]:
    # __init__ runs for every instance: the code dataclass writes (CPython 3.10 to
    # 3.12), compiled ahead, or else on the first instance. A frozen record's fields go
    # straight into its __dict__, as object.__setattr__ puts them there, in half the
    # time (a call per field), unless a slot or a data descriptor would take them.
    scope: dict[str, Any] = {"__dataclass_builtins_object__": object, "_return_type": None,
                             "__dataclass_HAS_DEFAULT_FACTORY__": _FACTORY}
    params, body = ["self"], []
    direct = frozen and _stored_in_dict(cls, fields)
    if direct and fields:
        body.append("__abiscan_dict__=self.__dict__")
    for f in fields:
        value, default = f.name, ""
        if f.init:
            scope[f"_type_{f.name}"] = f.type
        elif f.default_factory is dataclasses.MISSING:
            continue  # as dataclass: the class attribute holds the default, if any
        if not f.init:  # as dataclass: the factory's value
            scope[f"__dataclass_dflt_{f.name}__"] = f.default_factory
            value = f"__dataclass_dflt_{f.name}__()"
        elif f.default_factory is not dataclasses.MISSING:
            scope[f"__dataclass_dflt_{f.name}__"] = f.default_factory
            value = (f"__dataclass_dflt_{f.name}__() if {f.name} is "
                     f"__dataclass_HAS_DEFAULT_FACTORY__ else {f.name}")
            default = "=__dataclass_HAS_DEFAULT_FACTORY__"
        elif f.default is not dataclasses.MISSING:
            scope[f"__dataclass_dflt_{f.name}__"] = f.default
            default = f"=__dataclass_dflt_{f.name}__"
        if f.init:
            params.append(f"{f.name}:_type_{f.name}{default}")
        if direct:
            body.append(f"__abiscan_dict__[{f.name!r}]={value}")
        elif frozen:
            body.append(f"__dataclass_builtins_object__.__setattr__(self,{f.name!r},{value})")
        else:
            body.append(f"self.{f.name}={value}")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    text = (f"def __create_fn__({', '.join(scope)}):\n"
            f" def __init__({','.join(params)})->_return_type:\n"
            + "".join(f"  {line}\n" for line in body or ["pass"]) + " return __init__\n")
    _SOURCES[cls] = text
    module = sys.modules.get(cls.__module__)
    ahead = _AHEAD.get(text)
    if ahead is not None:  # the same text, compiled with the package
        made: Callable[..., None] = FunctionType(ahead.__code__, module.__dict__ if module else {})(
            **scope
        )
        return made

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        made: dict[str, Any] = {}
        exec(_code(text), module.__dict__ if module else {}, made)
        method = made["__create_fn__"](**scope)
        _attach(cls, method)
        method(self, *args, **kwargs)

    __init__.__signature__ = _signature(fields)  # type: ignore[attr-defined]
    return __init__


def _stored_in_dict(cls: type, fields: tuple[dataclasses.Field[Any], ...]) -> bool:
    """Whether ``object.__setattr__`` puts each field of ``cls`` in the instance's
    ``__dict__``: no class of its MRO has ``__slots__``, and none holds a data
    descriptor under a field's name (a default is a plain class attribute)."""
    held: dict[str, Any] = {}  # what each name resolves to on the class (object's aside)
    for base in reversed(cls.__mro__[:-1]):
        held.update(vars(base))
    if "__slots__" in held:
        return False
    kinds = {type(held.get(f.name)) for f in fields}
    return not any(hasattr(kind, "__set__") or hasattr(kind, "__delete__") for kind in kinds)


def _signature(fields: tuple[dataclasses.Field[Any], ...]) -> Signature:
    """The signature of the ``__init__`` compiled on first use, shown before it is."""
    from inspect import Parameter, Signature  # only for a record _AHEAD lacks

    shown = [Parameter("self", Parameter.POSITIONAL_OR_KEYWORD)]
    for f in (f for f in fields if f.init):
        default: Any = Parameter.empty
        if f.default_factory is not dataclasses.MISSING:
            default = _FACTORY
        elif f.default is not dataclasses.MISSING:
            default = f.default
        shown.append(Parameter(f.name, Parameter.POSITIONAL_OR_KEYWORD, annotation=f.type,
                               default=default))
    return Signature(shown, return_annotation=None)


def _frozen(cls: type, fields: tuple[dataclasses.Field[Any], ...]) -> list[Callable[..., None]]:
    """The frozen ``__setattr__`` and ``__delattr__`` ``dataclass`` writes, as closures
    (they run only to refuse a change, or to set a subclass's own attribute)."""
    names = tuple(f.name for f in fields)
    owner: type = cls

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is owner or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        super(owner, self).__setattr__(name, value)  # type: ignore[arg-type]

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is owner or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
        super(owner, self).__delattr__(name)  # type: ignore[arg-type]

    return [__setattr__, __delattr__]


def _first_eq(cls: type, names: list[str]) -> Callable[[Any, Any], Any]:
    # Equality and hashing are hot on a large layer (records in sets and dict keys):
    # the method compiled once, as dataclass writes it, runs faster than any shared
    # one, and a class never compared never compiles it.
    def __eq__(self: Any, other: Any) -> Any:
        if sys.version_info >= (3, 13):  # field by field, after an identity test
            same = " and ".join(f"self.{n}==other.{n}" for n in names) or "True"
            text = (f"def __eq__(self, other):\n if self is other:\n  return True\n"
                    f" if other.__class__ is self.__class__:\n  return {same}\n"
                    f" return NotImplemented\n")
        else:  # the tuples of the fields
            mine = "".join(f"self.{n}," for n in names)
            theirs = "".join(f"other.{n}," for n in names)
            text = (f"def __eq__(self, other):\n if other.__class__ is self.__class__:\n"
                    f"  return ({mine}) == ({theirs})\n return NotImplemented\n")
        return _compiled(cls, text)(self, other)

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

