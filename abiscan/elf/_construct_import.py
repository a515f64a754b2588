"""pyelftools' ``construct`` imported without its debugger's modules.

``elftools.construct.debug`` (imported by every ELF parser of pyelftools) imports
``pdb`` and ``traceback`` at the top for two debugging constructs, ``Probe`` and
``Debugger``, that no ELF structure uses. ``pdb`` brings ``cmd``, ``bdb``,
``code``, ``glob``, ``signal`` and ``textwrap`` with it: 17 M instructions of a
one-``.so`` scan's start-up (docs/benchmarks.md, *Session 14*). While that one
module is imported, each of the two names not imported yet stands for a module
imported on its first attribute; the stand-ins leave ``sys.modules`` before the
import returns, so every other ``import pdb`` gets the real module.
"""

from __future__ import annotations

import importlib
import sys
import types

__all__ = ["import_construct"]

_DEBUG_ONLY = ("pdb", "traceback")


class _OnFirstUse(types.ModuleType):
    """Stands for a module until an attribute of it is read, then gives the real one's."""

    def __getattr__(self, attr: str) -> object:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]  # read while still standing in: load the real one
        return getattr(importlib.import_module(self.__name__), attr)


def import_construct() -> None:
    """Import ``elftools.construct`` (once; later calls find it in ``sys.modules``)."""
    if "elftools.construct.debug" in sys.modules:
        return
    standing = {name: _OnFirstUse(name) for name in _DEBUG_ONLY if name not in sys.modules}
    sys.modules.update(standing)
    try:
        import elftools.construct.debug  # noqa: F401
    finally:
        for name, module in standing.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
