"""SARIF output: valid SARIF 2.1.0 and what GitHub code scanning requires on top of it."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jsonschema
import pytest

import abiscan
from abiscan.demo import build_incident
from abiscan.inputs.sources import InputProblem
from abiscan.report.findings import Finding, code_info, registered_codes
from abiscan.report.model import InputSummary, Report
from abiscan.report.sarif import FINGERPRINT_KEY, file_uri, render_sarif
from abiscan.target.profiles import builtin_target

from helpers import write_zip
from sarif_subset import SARIF_2_1_0_SUBSET

DOCS = Path(__file__).resolve().parents[2] / "docs"
# RFC 3986 §2: a URI reference is made of unreserved, reserved and percent-encoded characters.
_URI_CHARS = re.compile(r"^(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$")


def validate(doc: dict[str, Any]) -> None:
    """The SARIF schema subset, then GitHub's requirements (docs.github.com, SARIF support)."""
    jsonschema.Draft7Validator(SARIF_2_1_0_SUBSET).validate(doc)
    assert doc["$schema"] and doc["version"] == "2.1.0"
    for run in doc["runs"]:
        rules = run["tool"]["driver"]["rules"]
        for rule in rules:
            for key in ("shortDescription", "fullDescription", "help"):
                assert rule[key]["text"], (rule["id"], key)
            assert rule["helpUri"].endswith(f"/findings/{rule['id']}.html")
            assert (DOCS / "findings" / f"{rule['id']}.md").is_file()
            assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
        for result in run["results"]:
            assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
            assert result["message"]["text"]
            assert 1 <= len(result["locations"]) <= 10
            for loc in result["locations"]:
                phys = loc["physicalLocation"]
                assert _URI_CHARS.match(phys["artifactLocation"]["uri"]), phys
                assert phys["region"]["startLine"] >= 1
            assert result["partialFingerprints"][FINGERPRINT_KEY]
        for invocation in run.get("invocations", []):
            for note in invocation["toolExecutionNotifications"]:
                uri = note["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                assert _URI_CHARS.match(uri)


def sarif_of(report: Report) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(render_sarif(report))
    validate(doc)
    return doc


def test_every_code_validates_with_a_location() -> None:
    target = builtin_target("python3.12")
    inputs = (InputSummary("my layers/L 1.zip", "layer", "/opt", 1, 1, readable=True),
              InputSummary("site dir", "site-packages", "/x", 1, 1, readable=True))
    findings = []
    for i, info in enumerate(registered_codes()):
        where: dict[str, Any] = {}
        if i % 3 == 1:
            where = {"source": "my layers/L 1.zip", "source_path": "python/a b.py",
                     "path": "/opt/python/a b.py", "module": "a_b"}
        elif i % 3 == 2:
            where = {"source": "site dir", "source_path": "pkg/ü.so", "path": "/x/pkg/ü.so"}
        findings.append(Finding.of(info, f"message {i}", "fix", **where))
    report = Report(target=target, modules=(), findings=tuple(findings), inputs=inputs,
                    tool_version=abiscan.__version__)
    doc = sarif_of(report)
    results = doc["runs"][0]["results"]
    assert sorted(r["ruleId"] for r in results) == sorted(c.code for c in registered_codes())
    uris = {r["ruleId"]: r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in results}
    codes = [c.code for c in registered_codes()]
    # No member: the input file itself (the first input for a whole-deployment finding).
    assert uris[codes[0]] == "my%20layers/L%201.zip"
    assert uris[codes[1]] == "my%20layers/L%201.zip"
    # A member of a directory input is a file of its own.
    assert uris[codes[2]] == "site%20dir/pkg/%C3%BC.so"
    assert unquote(uris[codes[2]]) == "site dir/pkg/ü.so"


def test_deployment_findings_have_a_location(tmp_path: Path) -> None:
    layers = [write_zip(tmp_path / f"l{i}.zip", {f"python/m{i}.py": ""}) for i in range(6)]
    doc = sarif_of(abiscan.scan(layers))
    (result,) = [r for r in doc["runs"][0]["results"] if r["ruleId"] == "ABI401"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == file_uri(
        str(layers[0]))


def test_uris(tmp_path: Path) -> None:
    assert file_uri("/tmp/a b/L#1.zip") == "file:///tmp/a%20b/L%231.zip"
    assert file_uri("layers/L1.zip") == "layers/L1.zip"
    assert file_uri("layers\\x 1.zip") == "layers/x%201.zip"


def test_incident_regions_and_fingerprints(tmp_path: Path) -> None:
    (tmp_path / "with space").mkdir()
    zips = build_incident(tmp_path / "with space")
    # The same layers as directories: the Python members are files with lines.
    dirs = []
    for z in zips:
        d = tmp_path / "dirs" / z.stem
        with zipfile.ZipFile(z) as zf:
            zf.extractall(d)
        dirs.append(d)
    first = sarif_of(abiscan.scan(dirs))
    (guard,) = [r for r in first["runs"][0]["results"] if r["ruleId"] == "ABI502"]
    loc = guard["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"].endswith("/python/pymysql/connections.py")
    assert loc["region"]["startLine"] == 2
    # Zips: the location is the zip, percent-encoded, line 1 for the whole file.
    zipped = sarif_of(abiscan.scan(zips))
    for r in zipped["runs"][0]["results"]:
        phys = r["locations"][0]["physicalLocation"]
        assert "%20" in phys["artifactLocation"]["uri"]
        assert phys["region"] == {"startLine": 1}
    # Fingerprints: stable across runs, distinct between findings.
    again = sarif_of(abiscan.scan(dirs))
    prints = [r["partialFingerprints"] for r in first["runs"][0]["results"]]
    assert prints == [r["partialFingerprints"] for r in again["runs"][0]["results"]]
    assert len({p[FINGERPRINT_KEY] for p in prints}) == len(prints)
    shutil.rmtree(tmp_path / "dirs")


def test_unreadable_inputs_are_tool_notifications(tmp_path: Path) -> None:
    good = write_zip(tmp_path / "good.zip", {"python/ok.py": ""})
    report = abiscan.scan([good, tmp_path / "missing layer.zip"])
    doc = sarif_of(report)
    (invocation,) = doc["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False
    (note,) = invocation["toolExecutionNotifications"]
    assert note["level"] == "error"
    assert "missing layer.zip" in note["message"]["text"]
    uri = note["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri.endswith("missing%20layer.zip")
    # A readable run succeeds, with no notifications.
    ok = sarif_of(abiscan.scan(good))["runs"][0]["invocations"][0]
    assert ok == {"executionSuccessful": True, "toolExecutionNotifications": []}


def test_member_problems_are_warnings() -> None:
    report = Report(
        target=builtin_target("python3.12"), modules=(), findings=(),
        inputs=(InputSummary("l.zip", "layer", "/opt", 1, 1, readable=True),),
        problems=(InputProblem("l.zip", "python/x.py", "member appears more than once"),),
    )
    (note,) = sarif_of(report)["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert note["level"] == "warning" and note["descriptor"]["id"] == "member-problem"


@pytest.mark.parametrize("bad", [
    {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [
        {"message": {"text": "m"}, "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": "a"}, "region": {"startLine": 0}}}]}]}]},
    {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x", "ruls": []}}}]},
    {"version": "2.0.0", "runs": []},
])
def test_the_schema_subset_rejects(bad: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(SARIF_2_1_0_SUBSET).validate(bad)


def test_code_info_help_uri() -> None:
    from abiscan.report.sarif import help_uri

    assert help_uri(code_info("ABI101").code).endswith("findings/ABI101.html")
