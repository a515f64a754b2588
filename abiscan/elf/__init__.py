"""ELF facts: the model abiscan reads binaries through.

- :mod:`abiscan.elf.reader`: :class:`ElfFacts` and :func:`read_facts`, what the
  rest of abiscan uses (each fact decoded once per object, on first use);
- :mod:`abiscan.elf.model`: pyelftools' parsers over the bytes, the one
  boundary where its exceptions become :class:`ElfError`;
- :mod:`abiscan.elf.tables`: the symbol, hash and relocation tables, decoded
  in bulk from the locations the model gives;
- :mod:`abiscan.elf.references`: the relocations' symbols in glibc's order;
- :mod:`abiscan.elf.header`: the raw header, read as glibc's identity checks
  read it;
- :mod:`abiscan.elf.constants`: the ELF numbers, from pyelftools' enums.
"""

from abiscan._deferred_imports import import_deferring

# Before any module of this package imports pyelftools: construct's debugging
# constructs import inspect, pdb and traceback, which no ELF parser uses.
import_deferring("elftools.construct.debug", ("inspect", "pdb", "traceback"))
