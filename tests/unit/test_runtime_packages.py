from __future__ import annotations

import json
from importlib import resources

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from abiscan.target.profiles import Target, builtin_target, builtin_targets, custom_target
from abiscan.target.profiles import runtime_names as target_runtime_names
from abiscan.target.runtime_packages import (
    CERTAINTIES,
    data_as_of,
    runtime_modules,
    runtime_names,
    runtime_package,
    runtime_packages,
    sources,
)

SDK = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")


def _raw() -> dict[str, object]:
    text = (resources.files("abiscan.target") / "data" / "runtime_packages.json").read_text()
    data: dict[str, object] = json.loads(text)
    return data


def test_every_builtin_runtime_is_covered() -> None:
    assert set(runtime_names()) == set(target_runtime_names())
    for runtime in ("python3.8", "python3.9", "python3.10", "python3.11", "python3.12",
                    "python3.13", "python3.14"):
        assert runtime in runtime_names()


@pytest.mark.parametrize("target", builtin_targets(), ids=lambda t: t.name)
def test_locations_are_on_the_targets_sys_path(target: Target) -> None:
    packages = runtime_packages(target)
    assert packages, target.name
    for package in packages:
        assert package.location in target.sys_path, (target.name, package)


@pytest.mark.parametrize("runtime", target_runtime_names())
def test_the_sdk_and_its_dependencies_are_listed(runtime: str) -> None:
    names = {p.name for p in runtime_packages(builtin_target(runtime))}
    assert set(SDK) <= names


def test_location_moves_at_python_3_11() -> None:
    # /var/runtime before the stdlib on 3.8-3.10; the interpreter's site-packages from 3.11.
    for runtime in ("python3.8", "python3.9", "python3.10"):
        assert {p.location for p in runtime_packages(builtin_target(runtime))} == {"/var/runtime"}
    for minor in (11, 12, 13, 14):
        target = builtin_target(f"python3.{minor}", "arm64")
        boto3 = runtime_package(target, "boto3")
        assert boto3 is not None
        assert boto3.location == f"/var/lang/lib/python3.{minor}/site-packages"


def test_names_are_canonical_and_values_valid() -> None:
    for runtime in runtime_names():
        seen: set[str] = set()
        for package in runtime_packages(builtin_target(runtime)):
            assert package.name == canonicalize_name(package.name)
            assert package.name not in seen, (runtime, package.name)
            seen.add(package.name)
            assert package.certainty in CERTAINTIES
            assert package.version_certainty in CERTAINTIES
            assert package.source
            assert package.top_level and all(m.isidentifier() for m in package.top_level)
            if package.version is not None:
                Version(package.version)  # a real version, not a placeholder
                assert package.version_source
            else:
                # Where no source gave a version, the data says so and claims nothing.
                assert package.version_certainty == "possible"


def test_raw_data_uses_canonical_names_and_known_sources() -> None:
    raw = _raw()
    known = set(raw["sources"])  # type: ignore[call-overload]
    for name in raw["distributions"]:  # type: ignore[attr-defined]
        assert name == canonicalize_name(name)
    for runtime, entry in raw["runtimes"].items():  # type: ignore[attr-defined]
        for item in entry["packages"]:
            assert item["name"] == canonicalize_name(item["name"]), runtime
            assert item["certainty"] in CERTAINTIES
            assert set(item["sources"]) <= known
            assert set(item.get("version_sources", [])) <= known
            assert item["version"] == "unknown" or item.get("version_sources"), (runtime, item)


def test_versions_never_claim_more_than_possible() -> None:
    # AWS updates the runtime SDK in place and per region: an observed version ages.
    for runtime in runtime_names():
        for package in runtime_packages(builtin_target(runtime)):
            assert package.version_certainty == "possible"


def test_top_level_import_names() -> None:
    target = builtin_target("python3.12")
    modules = runtime_modules(target)
    assert modules["dateutil"].name == "python-dateutil"
    assert modules["six"].name == "six"
    assert modules["boto3"].name == "boto3"
    assert runtime_package(target, "Python_Dateutil") is modules["dateutil"]


def test_sources_are_cited() -> None:
    table = sources()
    for source in table.values():
        assert source.says and source.title
    boto3 = runtime_package(builtin_target("python3.11"), "boto3")
    assert boto3 is not None and boto3.version == "1.38.36" and boto3.as_of
    assert "boto3" in boto3.source or "Lambda" in boto3.source
    assert data_as_of()


def test_custom_targets_provide_nothing() -> None:
    assert runtime_packages(custom_target("3.12", "x86_64", "2.34")) == ()
    assert runtime_modules(custom_target("3.12")) == {}
