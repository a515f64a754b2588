"""What the benchmarks share: running abiscan as an installed copy would run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["installed_env"]


def installed_env() -> dict[str, str]:
    """The environment of an installed abiscan: its bytecode compiled, as pip
    compiles it at install time. (A checkout run with PYTHONDONTWRITEBYTECODE,
    as some CI and sandboxes set it, compiles every module from source at each
    start, in the scan and in each of its workers: some 300 ms of CPU that no
    installed copy pays.)"""
    import elftools
    import packaging

    import abiscan

    dirs = [Path(m.__file__ or "").parent for m in (abiscan, elftools, packaging)]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *map(str, dirs)],
                   stdout=subprocess.DEVNULL, check=False)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env
