"""Imports made from native code: which strings count as edges, and the bounded scan."""

from __future__ import annotations

import random
import string

from abiscan.elf.reader import read_facts
from abiscan.simulate.python.native_imports import MAX_PROBES, native_imports
from abiscan.testing.elf_writer import build_shared_object


def _so(rodata: bytes, undefined: tuple[str, ...] = ("PyImport_ImportModule",)) -> bytes:
    return build_shared_object(exports=["PyInit_m"], undefined=list(undefined),
                               rodata=b"\x00" + rodata + b"\x00")


def _facts(data: bytes, stack: set[str], module: str = "pkg.m") -> list[tuple[str, str, bool]]:
    got = native_imports(module, "/opt/python/pkg/m.so", data, read_facts(data),
                         lambda n: n in stack)
    return [(i.imports, i.confidence, i.at_init) for i in got.imports]


def test_cffi_backend_is_certain_at_init() -> None:
    data = _so(b"_cffi_backend\x00_init_cffi_1_0_external_module")
    assert _facts(data, {"_cffi_backend"}) == [("_cffi_backend", "certain", True)]


def test_cython_names_are_possible_only() -> None:
    """lxml.etree carries lxml.cssselect, which it imports from a function: not an edge."""
    data = _so(b"cython_runtime\x00lxml.cssselect\x00lxml")
    facts = native_imports("lxml.etree", "/x/etree.so", data, read_facts(data),
                           lambda n: n in ("lxml", "lxml.cssselect"))
    assert facts.kinds == ("cython",)
    assert {(i.imports, i.confidence, i.at_init) for i in facts.imports} == {
        ("lxml", "possible", False), ("lxml.cssselect", "possible", False)}


def test_plain_c_names_are_possible_only() -> None:
    data = _so(b"okdep")
    assert _facts(data, {"okdep"}) == [("okdep", "possible", False)]
    assert _facts(_so(b"okdep", undefined=()), {"okdep"}) == []  # no import call at all


def test_pyo3_rust_strings_cut_at_the_module() -> None:
    data = _so(b"pyo3_runtime.PanicException\x00API call failedcryptography.hazmat.bindings"
               b"._rust.opensslInvalid key")
    stack = {"cryptography", "cryptography.hazmat", "cryptography.hazmat.bindings",
             "cryptography.hazmat.bindings._rust", "cryptography.hazmat.bindings._rust.openssl"}
    assert _facts(data, stack, "cryptography.hazmat.bindings._rust") == [
        ("cryptography.hazmat.bindings._rust.openssl", "possible", False)]


def test_many_long_dotted_strings_cost_a_bounded_number_of_lookups() -> None:
    """Issue 11 shape 5: 8,000 random 200-character ``pkg.`` strings in a pyo3 binary."""
    rnd = random.Random(5)

    def dotted() -> bytes:
        out = "pkg"
        while len(out) < 200:
            out += "." + rnd.choice(string.ascii_lowercase) + "".join(
                rnd.choice(string.ascii_letters + "_") for _ in range(rnd.randint(3, 40)))
        return out[:200].encode()

    data = _so(b"pyo3_runtime.PanicException\x00" + b"\x00".join(
        dotted() for _ in range(8000)))
    asked: list[str] = []

    def exists(name: str) -> bool:
        asked.append(name)
        return name == "pkg"

    facts = native_imports("pkg._rs", "/x/_rs.so", data, read_facts(data), exists)
    assert facts.imports == ()
    assert len(asked) <= MAX_PROBES
    assert len(asked) == len(set(asked))  # each name is looked up once


def test_strings_are_exactly_the_nul_delimited_names_in_order() -> None:
    """The scan of .rodata finds every NUL-delimited string that is a dotted name
    (for imports) or a short identifier (for registered submodules), and nothing
    else, in the order they first appear: next to each other, at either end, with
    dots, digits and underscores in every place."""
    import re

    rnd = random.Random(10)
    pieces = [
        "".join(rnd.choice("ab_.1Z") for _ in range(rnd.randint(0, 9))) for _ in range(400)
    ] + ["x" * 64, "y" * 65, "pkg.mod", ".lead", "trail.", "a..b", "9z"]
    rnd.shuffle(pieces)
    data = _so("\x00".join(pieces).encode(),
               undefined=("PyImport_ImportModule", "PyImport_AddModule"))
    asked: list[str] = []

    def exists(name: str) -> bool:
        asked.append(name)
        return False

    facts = native_imports("m", "/x/m.so", data, read_facts(data), exists)
    dotted = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
    expected = [p for p in dict.fromkeys(pieces) if dotted.fullmatch(p) and p != "m"]
    assert asked == expected
    assert "pkg.mod" in asked and "x" * 64 in asked and ".lead" not in asked
    ident = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
    assert facts.registers == {p for p in pieces if ident.fullmatch(p)}
    assert "x" * 64 in facts.registers and "y" * 65 not in facts.registers
