"""``record`` behaves as ``dataclass(frozen=True)``, and ``mutable_record`` as
``dataclass()``: the same class built by each, from the same body, compared on the
same values."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import threading
from types import CodeType
from typing import Any, ClassVar

import pytest

from abiscan.records import mutable_record, record

# Bodies exercising what decides the generated methods: field flags, defaults,
# methods the body defines, inheritance. Each is built twice, once per decorator.
_BODIES = {
    "plain": "class C:\n    'doc'\n    a: int\n    b: str = 'x'\n    c: tuple = ()\n",
    "empty": "class C:\n    'doc'\n",
    "one": "class C:\n    'doc'\n    a: object\n",
    "flags": ("class C:\n    'doc'\n    a: int\n    b: int = field(compare=False)\n"
              "    c: int = field(repr=False, default=0)\n"
              "    d: int = field(hash=False, default=0)\n"
              "    e: int = field(compare=False, hash=True, default=0)\n"
              "    f: list = field(default_factory=list, compare=False, hash=False)\n"),
    "own_eq": ("class C:\n    'doc'\n    a: int\n    b: int = 0\n"
               "    def __eq__(self, other):\n        return 'own'\n"),
    "own_hash": ("class C:\n    'doc'\n    a: int\n    def __hash__(self):\n        return 7\n"),
    "own_eq_and_hash": ("class C:\n    'doc'\n    a: int\n"
                        "    def __eq__(self, other):\n        return 1\n"
                        "    def __hash__(self):\n        return 8\n"),
    "own_repr": "class C:\n    'doc'\n    a: int\n    def __repr__(self):\n        return 'mine'\n",
    "classvar": "class C:\n    'doc'\n    a: int\n    K: ClassVar[int] = 3\n",
    "post_init": ("class C:\n    'doc'\n    a: int\n    b: list = field(default_factory=list)\n"
                  "    def __post_init__(self):\n        self.b.append(self.a)\n"),
    "init_false": ("class C:\n    'doc'\n    a: int\n"
                   "    b: dict = field(default_factory=dict, init=False, compare=False)\n"),
    "undocumented": "class C:\n    a: int\n    b: str = 'x'\n",
    # dataclass looks a string annotation's leading name up in the class's module:
    # an alias of ClassVar there makes a pseudo-field as ClassVar itself does.
    "classvar_alias": "class C:\n    'doc'\n    a: int\n    K: ClassVarAlias[int] = 3\n",
    # A frozen record stores its fields in its __dict__ itself, unless a slot or a data
    # descriptor would take them from object.__setattr__.
    "slots": "class C:\n    'doc'\n    __slots__ = ('a', 'b')\n    a: int\n    b: int\n",
    "descriptor": "class C:\n    'doc'\n    a: int = Doubled()\n    b: int = 0\n",
}

ClassVarAlias: Any = ClassVar


class Doubled:
    """A data descriptor that stores twice what is set."""

    def __get__(self, obj: object, owner: type | None = None) -> object:
        return 1 if obj is None else obj.__dict__.get("_doubled", 1)

    def __set__(self, obj: object, value: int) -> None:
        obj.__dict__["_doubled"] = value * 2


def _build(body: str, decorate: Any) -> type:
    scope: dict[str, Any] = {"field": dataclasses.field, "ClassVar": ClassVar, "__name__": __name__,
                             "Doubled": Doubled}
    exec(body, scope)
    return decorate(scope["C"])  # type: ignore[no-any-return]


def _twins(name: str) -> tuple[type, type]:
    return (_build(_BODIES[name], dataclasses.dataclass(frozen=True)),
            _build(_BODIES[name], record))


def _outcome(call: Any) -> object:
    try:
        return ("ok", call())
    except Exception as exc:  # the same exception and message, for both classes
        return ("raises", type(exc), str(exc))


def _described(cls: type) -> list[object]:
    init = cls.__init__  # type: ignore[misc]
    return [str(inspect.signature(cls)), str(inspect.signature(init)), cls.__doc__,
            repr(cls.__dataclass_params__), getattr(cls, "__match_args__", None),
            init.__qualname__]


def _behaviour(cls: type, args: list[tuple[Any, ...]]) -> list[object]:
    seen: list[object] = _described(cls)
    seen += [_outcome(lambda: repr(cls())), _outcome(lambda: cls(1, 2, 3, 4, 5, 6, 7, 8)),
             _outcome(lambda: cls(1, zz=2))]
    objs = [cls(*a) for a in copy.deepcopy(args)]
    seen += _described(cls)
    # The factory's stand-in is abiscan's own object, printed as dataclass's.
    seen += [repr(cls.__init__.__defaults__), cls.__init__.__annotations__]  # type: ignore[misc]
    seen += [repr(o) for o in objs]
    for x in objs:
        seen.append(_outcome(lambda x=x: hash(x)))
        for y in objs:
            seen.append((x == y, x != y, x.__eq__(y), x.__eq__(object())))
        # On a copy: a mutable record's change must not reach the comparisons.
        seen.append(_outcome(lambda x=x: setattr(copy.copy(x), "a", 0)))
        seen.append(_outcome(lambda x=x: delattr(copy.copy(x), "a")))
        seen.append(_outcome(lambda x=x: dataclasses.replace(x) == x))
        seen.append(_outcome(lambda x=x: copy.deepcopy(x) == x))
    seen.append([(f.name, f.type, repr(f)) for f in dataclasses.fields(cls)])
    seen.append((cls.__annotations__, list(cls.__dataclass_fields__)))
    seen.append((cls.__match_args__, cls.__dataclass_params__.frozen))
    seen.append(_outcome(lambda: len({*objs, *map(copy.copy, objs)})))
    return seen


_ARGS: dict[str, list[tuple[Any, ...]]] = {
    "plain": [(1,), (1, "x"), (2, "y", (1,)), (1, "x", ("z",))],
    "empty": [(), ()],
    "one": [(1,), (1.0,), (math.nan,), ("s",), ([1],)],
    "flags": [(1, 2), (1, 3), (1, 2, 5), (1, 2, 0, 9), (1, 2, 0, 0, 4), (2, 2, 0, 0, 0, [1])],
    "own_eq": [(1,), (1, 2)],
    "own_hash": [(1,), (2,)],
    "own_eq_and_hash": [(1,), (2,)],
    "own_repr": [(1,), (2,)],
    "classvar": [(1,), (2,)],
    "post_init": [(1,), (2, [5])],
    "init_false": [(1,), (2,)],
    "undocumented": [(1,), (1, "y")],
    "classvar_alias": [(1,), (2,)],
    "slots": [(1, 2), (1, 3)],
    "descriptor": [(), (3,), (4, 5)],
}


@pytest.mark.parametrize("name", sorted(_BODIES))
def test_a_record_compares_hashes_and_prints_as_a_frozen_dataclass(name: str) -> None:
    standard, ours = _twins(name)
    assert _behaviour(ours, _ARGS[name]) == _behaviour(standard, _ARGS[name])


@pytest.mark.parametrize("name", sorted(_BODIES))
def test_a_mutable_record_compares_and_prints_as_a_dataclass(name: str) -> None:
    standard = _build(_BODIES[name], dataclasses.dataclass)
    ours = _build(_BODIES[name], mutable_record)
    assert _behaviour(ours, _ARGS[name]) == _behaviour(standard, _ARGS[name])


def test_a_mutable_record_compiles_its_methods_on_first_use() -> None:
    cls = _build(_BODIES["post_init"], mutable_record)
    first = {n: cls.__dict__[n] for n in ("__init__", "__eq__")}
    assert str(inspect.signature(cls)) == "(a: 'int', b: 'list' = <factory>) -> None"
    x = cls(1)
    assert x == cls(1) and x.b == [1] and x.__hash__ is None
    x.a = 2  # not frozen
    assert x != cls(1) and x.a == 2
    assert all(cls.__dict__[n] is not first[n] for n in first)
    assert cls.__init__.__code__.co_filename == "<string>"


def test_a_record_subclass_and_a_nan_field_as_a_frozen_dataclass() -> None:
    # A decorated subclass compares its own fields; an undecorated one inherits.
    results = []
    for decorate in (dataclasses.dataclass(frozen=True), record):
        base = _build("class C:\n    a: float\n", decorate)
        sub = decorate(type("Sub", (base,), {"__annotations__": {"b": "int"}, "b": 0,
                                             "__module__": __name__}))
        plain = type("Plain", (base,), {"__module__": __name__})
        nan = math.nan
        results.append([
            sub(1.0, 2) == sub(1.0, 2), sub(1.0, 2) == sub(1.0, 3), sub(1.0) == base(1.0),
            base(1.0) == sub(1.0), plain(1.0) == plain(1.0), plain(1.0) == base(1.0),
            base(nan) == base(nan), hash(base(nan)) == hash(base(nan)) or None,
            repr(sub(1.0, 2)), repr(plain(2.0)), hash(sub(1.0, 2)) == hash((1.0, 2)),
        ])
    assert results[0] == results[1]


def test_a_record_prints_a_cycle_as_dots_in_each_thread() -> None:
    for decorate in (dataclasses.dataclass(frozen=True), record):
        cls = _build("class C:\n    a: list\n", decorate)
        inner: list[Any] = []
        c = cls(inner)
        inner.append(c)
        got: list[str] = []
        thread = threading.Thread(target=lambda c=c, got=got: got.append(repr(c)))
        thread.start()
        thread.join()
        assert (repr(c), got) == ("C(a=[...])", ["C(a=[...])"])


def test_methods_are_compiled_on_first_use_and_then_the_class_own() -> None:
    cls = _build(_BODIES["plain"], record)
    first = {n: cls.__dict__[n] for n in ("__init__", "__eq__", "__hash__")}
    assert str(inspect.signature(cls)) == "(a: 'int', b: 'str' = 'x', c: 'tuple' = ()) -> None"
    assert cls(1) == cls(1) and hash(cls(1)) == hash((1, "x", ()))
    assert all(cls.__dict__[n] is not first[n] for n in first)
    assert cls.__eq__.__qualname__ == "C.__eq__" and cls.__eq__.__module__ == __name__
    assert first["__eq__"](cls(1), cls(2)) is False  # a kept reference still answers
    # Without a docstring (dataclass writes one from the signature) the class is
    # made as dataclass makes it, its __init__ at once.
    plain = _build(_BODIES["undocumented"], record)
    assert plain.__doc__ == "C(a: 'int', b: 'str' = 'x')"
    assert plain.__init__.__code__.co_filename == "<string>"  # not records.py's first-use one


def _same_code(a: CodeType, b: CodeType) -> bool:
    """The same code, wherever it was compiled (file and line numbers aside)."""
    def key(c: CodeType) -> tuple[object, ...]:
        return (c.co_code, c.co_names, c.co_varnames, c.co_freevars, c.co_cellvars,
                c.co_argcount, c.co_flags, getattr(c, "co_qualname", c.co_name),
                len(c.co_consts))

    return key(a) == key(b) and all(
        _same_code(x, y) if isinstance(x, CodeType) and isinstance(y, CodeType)
        else (type(x), x) == (type(y), y)
        for x, y in zip(a.co_consts, b.co_consts, strict=True)
    )


def test_the_inits_compiled_ahead_are_their_texts_and_current() -> None:
    """Each function of abiscan._record_inits is the text it is filed under, compiled;
    and the table holds the text of every record abiscan defines (else
    ``python tools/gen_record_inits.py`` writes it again)."""
    import subprocess
    import sys
    from pathlib import Path

    from abiscan._record_inits import INITS

    assert len(INITS) > 80
    for text, made in INITS.items():
        (code,) = [c for c in compile(text, "<string>", "exec", dont_inherit=True).co_consts
                   if isinstance(c, CodeType)]
        assert _same_code(code, made.__code__), text
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "tools/gen_record_inits.py", "--check"], cwd=root,
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr


def test_a_record_of_abiscan_gets_its_init_compiled_ahead() -> None:
    import abiscan.limits
    from abiscan.limits import Limits
    from abiscan.records import init_source

    init = Limits.__dict__["__init__"]
    assert init.__code__.co_filename.endswith("_record_inits.py")
    assert init.__globals__ is vars(abiscan.limits)  # as when compiled on first use
    assert init.__qualname__ == "Limits.__init__" and init.__module__ == "abiscan.limits"
    assert init_source(Limits) is not None
    # A record made elsewhere is compiled on first use, as before.
    cls = _build(_BODIES["plain"], record)
    assert cls.__dict__["__init__"].__code__.co_filename.endswith("records.py")
    assert init_source(cls) is not None and init_source(int) is None


def test_a_frozen_record_stores_its_fields_in_its_dict_unless_slots_or_descriptors() -> None:
    """A frozen record's ``__init__`` writes its instance's ``__dict__`` (half the time
    of ``object.__setattr__`` per field); with ``__slots__`` or a data descriptor under
    a field's name it calls ``object.__setattr__``, as ``dataclass`` does (the twins
    above show both behave as the frozen dataclass)."""
    from abiscan.records import init_source

    direct = "__abiscan_dict__=self.__dict__"
    plain = init_source(_build(_BODIES["plain"], record)) or ""
    assert direct in plain and "__setattr__" not in plain
    for name in ("slots", "descriptor"):
        text = init_source(_build(_BODIES[name], record)) or ""
        assert direct not in text and "__dataclass_builtins_object__.__setattr__" in text
    mutable = init_source(_build(_BODIES["plain"], mutable_record)) or ""
    assert direct not in mutable and "self.a=a" in mutable
