"""Facts read from the stack's bytes, each file at most once: bytes and ELF facts."""

from __future__ import annotations

from dataclasses import dataclass, field

from abiscan.elf.reader import ElfError, ElfFacts, read_facts, sniff_format
from abiscan.inputs.sources import InputProblem, SourceError
from abiscan.inputs.stack import Stack
from abiscan.progress import count

__all__ = [
    "FileFacts",
]


@dataclass
class FileFacts:
    """Facts read from the stack's bytes, each file at most once."""

    stack: Stack
    problems: list[InputProblem] = field(default_factory=list)
    _elf: dict[str, ElfFacts | ElfError | SourceError] = field(default_factory=dict)

    def read(self, path: str) -> bytes | SourceError:
        try:
            return self.stack.read(path)
        except SourceError as exc:
            self._unreadable(path, exc)
            return exc

    def _unreadable(self, path: str, exc: SourceError) -> None:
        """A member that cannot be read is an input problem, named once."""
        sf = self.stack.file(path)
        if sf is None:
            return
        problem = InputProblem(
            source=sf.origin.source, path=sf.origin.source_path, problem=exc.reason
        )
        if problem not in self.problems:
            self.problems.append(problem)

    def elf(self, path: str) -> ElfFacts | ElfError | SourceError:
        cached = self._elf.get(path)
        if cached is None:
            data = self.read(path)
            if isinstance(data, SourceError):
                cached = data
            else:
                count("elf")
                try:
                    cached = read_facts(data)
                except ElfError as exc:
                    cached = exc
            self._elf[path] = cached
        return cached

    def is_extension(self, path: str) -> bool:
        """Whether an untagged ``.so`` is meant as an extension module.

        An ELF object exporting no ``PyInit_`` function is a shared library that
        happens to sit on the path (``libfoo.so`` next to a package); anything
        that is not ELF, or exports one, is treated as a module.
        """
        data = self.read(path)
        if isinstance(data, SourceError):
            return True
        if sniff_format(data) != "elf":
            return True
        facts = self.elf(path)
        if isinstance(facts, (ElfError, SourceError)):
            return True
        try:
            return bool(facts.pyinit_names)
        except ElfError:
            return True
