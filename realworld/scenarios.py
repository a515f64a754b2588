"""The stacks the suite builds: which layers, built for which CPython and platform, scanned
and imported on which runtime, and whether this host can produce the ground truth."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from realworld.layers import Layout

__all__ = ["Category", "LayerSpec", "Scenario", "scenarios"]

Category = Literal["clean", "minor", "invisible", "arch", "musl", "glibc", "overlay"]
Variant = Literal["x86_64", "aarch64", "glibc228", "musl"]

DESCRIPTIONS: dict[str, str] = {
    "clean": "layer built for the runtime's CPython, x86_64, manylinux up to its glibc; "
             "`python/` on 3.8, 3.10, 3.12 and `python/lib/python3.X/site-packages/` "
             "on 3.9, 3.11, 3.13",
    "minor": "layer built for another minor version (3.11 on 3.12, 3.12 on 3.11, "
             "3.9 on 3.13), in `python/`",
    "invisible": "layer built for 3.11 in `python/lib/python3.11/site-packages/`, "
                 "attached to 3.12 (Lambda never looks there)",
    "arch": "layer built for aarch64 (arm64), attached to an x86_64 function (3.12, 3.9)",
    "musl": "musllinux wheels (Alpine builds) where published, on the glibc runtime "
            "(3.12)",
    "glibc": "manylinux_2_27/2_28 wheels where published, on the glibc 2.26 runtime "
             "(3.11): no ground truth on this host (glibc 2.36)",
    "overlay": "two layers of the same stack: built for 3.12, then one built for 3.8 "
               "(older releases) unpacked over it, on 3.12",
}
MISMATCHED: tuple[Category, ...] = ("minor", "invisible", "arch", "musl", "overlay")


@dataclass(frozen=True)
class LayerSpec:
    stack: str
    python: str  # the CPython the wheels are chosen for
    variant: Variant = "x86_64"
    layout: Layout = "python"


@dataclass(frozen=True)
class Scenario:
    category: Category
    python: str  # the runtime scanned and imported on
    layers: tuple[LayerSpec, ...]
    truth: bool = True  # False: this host cannot say what the runtime would do

    @property
    def id(self) -> str:
        first = self.layers[0]
        built = "+".join(f"{la.python}{'' if la.variant == 'x86_64' else '-' + la.variant}"
                         for la in self.layers)
        return f"{self.category}/{first.stack}/built-{built}/on-{self.python}"


def _has_variant(manifest: Mapping[str, Any], stack: str, python: str, variant: str) -> bool:
    roots = manifest["stacks"][stack]
    return any(variant in manifest["projects"].get(r, {}).get("pins", {}).get(python, {})
               for r in roots)


def _clean(stacks: Sequence[str], py: str) -> list[Scenario]:
    layout: Layout = "python" if int(py.split(".")[1]) % 2 == 0 else "site-packages"
    return [Scenario(category="clean", python=py,
                     layers=(LayerSpec(stack=s, python=py, layout=layout),)) for s in stacks]


def _minor(stacks: Sequence[str], built: str, on: str) -> list[Scenario]:
    return [Scenario(category="minor", python=on, layers=(LayerSpec(stack=s, python=built),))
            for s in stacks]


def _arch(stacks: Sequence[str], py: str) -> list[Scenario]:
    return [Scenario(category="arch", python=py,
                     layers=(LayerSpec(stack=s, python=py, variant="aarch64"),)) for s in stacks]


def _mismatched(manifest: Mapping[str, Any], stacks: Sequence[str]) -> list[Scenario]:
    out = [*_minor(stacks, "3.11", "3.12"), *_arch(stacks, "3.12")]
    out += [Scenario(category="musl", python="3.12",
                     layers=(LayerSpec(stack=s, python="3.12", variant="musl"),))
            for s in stacks if _has_variant(manifest, s, "3.12", "musl")]
    out += [Scenario(category="overlay", python="3.12",
                     layers=(LayerSpec(stack=s, python="3.12"), LayerSpec(stack=s, python="3.8")))
            for s in stacks]
    out += [Scenario(category="invisible", python="3.12",
                     layers=(LayerSpec(stack=s, python="3.11", layout="site-packages"),))
            for s in stacks]
    out += [Scenario(category="glibc", python="3.11", truth=False,
                     layers=(LayerSpec(stack=s, python="3.11", variant="glibc228"),))
            for s in stacks if _has_variant(manifest, s, "3.11", "glibc228")]
    return out


def scenarios(manifest: Mapping[str, Any], quick: bool = False) -> list[Scenario]:
    """Every scenario of the suite, most telling and cheapest first: a run with a time
    budget stops early, and the next run continues from the cached truth. The big data
    stack (scipy, scikit-learn, pyarrow, matplotlib: slow imports) comes after the others
    in each round. ``quick``: two stacks."""
    stacks: Sequence[str] = list(manifest["stacks"])
    if quick:
        stacks = ["numpy-pandas", "crypto"]
        return [*_clean(stacks, "3.12"), *_clean(stacks, "3.9"),
                *_minor(stacks, "3.11", "3.12"), *_arch(stacks, "3.12")]
    light = [s for s in stacks if s != "data"]
    heavy = [s for s in stacks if s == "data"]
    # The stacks whose modules are few or fail fast first, so every category is covered.
    small = [s for s in ("crypto", "numpy-pandas", "aws") if s in stacks]
    rest = [s for s in light if s not in small]
    out = [*_clean(light, "3.12"), *_mismatched(manifest, small), *_mismatched(manifest, rest)]
    out += [*_clean(light, "3.9"), *_clean(heavy, "3.12"), *_mismatched(manifest, heavy)]
    for py in ("3.8", "3.13", "3.11", "3.10"):
        out += _clean(light, py)
    out += [*_clean(heavy, "3.9")]
    for py in ("3.8", "3.13", "3.11", "3.10"):
        out += _clean(heavy, py)
    out += [*_minor(stacks, "3.12", "3.11"), *_minor(stacks, "3.9", "3.13"), *_arch(stacks, "3.9")]
    return out
