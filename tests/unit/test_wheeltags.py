"""The target's supported wheel tags, checked against packaging.tags.sys_tags() run
inside real interpreters (the test may read the host; the library must not)."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import packaging
import packaging._manylinux
import packaging._musllinux
import packaging.tags
import packaging.version
import pytest
from packaging.tags import Tag

import abiscan.simulate.imports.wheel_tags as wheeltags
from abiscan.simulate.imports.wheel_tags import (
    best_rank,
    is_supported,
    manylinux_glibc,
    platform_tags,
    supported_tags,
    unsupported_reason,
)
from abiscan.target.profiles import Target, builtin_target, custom_target


def _local_interpreters() -> list[str]:
    found: dict[str, str] = {}
    for path in [sys.executable, *sorted(glob.glob("/root/.pyenv/versions/*/bin/python"))]:
        found.setdefault(os.path.realpath(path), path)
    return list(found.values())


_PROBE = r"""
import json, os, platform, sys, sysconfig
sys.path.insert(0, sys.argv[1])
from packaging import tags
print(json.dumps({
    "packaging": tags.__file__,
    "version": list(sys.version_info[:2]),
    "glibc": os.confstr("CS_GNU_LIBC_VERSION"),
    "machine": platform.machine(),
    "gil_disabled": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    "debug": bool(sysconfig.get_config_var("Py_DEBUG")),
    "tags": [str(t) for t in tags.sys_tags()],
}))
"""


@pytest.fixture(scope="module")
def packaging_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The venv's packaging, alone in a directory, so another interpreter runs the same code."""
    root = tmp_path_factory.mktemp("packaging")
    shutil.copytree(Path(packaging.__file__).parent, root / "packaging")
    return root


