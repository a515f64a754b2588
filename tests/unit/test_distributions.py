"""Distributions and stack integrity (ABI3xx, ABI107, ABI4xx) on synthesised layers."""

from __future__ import annotations

from pathlib import Path

import abiscan
from abiscan.inputs.dists import find_distributions
from abiscan.inputs.sources import InputKind, open_source
from abiscan.inputs.stack import build_stack
from abiscan.report.findings import Finding, Severity
from abiscan.target.profiles import builtin_target
from abiscan.testing.elf_writer import build_shared_object

from helpers import installed, write_zip


def codes(report: abiscan.Report, code: str) -> list[Finding]:
    return report.findings_for(code)


def urllib3(version: str, extra: dict[str, str]) -> dict[str, bytes]:
    files = {"urllib3/__init__.py": f"__version__ = '{version}'\n",
             "urllib3/connection.py": f"# {version}\n", **extra}
    return installed("urllib3", version, files)


def test_dist_info_is_read(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "l.zip", installed(
        "Foo-Bar", "1.2", {"foo/__init__.py": ""}, requires_dist=("six>=1.0",),
        requires_python=">=3.8", tags=("cp312-cp312-manylinux_2_17_x86_64",)))
    stack = build_stack(builtin_target("python3.12"), [open_source(z, InputKind.LAYER)])
    (d,) = find_distributions(stack)
    assert (d.name, d.version, d.canonical_name) == ("Foo-Bar", "1.2", "foo-bar")
    assert d.site == "/opt/python" and d.top_level == ("foo",)
    assert d.requires_python == ">=3.8" and d.requires_dist == ("six>=1.0",)
    assert d.wheel_tags == ("cp312-cp312-manylinux_2_17_x86_64",)
    assert d.root_is_purelib is False and d.source == str(z)
    assert "/opt/python/foo/__init__.py" in d.files()


def test_two_versions_unpacked_into_one_directory(tmp_path: Path) -> None:
    old = write_zip(tmp_path / "L1.zip", urllib3("1.26.18", {"urllib3/contrib/pyopenssl.py": ""}))
    new = write_zip(tmp_path / "L2.zip", urllib3("2.2.1", {"urllib3/http2.py": ""}))
    report = abiscan.scan([old, new], runtime="python3.12")
    (dup,) = codes(report, "ABI305")
    assert "urllib3" in dup.message and "mixed" in dup.message
    mixed = {f.distribution: f for f in codes(report, "ABI306")}
    assert "/opt/python/urllib3/contrib/pyopenssl.py" in mixed["urllib3 2.2.1"].message
    overwritten = mixed["urllib3 1.26.18"]
    assert "overwritten" in overwritten.message and overwritten.severity is Severity.ERROR
    assert "/opt/python/urllib3/__init__.py" in overwritten.message


def test_function_copy_shadows_layer_copy(tmp_path: Path) -> None:
    layer = write_zip(tmp_path / "layer.zip", installed("cffi", "1.16.0", {"cffi/__init__.py": ""}))
    fn = write_zip(tmp_path / "fn.zip", installed("cffi", "1.15.1", {"cffi/__init__.py": ""},
                                                  prefix=""))
    report = abiscan.scan([layer], function=fn, runtime="python3.12")
    (shadow,) = codes(report, "ABI107")
    assert shadow.module == "cffi" and shadow.path == "/opt/python/cffi/__init__.py"
    assert "/var/task/cffi/__init__.py (cffi 1.15.1) loads" in shadow.message
    (dup,) = codes(report, "ABI305")
    assert "the copy in /var/task (1.15.1) loads" in dup.message


