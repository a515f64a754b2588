"""The symbols an ELF object makes the dynamic linker look up, in the order it looks them up.

An undefined symbol in ``.dynsym`` only matters when a relocation refers to
it: glibc resolves symbols while it processes relocations, and a symbol no
relocation names is never looked up (an object with undefined symbols but no
relocations loads). glibc's ``_dl_relocate_object`` walks the ``DT_RELA``
(or ``DT_REL``) table and then the ``DT_JMPREL`` (PLT) table, each in file
order; with ``RTLD_NOW``, which CPython uses for extension modules, the PLT
entries are bound at load time too. The first symbol that resolves nowhere
ends the ``dlopen`` with ``<object>: undefined symbol: <name>``, so the order
here is the order in which glibc would report them. (Checked on glibc 2.36:
a data reference in ``.rela.dyn`` is reported before a function called
through the PLT, whatever the order of ``.dynsym``.)

The tables are found through the dynamic tags and the program headers, as
the dynamic linker finds them, and decoded in bulk
(:func:`abiscan.elf.tables.relocation_references`); inside a scan use
:attr:`abiscan.elf.reader.ElfFacts.references`, decoded once per object. A
damaged file raises :class:`abiscan.elf.reader.ElfError`.
"""

from __future__ import annotations

from abiscan.elf.reader import read_facts
from abiscan.elf.tables import SymbolRef

__all__ = ["SymbolRef", "symbol_references"]


def symbol_references(data: bytes) -> tuple[SymbolRef, ...]:
    """Undefined, non-local symbols named by relocations, first reference first, each once."""
    return read_facts(data).references