@pytest.mark.parametrize("python", _local_interpreters())
def test_matches_sys_tags_in_a_real_interpreter(python: str, packaging_copy: Path) -> None:
    # Written to run on Python 2 too, so every stray interpreter is identified, not crashed on.
    version = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True, text=True, timeout=60,
    )
    if version.returncode != 0:
        pytest.skip(f"{python} does not run: {version.stderr.strip()[-200:]}")
    major, minor = (int(x) for x in version.stdout.split("."))
    if (major, minor) < (3, 8):
        pytest.skip(f"{python} is Python {major}.{minor}; only 3.8+ is compared")
    probe = subprocess.run(
        [python, "-I", "-c", _PROBE, str(packaging_copy)],
        capture_output=True, text=True, timeout=120,
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(
            f"packaging {packaging.__version__} does not import on {python} "
            f"(Python {major}.{minor}): {last}"
        )
    facts = json.loads(probe.stdout)
    assert facts["packaging"].startswith(str(packaging_copy))
    if not facts["glibc"] or not facts["glibc"].startswith("glibc "):
        pytest.skip(f"{python} does not run on glibc ({facts['glibc']!r})")
    if facts["debug"]:
        pytest.skip(f"{python} is a debug build; custom targets have no debug flag")
    glibc = facts["glibc"].split()[1]
    target = custom_target(
        f"{major}.{minor}", facts["machine"], glibc, free_threaded=facts["gil_disabled"]
    )
    ours = [str(tag) for tag in supported_tags(target)]
    assert ours == facts["tags"]


def test_host_is_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every host-reading entry point of packaging is booby-trapped; the list still comes out."""

    def trap(*args: object, **kwargs: object) -> None:
        raise AssertionError("read the host")

    for name in ("platform_tags", "interpreter_name", "interpreter_version", "_cpython_abis",
                 "_get_config_var", "_linux_platforms", "_generic_platforms"):
        monkeypatch.setattr(packaging.tags, name, trap)
    monkeypatch.setattr(packaging._manylinux, "platform_tags", trap)
    monkeypatch.setattr(packaging._manylinux, "_get_glibc_version", trap)
    monkeypatch.setattr(packaging._musllinux, "platform_tags", trap)
    monkeypatch.setattr(os, "confstr", trap)
    wheeltags._platforms.cache_clear()
    wheeltags._supported.cache_clear()
    wheeltags._ranks.cache_clear()
    tags = supported_tags(custom_target("3.10", "arm64", "2.31"))
    assert str(tags[0]).startswith("cp310-cp310-")
    assert Tag("py3", "none", "any") in tags


def _manylinux_part(target: Target) -> list[str]:
    return [p for p in platform_tags(target) if not p.startswith("linux_")]


def test_x86_64_platforms_go_down_to_manylinux1_with_aliases_in_place() -> None:
    plats = _manylinux_part(builtin_target("python3.11", "x86_64"))
    assert plats[0] == "manylinux_2_26_x86_64"
    assert plats[-2:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64"]
    for alias, real in (("manylinux2014", "2_17"), ("manylinux2010", "2_12")):
        assert plats.index(f"{alias}_x86_64") == plats.index(f"manylinux_{real}_x86_64") + 1
    assert "linux_x86_64" in platform_tags(builtin_target("python3.11", "x86_64"))
    assert not any("musllinux" in p or "aarch64" in p for p in plats)
    # 26 - 5 + 1 versioned tags and three aliases.
    assert len(plats) == 22 + 3


def test_aarch64_platforms_stop_at_manylinux2014() -> None:
    plats = _manylinux_part(builtin_target("python3.12", "arm64"))
    assert plats[0] == "manylinux_2_34_aarch64"
    assert plats[-2:] == ["manylinux_2_17_aarch64", "manylinux2014_aarch64"]
    assert not any("manylinux1" in p or "manylinux2010" in p or "x86_64" in p for p in plats)
    assert "linux_aarch64" in platform_tags(builtin_target("python3.12", "arm64"))


def test_linux_tag_follows_installed_packaging_order() -> None:
    plats = platform_tags(builtin_target("python3.12"))
    linux_first = packaging.version.Version(packaging.__version__) >= packaging.version.Version(
        "26.3"
    )
    assert plats.index("linux_x86_64") == (0 if linux_first else len(plats) - 1)


def test_glibc_2_26_lacks_manylinux_2_28() -> None:
    al2 = platform_tags(builtin_target("python3.11"))
    al2023 = platform_tags(builtin_target("python3.12"))
    assert "manylinux_2_28_x86_64" not in al2
    assert "manylinux_2_26_x86_64" in al2
    assert "manylinux_2_28_x86_64" in al2023
    assert "manylinux_2_34_x86_64" in al2023
    assert "manylinux_2_35_x86_64" not in al2023
    assert not is_supported(["cp311-cp311-manylinux_2_28_x86_64"], builtin_target("python3.11"))
    assert is_supported(["cp311-cp311-manylinux_2_17_x86_64"], builtin_target("python3.11"))
    reason = unsupported_reason("cp311-cp311-manylinux_2_28_x86_64", builtin_target("python3.11"))
    assert reason == "platform manylinux_2_28_x86_64 needs glibc 2.28; the target has glibc 2.26"


def test_abi3_goes_down_to_cp32_and_not_up() -> None:
    target = builtin_target("python3.12")
    assert is_supported(["cp32-abi3-manylinux1_x86_64"], target)
    assert is_supported(["cp39-abi3-manylinux_2_17_x86_64"], target)
    assert not is_supported(["cp39-abi3-manylinux_2_17_x86_64"], builtin_target("python3.8"))
    assert not is_supported(["cp31-abi3-manylinux1_x86_64"], target)
    assert not is_supported(["cp313-abi3-manylinux_2_17_x86_64"], target)


def test_free_threaded_has_its_abi_and_no_abi3() -> None:
    target = custom_target("3.13", "x86_64", "2.34", free_threaded=True)
    tags = supported_tags(target)
    assert str(tags[0]) in ("cp313-cp313t-linux_x86_64", "cp313-cp313t-manylinux_2_34_x86_64")
    assert not any(t.abi == "abi3" for t in tags)
    assert not any(t.abi == "cp313" for t in tags)
    assert is_supported(["cp313-cp313t-manylinux_2_17_x86_64"], target)
    assert not is_supported(["cp313-cp313-manylinux_2_17_x86_64"], target)
    assert not is_supported(["cp313-cp313t-manylinux_2_17_x86_64"], builtin_target("python3.13"))
    reason = unsupported_reason("cp312-abi3-manylinux_2_17_x86_64", target)
    assert reason is not None and "free-threaded" in reason


def test_never_musllinux_on_glibc() -> None:
    for target in (builtin_target("python3.12"), builtin_target("python3.9", "arm64")):
        assert not any(t.platform.startswith("musllinux") for t in supported_tags(target))
        assert not is_supported([f"cp{target.python.replace('.', '')}-abi3-musllinux_1_2_"
                                 f"{target.arch}"], target)


def test_pure_python_and_compressed_tags() -> None:
    target = builtin_target("python3.10")
    assert is_supported(["py2.py3-none-any"], target)
    assert not is_supported(["py2-none-any"], target)
    assert is_supported([Tag("cp310", "none", "any")], target)
    assert not is_supported(["cp311-none-any"], target)


def test_best_rank_prefers_specific_wheels() -> None:
    target = builtin_target("python3.12")
    specific = best_rank(["cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64"], target)
    stable = best_rank(["cp38-abi3-manylinux_2_17_x86_64"], target)
    pure = best_rank(["py3-none-any"], target)
    assert specific is not None and stable is not None and pure is not None
    assert specific < stable < pure
    assert best_rank(["cp312-cp312-win_amd64"], target) is None


def test_manylinux_glibc() -> None:
    assert manylinux_glibc("manylinux_2_28_x86_64") == (2, 28)
    assert manylinux_glibc("manylinux2014_aarch64") == (2, 17)
    assert manylinux_glibc("manylinux1_x86_64") == (2, 5)
    assert manylinux_glibc("linux_x86_64") is None


def test_wrong_arch_and_version_reasons() -> None:
    target = builtin_target("python3.11")
    assert "aarch64" in (unsupported_reason("cp311-cp311-manylinux_2_17_aarch64", target) or "")
    assert "3.12" in (unsupported_reason("cp312-cp312-manylinux_2_17_x86_64", target) or "")
    assert unsupported_reason("cp311-cp311-manylinux_2_17_x86_64", target) is None
