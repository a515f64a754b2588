"""Which module names the stack provides, and which of its directories the target never searches.

Names come from every directory on the target's ``sys.path`` (top-level
modules and packages, and every extension module by its dotted name) and from
"dead" directories: content placed where ``sys.path`` does not look, such as
``python/lib/python3.11/site-packages`` in a layer used from 3.12, or packages
at a layer zip's root.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable

from abiscan.inputs.stack import Stack
from abiscan.records import record
from abiscan.simulate.imports.extension_tags import (
    BYTECODE_SUFFIXES,
    IDENTIFIER,
    SOURCE_SUFFIXES,
    parse_extension_filename,
)
from abiscan.target.profiles import Target

__all__ = [
    "DeadRoot",
    "IsExtension",
    "ModuleCandidate",
    "candidates",
    "dead_roots",
]

_SITE_PACKAGES = re.compile(r"^lib(?:64)?/python(\d+\.\d+)/site-packages$")

# Directories at a layer's root that Lambda gives a meaning of their own.
_LAYER_ROOT_DIRS = frozenset(
    {"python", "lib", "lib64", "bin", "etc", "share", "include", "extensions"}
)


@record
class DeadRoot:
    """A directory with Python modules that the target's sys.path never searches."""

    path: str
    why: str


@record
class ModuleCandidate:
    """A module name the stack's files suggest, and where."""

    name: str
    root: str  # the directory it was found under (a sys.path entry or a dead root)
    path: str  # the file or directory that suggested the name
    visible: bool  # under a sys.path entry


# Decides whether an untagged ".so" is an extension module (True) or a plain shared library.
IsExtension = Callable[[str], bool]


def dead_roots(stack: Stack, target: Target) -> list[DeadRoot]:
    on_path = set(target.sys_path)
    out: list[DeadRoot] = []
    for base in (target.layer_root, target.function_root):
        for prefix in (posixpath.join(base, "python"), base):
            for lib in ("lib", "lib64"):
                lib_dir = posixpath.join(prefix, lib)
                if not stack.is_dir(lib_dir):
                    continue
                for ver in stack.listdir(lib_dir):
                    rel = f"{lib}/{ver}/site-packages"
                    m = _SITE_PACKAGES.match(rel)
                    full = posixpath.join(prefix, rel)
                    if m and full not in on_path and stack.is_dir(full):
                        out.append(
                            DeadRoot(path=full, why=_why_site_packages(full, m.group(1), target))
                        )
    # A profile may leave these off sys.path (Lambda drops /opt when PYTHONPATH is set).
    for base in (posixpath.join(target.layer_root, "python"), target.function_root):
        if base in on_path or not stack.is_dir(base):
            continue
        if any(_looks_like_module(stack, base, n) for n in stack.listdir(base)):
            out.append(DeadRoot(path=base, why=f"{base} is not on the target's sys.path"))
    layer_root = target.layer_root
    if stack.is_dir(layer_root) and layer_root not in on_path:
        stray = [
            n
            for n in stack.listdir(layer_root)
            if n not in _LAYER_ROOT_DIRS and _looks_like_module(stack, layer_root, n)
        ]
        if stray:
            out.append(
                DeadRoot(
                    path=layer_root,
                    why=f"{layer_root} itself is not on sys.path; a layer's Python code belongs "
                    f"under python/ (found at the zip's root: {', '.join(sorted(stray)[:5])})",
                )
            )
    return out


def _why_site_packages(path: str, version: str, target: Target) -> str:
    if version != target.python:
        return (
            f"{path} is for Python {version}; the target runs Python {target.python} "
            f"and searches {target.site_packages} instead"
        )
    return f"{path} is not on the target's sys.path"


def _looks_like_module(stack: Stack, directory: str, name: str) -> bool:
    full = posixpath.join(directory, name)
    if stack.is_dir(full):
        return IDENTIFIER.match(name) is not None and any(
            child.startswith("__init__.") for child in stack.listdir(full)
        )
    head, _, _ = name.partition(".")
    if IDENTIFIER.match(head) is None:
        return False
    if name == head + SOURCE_SUFFIXES[0]:
        return True
    # An untagged "libfoo.so" at a layer's root is a misplaced library, not a module.
    tag = parse_extension_filename(name)
    return tag is not None and tag.kind != "untagged"


def candidates(
    stack: Stack, target: Target, dead: list[DeadRoot], is_extension: IsExtension
) -> list[ModuleCandidate]:
    """Every module name the stack suggests, with where it was seen first."""
    roots = [(p, True) for p in target.sys_path if stack.is_dir(p)]
    roots += [(d.path, False) for d in dead]
    # Never walk into a directory that is itself a root (or holds one): its
    # modules are named from that root, not as a package of the outer one.
    avoid = {p for p, _ in roots} | {d.path for d in dead}
    seen: dict[str, ModuleCandidate] = {}
    for root, visible in roots:
        for name in stack.listdir(root):
            full = posixpath.join(root, name)
            if _holds_root(full, avoid):
                continue
            if (
                root == target.layer_root
                and not visible
                and (name in _LAYER_ROOT_DIRS or not _looks_like_module(stack, root, name))
            ):
                continue
            if stack.is_dir(full):
                if IDENTIFIER.match(name):
                    seen.setdefault(
                        name, ModuleCandidate(name=name, root=root, path=full, visible=visible)
                    )
                    _walk_package(stack, full, name, root, visible, avoid, is_extension, seen)
                continue
            mod = _module_of_file(name, full, is_extension)
            if mod is not None:
                seen.setdefault(
                    mod, ModuleCandidate(name=mod, root=root, path=full, visible=visible)
                )
    return list(seen.values())


def _holds_root(path: str, roots: set[str]) -> bool:
    prefix = path + "/"
    return any(r == path or r.startswith(prefix) for r in roots)


def _module_of_file(name: str, full: str, is_extension: IsExtension) -> str | None:
    head, _, _ = name.partition(".")
    if not IDENTIFIER.match(head) or head == "__init__":
        return None
    if name == head + SOURCE_SUFFIXES[0] or name == head + BYTECODE_SUFFIXES[0]:
        return head
    tag = parse_extension_filename(name)
    if tag is None:
        return None
    if tag.kind == "untagged" and not is_extension(full):
        return None
    return head


def _walk_package(
    stack: Stack,
    directory: str,
    dotted: str,
    root: str,
    visible: bool,
    avoid: set[str],
    is_extension: IsExtension,
    seen: dict[str, ModuleCandidate],
) -> None:
    """Record every extension module below a package directory by its dotted name."""
    for name in stack.listdir(directory):
        full = posixpath.join(directory, name)
        if _holds_root(full, avoid):
            continue
        if stack.is_dir(full):
            if IDENTIFIER.match(name) and name != "__pycache__":
                _walk_package(
                    stack, full, f"{dotted}.{name}", root, visible, avoid, is_extension, seen
                )
            continue
        tag = parse_extension_filename(name)
        if tag is None or tag.module == "__init__" or not IDENTIFIER.match(tag.module):
            continue
        if tag.kind == "untagged" and not is_extension(full):
            continue
        mod = f"{dotted}.{tag.module}"
        seen.setdefault(mod, ModuleCandidate(name=mod, root=root, path=full, visible=visible))
