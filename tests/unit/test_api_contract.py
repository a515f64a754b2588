"""The API's contract: how its arguments are read, which errors it raises, what it keeps."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest

import abiscan
import abiscan.errors
from abiscan.elf.reader import ElfError
from abiscan.inputs.sources import SourceError
from abiscan.target.profiles import TargetError, builtin_target

from helpers import installed, write_zip


def test_findings_that_differ_are_all_kept(tmp_path: Path) -> None:
    # One distribution, three missing requirements: three ABI303 findings with
    # the same code, path and module (none), which differ in what is missing.
    z = write_zip(tmp_path / "l.zip", installed(
        "app", "1.0", {"app/__init__.py": ""},
        requires_dist=("missing-one>=1", "missing-two", "missing-three<2"),
    ))
    found = abiscan.scan([z]).findings_for("ABI303")
    assert sorted(f.predicted_error.message for f in found if f.predicted_error) == [
        "No module named 'missing_one'",
        "No module named 'missing_three'",
        "No module named 'missing_two'",
    ]


def test_one_path_is_one_input(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "layer.zip", {"python/pkg/__init__.py": ""})
    for given in (str(z), z):
        report = abiscan.scan(given)
        assert [i.label for i in report.inputs] == [str(z)]
        assert report.module("pkg") is not None and report.module("pkg").ok  # type: ignore[union-attr]
    # The same for site_packages, and for an os.PathLike that is not a Path.

    class Where(os.PathLike[str]):
        def __fspath__(self) -> str:
            return str(z)

    report = abiscan.scan(site_packages=Where())
    assert [i.label for i in report.inputs] == [str(z)]


def test_one_import_name_is_one_name(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "layer.zip", {"python/pkg/__init__.py": ""})
    report = abiscan.scan(z, imports="os")
    names = {m.name for m in report.modules}
    assert "os" in names and "o" not in names and "s" not in names


def test_bytes_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="layers"):
        abiscan.scan(b"layer.zip")  # type: ignore[arg-type]


def test_contradictory_arguments_raise(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "layer.zip", {"python/pkg/__init__.py": ""})
    target = builtin_target("python3.11", "arm64")
    with pytest.raises(abiscan.ArgumentError, match="target"):
        abiscan.scan(z, target=target, runtime="python3.12")
    with pytest.raises(abiscan.ArgumentError, match="target"):
        abiscan.scan(z, target=target, arch="x86_64")
    for bad in ("", "a..b", "1abc", "a-b", "os "):
        with pytest.raises(abiscan.ArgumentError, match="module name"):
            abiscan.scan(z, imports=[bad])
    # Agreeing arguments still work.
    assert abiscan.scan(z, target=target).target.name == target.name
    assert abiscan.scan(z, runtime="python3.11", arch="arm64").target.name == target.name


def test_every_error_has_the_common_base_and_is_exported() -> None:
    family = [
        obj for obj in vars(abiscan.errors).values()
        if inspect.isclass(obj) and issubclass(obj, BaseException)
    ]
    assert len(family) >= 8
    for cls in family:
        assert issubclass(cls, abiscan.AbiscanError), cls
        assert getattr(abiscan, cls.__name__) is cls
        assert cls.__name__ in abiscan.__all__
    # Their old homes still name the same classes.
    assert ElfError is abiscan.ElfError
    assert SourceError is abiscan.SourceError
    assert TargetError is abiscan.TargetError
    with pytest.raises(abiscan.AbiscanError):
        builtin_target("python2.7", "x86_64")
    # TargetError was a ValueError and still is.
    assert issubclass(abiscan.TargetError, ValueError)


def test_no_other_exception_classes_outside_the_family() -> None:
    """Every exception class abiscan defines publicly derives from AbiscanError."""
    import importlib
    import pkgutil

    for info in pkgutil.walk_packages(abiscan.__path__, "abiscan."):
        if info.name.endswith(("__main__", ".capture")):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, Exception) and not name.startswith("_")
                    and obj.__module__.startswith("abiscan")):
                assert issubclass(obj, abiscan.AbiscanError), f"{info.name}.{name}"
