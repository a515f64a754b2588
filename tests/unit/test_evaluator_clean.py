"""Evaluator rules that keep clean real stacks decided (issue 9, clean-stack unknowns).

Each test pins one mechanism on a synthetic layer; the real packages it comes from
are named in the test.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from pathlib import Path

import abiscan
from abiscan.report.model import Report
from abiscan.target.profiles import custom_target

from helpers import write_zip


def scan(tmp_path: Path, members: Mapping[str, str], imports: tuple[str, ...]) -> Report:
    layer = write_zip(tmp_path / "layer.zip", members)
    return abiscan.scan([layer], target=custom_target("3.12", "x86_64", "2.34"),
                        imports=list(imports))


def dist(name: str, files: Mapping[str, str], requires: tuple[str, ...] = ()) -> dict[str, str]:
    """A dist-info whose RECORD lists ``files`` with their real sizes and hashes."""
    rows = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        rows.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    info = f"{name}-1.0.dist-info"
    rows.append(f"{info}/RECORD,,")
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires)
    return {
        **{f"python/{p}": t for p, t in files.items()},
        f"python/{info}/METADATA": meta,
        f"python/{info}/RECORD": "\n".join(rows) + "\n",
    }


# -- a dispatch whose last branch only raises ----------------------------------------------

# awswrangler.pandas: `if fmt == PANDAS: from pandas import * / elif fmt == MODIN: from
# modin.pandas import * / else: raise ImportError(...)`, modin an extra.
_DISPATCH = ("import os\nFMT = os.environ.get('FMT') or os.getcwd()\n"
             "if FMT == 'plain':\n    import okdep\nelif FMT == 'fast':\n    import absentdep\n"
             "else:\n    raise ImportError(f'Unknown format {FMT}')\n")


def test_a_dispatch_whose_else_only_raises_takes_the_side_that_loads(tmp_path: Path) -> None:
    members = {**dist("disp", {"disp.py": _DISPATCH}, ("okdep", 'absentdep; extra == "fast"')),
               **dist("okdep", {"okdep.py": ""})}
    m = scan(tmp_path, members, ("disp",)).module("disp")
    assert m is not None and (m.outcome, m.confidence) == ("ok", "likely"), m.reason
    assert {(a.line, a.taken) for a in m.assumptions} == {(3, True), (5, True)}


def test_a_check_that_only_raises_leaves_the_failure_of_the_other_side(tmp_path: Path) -> None:
    # Both sides fail: the import fails whichever runs; the error is the import's, not the
    # consistency check's.
    source = ("import os\nFMT = os.getcwd()\nif FMT == 'fast':\n    import absentdep\n"
              "else:\n    raise ImportError(f'Unknown format {FMT}')\n")
    m = scan(tmp_path, dist("disp", {"disp.py": source}, ("absentdep",)), ("disp",)).module("disp")
    assert m is not None and (m.outcome, m.confidence) == ("error", "likely"), m.reason
    assert str(m.error) == "ModuleNotFoundError: No module named 'absentdep'"
    assert [(a.line, a.taken) for a in m.assumptions] == [(3, True)]
