"""The dynamic-linker simulation: search order, symbol versions, undefined symbols, inventories.

Objects are written with abiscan's ELF writer (relocations and symbol
versions included), so these run without a compiler; the differential tests
(``test_differential_linker.py``) compare the same behaviour with glibc.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from abiscan import scan
from abiscan.elf.references import SymbolRef
from abiscan.report.model import ModuleOutcome, Report
from abiscan.simulate.linker.dlopen import BindMemo
from abiscan.target.profiles import Target, builtin_target, custom_target
from abiscan.target.system_libraries import (
    SystemInventory,
    SystemLibrary,
    builtin_inventory,
    generic_glibc_inventory,
    glibc_versions,
)
from abiscan.testing.elf_writer import build_shared_object

from helpers import write_zip

ENOENT = "cannot open shared object file: No such file or directory"


def so(**kw: object) -> bytes:
    return build_shared_object(**kw)  # type: ignore[arg-type]


def ext(name: str, **kw: object) -> bytes:
    kw.setdefault("exports", [f"PyInit_{name}"])
    return so(**kw)


def run(tmp_path: Path, members: dict[str, bytes | str], target: Target) -> Report:
    layer = write_zip(tmp_path / "layer.zip", members)
    return scan([layer], target=target)


def outcome(report: Report, name: str) -> ModuleOutcome:
    m = report.module(name)
    assert m is not None, [x.name for x in report.modules]
    return m


def message(report: Report, name: str) -> str | None:
    m = outcome(report, name)
    return m.error.message if m.error else None


def tiny_system(*libs: SystemLibrary, complete: bool = True) -> SystemInventory:
    """A fully known system (as if captured): glibc, with its exports, and whatever is given."""
    base = generic_glibc_inventory("2.34", "x86_64")
    glibc = tuple(replace(lib, exports=frozenset({"malloc", "memcpy"})) for lib in base.libraries)
    return replace(
        base, name="test system", libraries=(*glibc, *libs),
        cache=(*base.cache, *((lib.soname or lib.name, lib.path) for lib in libs)),
        complete=complete, absent_confidence="certain" if complete else "possible",
    )


@pytest.fixture
def target() -> Target:
    return replace(custom_target("3.12", "x86_64", "2.34"), system=tiny_system())


# -- the search order ----------------------------------------------------------


def _versioned_pair() -> tuple[bytes, bytes]:
    """libq.so defining Q_1 only, and one defining Q_1 and Q_2."""
    old = so(exports=["q@Q_1"], soname="libq.so", version_defs=["Q_1"])
    new = so(exports=["q@Q_1", "q2@Q_2"], soname="libq.so", version_defs=["Q_1", "Q_2"])
    return old, new


def _needs_q2(name: str, **kw: object) -> bytes:
    return ext(name, needed=["libq.so"], version_needs=[("libq.so", ["Q_2"])], **kw)


def test_rpath_comes_before_ld_library_path(tmp_path: Path, target: Target) -> None:
    old, new = _versioned_pair()
    report = run(tmp_path, {
        "python/m.abi3.so": _needs_q2("m", rpath="/opt/q2"),
        "lib/libq.so": old,
        "q2/libq.so": new,
    }, target)
    assert outcome(report, "m").ok, outcome(report, "m").reason


def test_runpath_comes_after_ld_library_path(tmp_path: Path, target: Target) -> None:
    old, new = _versioned_pair()
    report = run(tmp_path, {
        "python/m.abi3.so": _needs_q2("m", runpath="/opt/q2"),
        "lib/libq.so": old,
        "q2/libq.so": new,
    }, target)
    assert message(report, "m") == (
        "/opt/lib/libq.so: version `Q_2' not found (required by /opt/python/m.abi3.so)"
    )
    assert [f.code for f in report.findings_for("ABI204")] == ["ABI204"]


def test_rpath_is_ignored_when_runpath_is_present(tmp_path: Path, target: Target) -> None:
    old, new = _versioned_pair()
    report = run(tmp_path, {
        "python/m.abi3.so": _needs_q2("m", rpath="/opt/q2", runpath="/opt/nothing"),
        "lib/libq.so": old,
        "q2/libq.so": new,
    }, target)
    assert message(report, "m") == (
        "/opt/lib/libq.so: version `Q_2' not found (required by /opt/python/m.abi3.so)"
    )


def test_origin_runpath_finds_vendored_libraries(tmp_path: Path, target: Target) -> None:
    # What auditwheel repair does: pkg.libs next to the package, $ORIGIN RUNPATH.
    _, new = _versioned_pair()
    for token in ("$ORIGIN", "${ORIGIN}"):
        report = run(tmp_path / token.strip("${}"), {
            "python/pkg/__init__.py": "",
            "python/pkg/_x.abi3.so": _needs_q2("_x", runpath=f"{token}/../pkg.libs"),
            "python/pkg.libs/libq.so": new,
        }, target)
        assert outcome(report, "pkg._x").ok, outcome(report, "pkg._x").reason


def test_rpath_of_the_loader_chain_serves_dependencies(tmp_path: Path, target: Target) -> None:
    # libmid has no path of its own: ld.so walks up to the extension's RPATH.
    report = run(tmp_path, {
        "python/m.abi3.so": ext("m", needed=["libmid.so"], rpath="$ORIGIN/../deps"),
        "deps/libmid.so": so(exports=["mid"], soname="libmid.so", needed=["libdeep.so"]),
        "deps/libdeep.so": so(exports=["deep"], soname="libdeep.so"),
    }, target)
    assert outcome(report, "m").ok, outcome(report, "m").reason


def test_runpath_serves_only_its_own_object(tmp_path: Path, target: Target) -> None:
    report = run(tmp_path, {
        "python/m.abi3.so": ext("m", needed=["libmid.so"], runpath="$ORIGIN/../deps"),
        "deps/libmid.so": so(exports=["mid"], soname="libmid.so", needed=["libdeep.so"]),
        "deps/libdeep.so": so(exports=["deep"], soname="libdeep.so"),
    }, target)
    assert message(report, "m") == f"libdeep.so: {ENOENT}"
    finding = report.findings_for("ABI203")[0]
    assert "m.abi3.so -> libmid.so" in finding.message


def test_other_class_is_skipped_and_named_when_nothing_else(tmp_path: Path,
                                                           target: Target) -> None:
    q32 = so(bits=32, machine="i386", soname="libq.so", exports=["q"])
    q64 = so(soname="libq.so", exports=["q"])
    both = run(tmp_path / "a", {
        "python/m.abi3.so": ext("m", needed=["libq.so"], runpath="/opt/q64"),
        "lib/libq.so": q32, "q64/libq.so": q64,
    }, target)
    assert outcome(both, "m").ok
    only = run(tmp_path / "b", {
        "python/m.abi3.so": ext("m", needed=["libq.so"]), "lib/libq.so": q32,
    }, target)
    assert message(only, "m") == "libq.so: wrong ELF class: ELFCLASS32"


def test_other_machine_is_skipped_silently(tmp_path: Path, target: Target) -> None:
    report = run(tmp_path, {
        "python/m.abi3.so": ext("m", needed=["libq.so"]),
        "lib/libq.so": so(machine="aarch64", soname="libq.so", exports=["q"]),
    }, target)
    assert message(report, "m") == f"libq.so: {ENOENT}"


def test_a_broken_candidate_ends_the_search(tmp_path: Path, target: Target) -> None:
    report = run(tmp_path, {
        "python/m.abi3.so": ext("m", needed=["libq.so"]),
        "lib/libq.so": b"not an ELF file at all, but named like a library" * 4,
    }, target)
    assert message(report, "m") == "/opt/lib/libq.so: invalid ELF header"


def test_missing_dependencies_are_reported_breadth_first(tmp_path: Path,
                                                        target: Target) -> None:
    report = run(tmp_path, {
        "python/m.abi3.so": ext("m", needed=["libmid.so", "libtop.so"]),
        "lib/libmid.so": so(exports=["mid"], soname="libmid.so", needed=["libdeep.so"]),
    }, target)
    assert message(report, "m") == f"libtop.so: {ENOENT}"


def test_a_library_is_loaded_once(tmp_path: Path, target: Target) -> None:
    # Two names for one file (a link) and a soname already loaded by the process.
    report = run(tmp_path, {
        "python/m.abi3.so": ext("m", needed=["libq.so.1", "libc.so.6"]),
        "lib/libq.so.1": so(exports=["q"], soname="libq.so.1", needed=["libc.so.6"]),
    }, target)
    assert outcome(report, "m").ok


def test_system_libraries_come_from_the_inventory(tmp_path: Path) -> None:
    ssl = SystemLibrary("/usr/lib64/libssl.so.3", "libssl.so.3", version_defs=("OPENSSL_3.0.0",))
    t = replace(custom_target("3.12", "x86_64", "2.34"), system=tiny_system(ssl))
    report = run(tmp_path, {
        "python/ok.abi3.so": ext("ok", needed=["libssl.so.3"],
                                 version_needs=[("libssl.so.3", ["OPENSSL_3.0.0"])]),
        "python/new.abi3.so": ext("new", needed=["libssl.so.3"],
                                  version_needs=[("libssl.so.3", ["OPENSSL_3.2.0"])]),
        "python/old.abi3.so": ext("old", needed=["libssl.so.1.1"]),
    }, t)
    assert outcome(report, "ok").ok
    assert message(report, "new") == (
        "/usr/lib64/libssl.so.3: version `OPENSSL_3.2.0' not found "
        "(required by /opt/python/new.abi3.so)"
    )
    assert message(report, "old") == f"libssl.so.1.1: {ENOENT}"
    assert report.findings_for("ABI203")[0].confidence.value == "certain"


def test_unknown_libraries_on_an_incomplete_system_are_not_errors(tmp_path: Path) -> None:
    t = custom_target("3.12", "x86_64", "2.34")  # only glibc is known
    report = run(tmp_path, {"python/m.abi3.so": ext("m", needed=["libfancy.so.7"])}, t)
    m = outcome(report, "m")
    assert m.outcome == "unknown" and "libfancy.so.7" in m.reason
    assert not report.findings_for("ABI203")


# -- symbol versions ---------------------------------------------------------


def test_versions_are_checked_in_need_order(tmp_path: Path, target: Target) -> None:
    report = run(tmp_path, {
        "python/m.abi3.so": ext("m", needed=["libc.so.6"], version_needs=[
            ("libc.so.6", ["GLIBC_2.2.5", "GLIBC_2.99", "GLIBC_2.98"])]),
    }, target)
    assert message(report, "m") == (
        "/lib64/libc.so.6: version `GLIBC_2.99' not found (required by /opt/python/m.abi3.so)"
    )


def test_the_extension_is_checked_before_its_dependencies(tmp_path: Path,
                                                          target: Target) -> None:
    old, _ = _versioned_pair()
    report = run(tmp_path, {
        "python/m.abi3.so": ext("m", needed=["libdep.so", "libq.so"],
                                version_needs=[("libq.so", ["Q_2"])]),
        "lib/libdep.so": so(soname="libdep.so", needed=["libc.so.6"],
                            version_needs=[("libc.so.6", ["GLIBC_2.99"])]),
        "lib/libq.so": old,
    }, target)
    assert message(report, "m") == (
        "/opt/lib/libq.so: version `Q_2' not found (required by /opt/python/m.abi3.so)"
    )


def test_a_library_without_versions_satisfies_any_need(tmp_path: Path, target: Target) -> None:
    report = run(tmp_path, {
        "python/m.abi3.so": ext("m", needed=["libq.so"], version_needs=[("libq.so", ["Q_2"])]),
        "lib/libq.so": so(soname="libq.so", exports=["q"]),
    }, target)
    assert outcome(report, "m").ok


def test_glibc_version_sets() -> None:
    libc26, sure = glibc_versions("libc.so.6", "x86_64", "2.26") or ((), "")
    assert "GLIBC_2.26" in libc26 and "GLIBC_2.27" not in libc26 and sure == "certain"
    assert "GLIBC_2.19" not in libc26  # x86_64 libc has no 2.19-2.21 nodes
    libm34, _ = glibc_versions("libm.so.6", "x86_64", "2.34") or ((), "")
    assert "GLIBC_2.29" in libm34 and "GLIBC_2.35" not in libm34
    arm, sure = glibc_versions("libc.so.6", "aarch64", "2.26") or ((), "")
    assert arm[0] == "GLIBC_2.17" and sure == "likely"
    assert glibc_versions("libc.so.6", "x86_64", "2.40") is not None
    assert (glibc_versions("libc.so.6", "x86_64", "2.40") or ((), ""))[1] == "possible"


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_builtin_inventories(arch: str) -> None:
    al2 = builtin_inventory("al2", arch, (3, 11))
    al2023 = builtin_inventory("al2023", arch, (3, 12))

    def versions(inv: SystemInventory, soname: str) -> tuple[str, ...]:
        lib = inv.by_soname(soname)[0]
        assert lib.version_defs is not None
        return lib.version_defs

    assert "GLIBCXX_3.4.24" in versions(al2, "libstdc++.so.6")
    assert "GLIBCXX_3.4.25" not in versions(al2, "libstdc++.so.6")
    assert "CXXABI_1.3.11" in versions(al2, "libstdc++.so.6")
    assert "GLIBCXX_3.4.29" in versions(al2023, "libstdc++.so.6")
    assert "GLIBCXX_3.4.30" not in versions(al2023, "libstdc++.so.6")
    assert "CXXABI_1.3.13" in versions(al2023, "libstdc++.so.6")
    assert al2.by_soname("libssl.so.10") and al2.by_soname("libffi.so.6")
    assert al2023.by_soname("libssl.so.3") and not al2023.by_soname("libssl.so.10")
    assert (al2023.absent_entry("libxslt.so.1") or pytest.fail()).certainty == "certain"
    assert al2023.absent_entry("libicuuc.so.72") is not None
    assert al2.preloaded[0] == "libpython3.11.so.1.0"
    assert al2.library_at("/lib64/libc.so.6") is al2.library_at("/usr/lib64/libc.so.6")
    for inv in (al2, al2023):
        for lib in inv.libraries:
            assert lib.source and lib.certainty in ("certain", "likely", "possible"), lib


# -- undefined symbols -------------------------------------------------------


def test_undefined_symbols_in_relocation_order(tmp_path: Path, target: Target) -> None:
    report = run(tmp_path, {
        "python/m.abi3.so": ext("m", undefined=["nope_b", "nope_a"], relocate=True),
        "python/quiet.abi3.so": ext("quiet", undefined=["nope_c"]),  # no relocation: no lookup
    }, target)
    assert message(report, "m") == "/opt/python/m.abi3.so: undefined symbol: nope_b"
    assert report.findings_for("ABI206")
    assert outcome(report, "quiet").ok


def test_dependencies_are_relocated_first(tmp_path: Path, target: Target) -> None:
    report = run(tmp_path, {
        "python/m.abi3.so": ext("m", needed=["libdep.so"], undefined=["in_ext"], relocate=True),
        "lib/libdep.so": so(soname="libdep.so", exports=["dep"], undefined=["in_dep"],
                            relocate=True),
    }, target)
    assert message(report, "m") == "/opt/lib/libdep.so: undefined symbol: in_dep"


def test_symbols_from_the_dependency_tree_resolve(tmp_path: Path, target: Target) -> None:
    report = run(tmp_path, {
        "python/m.abi3.so": ext("m", needed=["libdep.so"], undefined=["dep"], relocate=True),
        "lib/libdep.so": so(soname="libdep.so", exports=["dep"]),
    }, target)
    assert outcome(report, "m").ok


def test_symbols_only_unknown_libraries_may_define(tmp_path: Path) -> None:
    # libx's exports are not known: names outside the C API that no known object
    # defines are taken as found (in order, named in the reason); a C-API name
    # is decided by the interpreter's exports alone, and glibc may stop earlier.
    libx = SystemLibrary("/usr/lib64/libx.so.1", "libx.so.1")
    t = replace(custom_target("3.12", "x86_64", "2.34"), system=tiny_system(libx))
    report = run(tmp_path, {
        "python/ok.abi3.so": ext("ok", needed=["libx.so.1"], undefined=["x_one", "x_two"],
                                 relocate=True),
        "python/m.abi3.so": ext("m", needed=["libx.so.1"],
                                undefined=["x_one", "PyNoSuch_Thing", "x_two"], relocate=True),
    }, t)
    ok = outcome(report, "ok")
    assert ok.ok and "2 symbol(s) could come only from system libraries" in ok.reason
    assert "(x_one, x_two); taken as found" in ok.reason
    assert message(report, "m") == "/opt/python/m.abi3.so: undefined symbol: PyNoSuch_Thing"
    (finding,) = report.findings_for("ABI106")
    assert finding.confidence.value == "likely"
    assert any("glibc may stop earlier at x_one," in e for e in finding.evidence)


def test_abi3_module_needing_a_newer_stable_abi(tmp_path: Path) -> None:
    members: dict[str, bytes | str] = {"python/m.abi3.so": ext(
        "m", undefined=["PyModule_Create2", "PyInterpreterState_Get"], relocate=True)}
    old = run(tmp_path / "38", members, builtin_target("python3.8"))
    assert message(old, "m") == "/opt/python/m.abi3.so: undefined symbol: PyInterpreterState_Get"
    (finding,) = old.findings_for("ABI103")
    assert "3.9" in finding.message and finding.confidence.value == "likely"
    assert outcome(run(tmp_path / "39", members, builtin_target("python3.9")), "m").ok


def test_untagged_module_built_for_another_python(tmp_path: Path) -> None:
    members: dict[str, bytes | str] = {
        "python/_yaml.so": ext("_yaml", undefined=["_PyUnicode_Ready"], relocate=True)
    }
    new = run(tmp_path / "312", members, builtin_target("python3.12"))
    assert message(new, "_yaml") == "/opt/python/_yaml.so: undefined symbol: _PyUnicode_Ready"
    (finding,) = new.findings_for("ABI106")
    assert "3.11" in finding.message
    assert outcome(run(tmp_path / "311", members, builtin_target("python3.11")), "_yaml").ok


def test_no_capi_data_means_unknown_not_a_guess(tmp_path: Path) -> None:
    report = run(tmp_path, {
        "python/m.abi3.so": ext("m", undefined=["PyModule_Create2"], relocate=True),
        "python/plain.abi3.so": ext("plain"),
    }, builtin_target("python3.14"))
    m = outcome(report, "m")
    assert m.outcome == "unknown" and "3.14" in m.reason
    assert outcome(report, "plain").ok


# -- what the issue must show --------------------------------------------------


def _cryptography_layer(machine: str = "x86_64") -> dict[str, bytes | str]:
    base = "GLIBC_2.2.5" if machine == "x86_64" else "GLIBC_2.17"  # each port's first version
    rust = ext(
        "_rust", machine=machine,
        needed=["libgcc_s.so.1", "libpthread.so.0", "libdl.so.2", "libc.so.6"],
        version_needs=[("libgcc_s.so.1", ["GCC_3.0"]), ("libc.so.6", [base, "GLIBC_2.28"])],
        undefined=[f"memcpy@{base}", "PyModule_Create2"], relocate=True,
    )
    return {
        "python/cryptography/__init__.py": "",
        "python/cryptography/hazmat/__init__.py": "",
        "python/cryptography/hazmat/bindings/__init__.py": "",
        "python/cryptography/hazmat/bindings/_rust.abi3.so": rust,
    }


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_manylinux_2_28_cryptography_on_python311_and_312(tmp_path: Path, arch: str) -> None:
    name = "cryptography.hazmat.bindings._rust"
    machine = "aarch64" if arch == "arm64" else arch
    old = run(tmp_path / "311", _cryptography_layer(machine), builtin_target("python3.11", arch))
    assert outcome(old, name).error is not None
    assert message(old, name) == (
        "/lib64/libc.so.6: version `GLIBC_2.28' not found "
        "(required by /opt/python/cryptography/hazmat/bindings/_rust.abi3.so)"
    )
    (finding,) = old.findings_for("ABI204")
    assert finding.module == name and "manylinux_2_26" in finding.fix
    new = run(tmp_path / "312", _cryptography_layer(machine), builtin_target("python3.12", arch))
    assert outcome(new, name).ok, outcome(new, name).reason
    assert not new.findings_for("ABI204")


def test_musllinux_extension_on_glibc(tmp_path: Path) -> None:
    report = run(tmp_path, {
        "python/_speedups.abi3.so": ext("_speedups", needed=["libc.musl-x86_64.so.1"]),
    }, builtin_target("python3.12"))
    assert message(report, "_speedups") == f"libc.musl-x86_64.so.1: {ENOENT}"
    (finding,) = report.findings_for("ABI205")
    assert finding.confidence.value == "certain" and "manylinux" in finding.fix


def test_lambda_openssl_mismatch(tmp_path: Path) -> None:
    members: dict[str, bytes | str] = {
        "python/_ssl3.abi3.so": ext("_ssl3", needed=["libssl.so.3"]),
    }
    al2 = run(tmp_path / "al2", members, builtin_target("python3.11"))
    assert message(al2, "_ssl3") == f"libssl.so.3: {ENOENT}"
    assert al2.findings_for("ABI203")[0].confidence.value == "certain"
    assert outcome(run(tmp_path / "al2023", members, builtin_target("python3.12")), "_ssl3").ok


def test_target_profiles_round_trip_with_system_data() -> None:
    lib = SystemLibrary("/usr/lib/libq.so", "libq.so", version_defs=None,
                        exports=frozenset({"q"}), certainty="possible", source="test")
    t = replace(builtin_target("python3.12"), system=tiny_system(lib))
    again = Target.from_dict(t.to_dict())
    assert again == t and again.inventory().library_at("/usr/lib/libq.so") == lib
    summary = t.to_dict(embed=False)["system"]
    assert summary["libraries"] == len(t.inventory().libraries)


def test_untagged_module_next_to_modules_tagged_for_another_python(tmp_path: Path) -> None:
    report = run(tmp_path, {
        "python/pkg/__init__.py": "",
        "python/pkg/_yaml.so": ext("_yaml", undefined=["PyModule_Create2"], relocate=True),
        "python/pkg/_other.cpython-311-x86_64-linux-gnu.so": ext("_other"),
    }, builtin_target("python3.12"))
    assert outcome(report, "pkg._yaml").ok
    (finding,) = report.findings_for("ABI106")
    assert finding.severity.value == "warning" and finding.confidence.value == "likely"
    assert "3.11" in finding.message


def test_bind_memo_intersects_once_per_library_and_export_set() -> None:
    refs = (SymbolRef(name="a", weak=False), SymbolRef(name="b", weak=False),
            SymbolRef(name="w", weak=True))
    same = tuple(SymbolRef(name=r.name, weak=r.weak) for r in refs)
    exports = frozenset({"a", "w", "z"})
    memo = BindMemo()
    assert memo.hits(refs, exports) == {"a"} and memo.computed == 1
    assert memo.hits(refs, exports) == {"a"} and memo.computed == 1
    # Equal contents, other objects: another library, computed on its own.
    assert memo.hits(same, exports) == {"a"} and memo.computed == 2
    assert memo.hits(refs, frozenset({"b"})) == {"b"} and memo.computed == 3


def test_a_shared_library_is_bound_once_per_scan(tmp_path: Path, target: Target,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    memos: list[BindMemo] = []
    init = BindMemo.__init__

    def remember(self: BindMemo) -> None:
        init(self)
        memos.append(self)

    monkeypatch.setattr(BindMemo, "__init__", remember)
    dep = so(soname="libdep.so", exports=["dep"], undefined=["malloc", "memcpy"],
             relocate=True)
    members: dict[str, bytes | str] = {"lib/libdep.so": dep}
    for name in ("a", "b", "c"):
        members[f"python/{name}.abi3.so"] = ext(name, needed=["libdep.so"], undefined=["dep"],
                                                relocate=True)
    three = run(tmp_path / "three", members, target)
    assert all(outcome(three, n).ok for n in "abc")
    one = run(tmp_path / "one", {"lib/libdep.so": dep,
                                 "python/a.abi3.so": members["python/a.abi3.so"]}, target)
    assert outcome(one, "a").ok
    assert len(memos) == 2  # one per scan
    # One extension: its references and libdep's, each against the k export sets of
    # its scope. Three: each extension's k, and libdep's k once, plus libdep's against
    # the exports of the two other extensions (without the memo: 6k).
    k = memos[1].computed // 2
    assert k > 1 and memos[0].computed == 3 * k + k + 2
