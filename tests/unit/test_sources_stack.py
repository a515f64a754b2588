from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from abiscan.inputs.sources import (
    DirectorySource,
    InputKind,
    SourceError,
    ZipSource,
    normalise_member_name,
    open_source,
)
from abiscan.inputs.stack import build_stack
from abiscan.target.profiles import builtin_target

from helpers import write_tree, write_zip

T312 = builtin_target("python3.12")


def test_layers_overlay_in_order_with_provenance(tmp_path: Path) -> None:
    one = write_zip(tmp_path / "one.zip", {"python/a.py": "1", "python/only1.py": "x",
                                           "python/pkg/__init__.py": ""})
    two = write_zip(tmp_path / "two.zip", {"python/a.py": "22", "python/pkg/m.py": ""})
    func = write_zip(tmp_path / "f.zip", {"handler.py": ""})
    wheel = write_zip(tmp_path / "w-1.0-py3-none-any.whl", {
        "w/__init__.py": "", "w-1.0.data/purelib/extra.py": "", "w-1.0.data/scripts/tool": ""})
    sources = [open_source(one, InputKind.LAYER), open_source(two, InputKind.LAYER),
               open_source(func, InputKind.FUNCTION), open_source(wheel, InputKind.LAYER)]
    stack = build_stack(T312, sources)
    a = stack.file("/opt/python/a.py")
    assert a is not None and stack.read("/opt/python/a.py") == b"22"
    assert a.origin.source == str(two) and a.origin.source_path == "python/a.py"
    assert [p.source for p in a.replaced] == [str(one)]
    assert stack.is_file("/opt/python/only1.py")
    assert stack.listdir("/opt/python/pkg") == ["__init__.py", "m.py"]
    assert stack.is_file("/var/task/handler.py")
    sp = T312.site_packages
    assert stack.is_file(f"{sp}/w/__init__.py") and stack.is_file(f"{sp}/extra.py")
    assert not stack.exists(f"{sp}/tool")
    assert sources[3].kind is InputKind.WHEEL


def test_directory_source_reads_in_place(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "layer", {"python/x.py": "print()", "python/d/y.py": ""})
    (root / "python" / "link.py").symlink_to("x.py")
    src = DirectorySource(root, InputKind.LAYER)
    kinds = {e.path: e.kind for e in src.entries()}
    assert kinds["python/link.py"] == "symlink" and kinds["python/d"] == "dir"
    stack = build_stack(T312, [src])
    assert stack.is_file("/opt/python/link.py")
    assert stack.read("/opt/python/link.py") == b"print()"


def test_dangling_and_looping_links_are_not_files(tmp_path: Path) -> None:
    root = tmp_path / "layer" / "python"
    root.mkdir(parents=True)
    (root / "gone.py").symlink_to("missing.py")
    (root / "loop1.py").symlink_to("loop2.py")
    (root / "loop2.py").symlink_to("loop1.py")
    stack = build_stack(T312, [DirectorySource(tmp_path / "layer", InputKind.LAYER)])
    assert not stack.is_file("/opt/python/gone.py")
    assert not stack.is_file("/opt/python/loop1.py")


@pytest.mark.parametrize(
    ("raw", "path", "unsafe"),
    [("python/a.py", "python/a.py", None), ("/etc/passwd", "etc/passwd", "absolute path"),
     ("python/../../x", "x", "'..' component leaves the tree"), ("./a//b", "a/b", None),
     ("..", None, "'..' component leaves the tree"),
     # Names that look normal but are not (the fast path must send them on).
     ("python/./a.py", "python/a.py", None), ("python/a/", "python/a", None),
     ("python//a.py", "python/a.py", None), ("a\\b.py", "a/b.py", None),
     ("c:/x", "x", "absolute path"), ("a:b", "a:b", "absolute path"),
     ("", None, "empty name"), (".hidden", ".hidden", None)],
)
def test_member_names_are_normalised(raw: str, path: str | None, unsafe: str | None) -> None:
    assert normalise_member_name(raw) == (path, unsafe)


def test_corrupt_and_truncated_zips_name_the_file(tmp_path: Path) -> None:
    good = write_zip(tmp_path / "good.zip", {"python/a.py": bytes(range(256)) * 8})
    data = good.read_bytes()
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match="truncated.zip: not a readable zip file"):
        ZipSource(truncated, InputKind.LAYER)
    garbage = tmp_path / "garbage.zip"
    garbage.write_bytes(b"this is not a zip at all")
    with pytest.raises(SourceError, match="garbage.zip"):
        ZipSource(garbage, InputKind.LAYER)
    # A member whose compressed bytes are damaged: listing works, reading names the member.
    raw = bytearray(data)
    offset = raw.index(b"python/a.py") + len("python/a.py")
    raw[offset + 5: offset + 15] = b"\xff" * 10
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(raw))
    src = ZipSource(damaged, InputKind.LAYER)
    (entry,) = [e for e in src.entries() if e.path == "python/a.py"]
    with pytest.raises(SourceError, match="damaged.zip: python/a.py"):
        src.read(entry)


