"""Import a module without the modules it imports at its top but rarely uses.

Three modules abiscan needs at start-up import others at their top for a few
functions a scan seldom or never calls: ``dataclasses`` imports ``inspect`` (which
brings ``dis``, ``linecache`` and ``tokenize``) to write the docstring of a class
that has none, ``urllib.parse`` imports ``ipaddress`` to check a URL's bracketed
host, and pyelftools' ``elftools.construct.debug`` imports ``inspect``, ``pdb`` and
``traceback`` for two debugging constructs no ELF structure uses. Together they
were a seventh of what a one-``.so`` scan adds to the interpreter's start-up
(docs/benchmarks.md, *Session 14* and *Session 15*).

While such a module is imported, each deferred name not imported yet stands for a
module imported on its first attribute. The stand-ins leave ``sys.modules`` before
the import returns, so every other ``import inspect`` gets the real module, and a
module imported earlier is used as it is. ``LazyLoader`` cannot do this: the
``import`` statement reads the module's ``__spec__``, which loads it; a stand-in's
``__spec__`` is an attribute of its own.
"""

from __future__ import annotations

import importlib
import sys
import types

__all__ = ["defer_rare_imports", "import_deferring"]


class _OnFirstUse(types.ModuleType):
    """Stands for a module until an attribute of it is read, then gives the real one's."""

    def __getattr__(self, attr: str) -> object:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]  # read while still standing in: load the real one
        return getattr(importlib.import_module(self.__name__), attr)


def import_deferring(module: str, deferred: tuple[str, ...]) -> types.ModuleType:
    """``module``, imported (once) while the modules ``deferred`` not imported yet
    stand in for themselves until first used."""
    if module in sys.modules:
        return sys.modules[module]
    standing = {name: _OnFirstUse(name) for name in deferred if name not in sys.modules}
    sys.modules.update(standing)
    try:
        return importlib.import_module(module)
    finally:
        for name, stand_in in standing.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]


def defer_rare_imports() -> None:
    """Import, before abiscan's pipeline does, the standard modules that import others
    only for what a scan never uses:

    - ``dataclasses`` (every record is one) imports ``inspect``, and with it ``dis``,
      ``linecache`` and ``tokenize``, only to write the docstring of a class without
      one (every record has one) and, from CPython 3.12, to read a class's
      annotations (then ``inspect`` is loaded by the first record);
    - ``urllib.parse`` (imported by ``pathlib`` for ``Path.as_uri``) imports
      ``ipaddress`` only to check a URL's bracketed host.

    Called where the pipeline is first needed (a command of the CLI, a name of the
    API), not when ``abiscan`` is imported: ``abiscan --help`` imports neither.
    """
    import_deferring("dataclasses", ("inspect",))
    import_deferring("urllib.parse", ("ipaddress",))
