"""Sphinx configuration for the abiscan documentation.

Needs only what ``pip install '.[docs]'`` installs (sphinx, myst-parser) and
abiscan itself. Build with:

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import abiscan

project = "abiscan"
author = "the abiscan authors"
copyright = "the abiscan authors, Apache-2.0"
version = abiscan.__version__
release = abiscan.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "examples", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "alabaster"
html_title = f"abiscan {release}"
html_static_path: list[str] = []