def test_member_that_inflates_past_the_limit(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "bomb.zip", {"python/big.py": b"\0" * 100_000})
    src = ZipSource(z, InputKind.LAYER)
    (entry,) = src.entries()
    with pytest.raises(SourceError, match="over the limit"):
        src.read(entry, limit=1000)


def test_non_utf8_member_names(tmp_path: Path) -> None:
    z = tmp_path / "latin.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("python/caf\xe9.py", b"")  # written as cp437/utf-8 by zipfile
    raw = z.read_bytes().replace("caf\xe9".encode(), b"caf\xe9\xff"[:5])
    z.write_bytes(raw)
    # Whatever the bytes, the zip either reads (names decoded as cp437) or fails naming the file.
    try:
        src = ZipSource(z, InputKind.LAYER)
    except SourceError as exc:
        assert "latin.zip" in str(exc)
    else:
        assert all(e.path.startswith("python/") for e in src.entries())


def test_flagged_utf8_name_that_is_not_utf8(tmp_path: Path) -> None:
    z = tmp_path / "bad-utf8.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("python/caf\u00e9.py", b"")  # non-ASCII: zipfile sets the UTF-8 flag
    raw = z.read_bytes().replace("caf\u00e9".encode(), b"caf\xff\xfe")
    z.write_bytes(raw)
    with pytest.raises(SourceError, match="bad-utf8.zip: a member name is flagged UTF-8"):
        ZipSource(z, InputKind.LAYER)


def test_unreadable_directory_is_reported_and_the_rest_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    root = write_tree(tmp_path / "layer", {"python/ok.py": "", "python/secret/x.py": ""})
    real_scandir = os.scandir

    def scandir(path: object) -> object:
        if str(path).endswith("secret"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)  # type: ignore[call-overload]

    # Root ignores permission bits, so a refused listing is simulated.
    monkeypatch.setattr(os, "scandir", scandir)
    src = DirectorySource(root, InputKind.LAYER)
    assert [str(p) for p in src.problems] == [
        f"{root}: python/secret: cannot list directory: Permission denied"]
    assert "python/ok.py" in {e.path for e in src.entries()}


def test_missing_input(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="nope.zip: no such file or directory"):
        open_source(tmp_path / "nope.zip", InputKind.LAYER)


def _chain_layer(tmp_path: Path, links: int) -> Path:
    """A layer whose python/l0 -> l1 -> ... -> l<links> -> real (a directory with f.py)."""
    root = tmp_path / "layer" / "python"
    (root / "real").mkdir(parents=True)
    (root / "real" / "f.py").write_text("")
    for i in range(links):
        (root / f"l{i}").symlink_to(f"l{i + 1}")
    (root / f"l{links}").symlink_to("real")
    return tmp_path / "layer"


def test_remembered_lookups_do_not_depend_on_their_order(tmp_path: Path) -> None:
    # Resolved paths are remembered with the steps they took: a path first met
    # deep inside a long chain of links must answer as if asked on its own, and
    # the other way round. The chain crosses the ELOOP limit part of the way.
    layer = _chain_layer(tmp_path, 45)
    paths = [f"/opt/python/l{i}/f.py" for i in range(46)]
    answers = []
    for order in (paths, paths[::-1]):
        stack = build_stack(T312, [DirectorySource(layer, InputKind.LAYER)])
        answers.append({p: stack.is_file(p) for p in order})
    assert answers[0] == answers[1]
    assert not answers[0]["/opt/python/l0/f.py"] and answers[0]["/opt/python/l45/f.py"]
    # Well inside the limit, the kernel agrees.
    assert os.path.isfile(layer / "python" / "l20" / "f.py") == answers[0]["/opt/python/l20/f.py"]


def test_a_directory_is_resolved_once_for_all_its_names(tmp_path: Path) -> None:
    layer = write_zip(tmp_path / "l.zip", {f"python/pkg/sub/m{i}.py": "" for i in range(5)})
    stack = build_stack(T312, [open_source(layer, InputKind.LAYER)])
    walked: list[str] = []
    uncached = stack._walk_uncached

    def counting(path: str, depth: int) -> tuple[str | None, int] | None:
        walked.append(path)
        return uncached(path, depth)

    stack._walk_uncached = counting  # type: ignore[method-assign]
    assert stack.is_file("/opt/python/pkg/sub/m0.py")
    first = len(walked)
    names = [f"/opt/python/pkg/sub/m{i}.py" for i in range(1, 5)] + ["/opt/python/pkg/sub/x.py"]
    assert [stack.is_file(p) for p in names] == [True] * 4 + [False]
    assert first > 1 and walked[first:] == names  # one step each: the directory is known