def test_unsupported_wheel_tags(tmp_path: Path) -> None:
    so = build_shared_object(exports=["PyInit__rust"])
    z = write_zip(tmp_path / "l.zip", installed(
        "cryptography", "42.0.5", {"cryptography/__init__.py": "",
                                   "cryptography/_rust.abi3.so": so},
        tags=("cp39-abi3-manylinux_2_28_x86_64",)))
    report = abiscan.scan([z], runtime="python3.11")
    (f,) = codes(report, "ABI301")
    assert f.distribution == "cryptography 42.0.5"
    # The synthesised binary needs no GLIBC version: the tag is stricter than the file.
    assert f.severity is Severity.WARNING and "stricter" in f.message
    assert codes(abiscan.scan([z], runtime="python3.12"), "ABI301") == []
    old = write_zip(tmp_path / "abi3.zip", installed(
        "bcrypt", "4.1.2", {"bcrypt/__init__.py": ""}, tags=("cp39-abi3-manylinux_2_17_x86_64",)))
    (f38,) = codes(abiscan.scan([old], runtime="python3.8"), "ABI301")
    assert f38.severity is Severity.ERROR


def test_requires_python_and_dependencies(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "l.zip", {
        **installed("app", "1.0", {"app/__init__.py": ""}, requires_python=">=3.13",
                    requires_dist=("missing-dep>=1", "idna>=3", "tomli; python_version<'3.11'",
                                   "extra-only; extra == 'speed'", "boto3>=1.0")),
        **installed("idna", "2.10", {"idna/__init__.py": ""}),
    })
    report = abiscan.scan([z], runtime="python3.12")
    (py,) = codes(report, "ABI302")
    assert ">=3.13" in py.message
    (missing,) = codes(report, "ABI303")
    assert "missing-dep" in missing.message
    assert str(missing.predicted_error) == "ModuleNotFoundError: No module named 'missing_dep'"
    (conflict,) = codes(report, "ABI304")
    assert "idna 2.10" in conflict.message


def test_runtime_provides_boto3(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "l.zip", installed("boto3", "1.20.0", {"boto3/__init__.py": ""}))
    report = abiscan.scan([z], runtime="python3.12")
    notes = [f for f in codes(report, "ABI107") if f.module == "boto3"]
    assert notes and notes[0].severity is Severity.INFO


def test_layer_limits_and_modes(tmp_path: Path) -> None:
    layers = [write_zip(tmp_path / f"l{i}.zip", {f"python/m{i}.py": ""}) for i in range(6)]
    report = abiscan.scan(layers, runtime="python3.12")
    assert len(codes(report, "ABI401")) == 1
    locked = write_zip(tmp_path / "locked.zip", {"python/secret.py": "x"}, mode=0o600)
    report = abiscan.scan([locked], runtime="python3.12")
    (f,) = codes(report, "ABI403")
    assert "python/secret.py" in f.message
    m = report.module("secret")
    assert m is not None and m.error is not None
    assert str(m.error) == "PermissionError: [Errno 13] Permission denied: '/opt/python/secret.py'"


def test_unsafe_entries(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "evil.zip", {"../../etc/cron.d/x": "", "python/ok.py": ""})
    (f,) = codes(abiscan.scan([z], runtime="python3.12"), "ABI404")
    assert "'..' component" in f.message and f.source == str(z)


def test_deployment_over_the_size_limit(tmp_path: Path) -> None:
    from dataclasses import replace

    target = replace(builtin_target("python3.12"), max_unzipped_bytes=1000)
    z = write_zip(tmp_path / "big.zip", {"python/big.py": "#" * 2000})
    (f,) = codes(abiscan.scan([z], target=target), "ABI402")
    assert "the limit is" in f.message and str(z) in f.evidence[0]
    assert codes(abiscan.scan([z], runtime="python3.12"), "ABI402") == []


def test_a_missing_dependency_fails_the_module_that_imports_it(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "l.zip", installed(
        "app", "1.0", {"app/__init__.py": "import missing_dep\n"},
        requires_dist=("missing-dep>=1",)))
    report = abiscan.scan([z], runtime="python3.12")
    app = report.module("app")
    assert app is not None and app.outcome == "error"
    assert str(app.error) == "ModuleNotFoundError: No module named 'missing_dep'"
    assert app.chain == ("app", "missing_dep")
    assert {f.code for f in report.findings} >= {"ABI303", "ABI501"}
