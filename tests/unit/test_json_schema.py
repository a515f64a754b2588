"""The shipped JSON Schemas: valid schemas, documented, and strict enough to catch drift.

Every JSON output the rest of the suite produces is validated against them by
the autouse fixture in conftest.py; these tests check the schemas themselves.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

import abiscan
from abiscan.cli import main
from abiscan.report.json_schema import SCHEMA_NAMES, schema
from abiscan.target.profiles import builtin_targets

from helpers import write_zip
from schema_check import validate_output

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schemas_are_valid_and_shown_in_the_docs(name: str) -> None:
    doc = schema(name)
    jsonschema.Draft7Validator.check_schema(doc)
    assert doc["$id"] == f"urn:abiscan:schema:{'scan-report' if name == 'scan' else name}"
    assert f"{name}.schema.json" in (DOCS / "json.md").read_text()


def test_every_builtin_target_profile_validates() -> None:
    for target in builtin_targets():
        validate_output("target", json.loads(target.to_json()))


def test_a_drifted_report_is_caught(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "l.zip", {"python/pkg/__init__.py": ""})
    data = abiscan.scan(z).to_dict()
    data["modules"][0]["new_key"] = 1
    with pytest.raises(AssertionError, match="new_key"):
        validate_output("scan", data)
    data = abiscan.scan(z).to_dict()
    data["modules"][0]["outcome"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        validate_output("scan", data)


def test_cli_json_outputs_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    z = write_zip(tmp_path / "l.zip", {"python/pkg/__init__.py": "import missing\n"})
    assert main(["scan", str(z), "--format", "json"]) == 1
    validate_output("scan", json.loads(capsys.readouterr().out))
    assert main(["explain", "pkg", str(z), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    validate_output("explain", data)
    assert data["schema_version"] == "1.1"
    assert main(["explain", "nothere", str(z), "--format", "json"]) == 1
    validate_output("explain", json.loads(capsys.readouterr().out))
    assert main(["targets", "--show", "python3.11-arm64"]) == 0
    validate_output("target", json.loads(capsys.readouterr().out))
