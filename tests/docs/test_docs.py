"""The docs keep up with the code: a page per finding code, and the README's commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from abiscan.report.findings import CodeInfo, registered_codes

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

# A markdown heading whose text is "Fix" (any level), e.g. "## Fix".
_FIX_HEADING = re.compile(r"^#{1,6}[ \t]+Fix[ \t]*$", re.MULTILINE)


def _readme_commands() -> list[str]:
    """The commands under the README's "Two commands" heading (one per ```sh block)."""
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL)]


@pytest.mark.parametrize("info", registered_codes(), ids=lambda info: info.code)
def test_every_registered_code_has_a_page(info: CodeInfo) -> None:
    page = DOCS / "findings" / f"{info.code}.md"
    assert page.is_file(), f"{info.code} is registered but {page} does not exist"
    text = page.read_text("utf-8")
    assert info.name in text, f"{page} does not mention the code's name {info.name!r}"
    assert _FIX_HEADING.search(text), f"{page} has no 'Fix' heading"


def test_findings_index_lists_every_registered_code() -> None:
    index = (DOCS / "findings" / "index.md").read_text("utf-8")
    missing = [info.code for info in registered_codes() if f"({info.code}.md)" not in index]
    assert not missing, f"docs/findings/index.md does not link {missing}"


def test_readme_commands_appear_in_the_quickstart_or_readme() -> None:
    commands = _readme_commands()
    assert len(commands) == 2, f"expected the README's two commands, found {commands}"
    readme = (ROOT / "README.md").read_text("utf-8")
    quickstart = (DOCS / "quickstart.md").read_text("utf-8")
    for command in commands:
        assert command in quickstart or command in readme, command
    assert "abiscan demo" in commands[0]
    assert "pytest" in commands[1]
