"""Sphinx configuration: the wshub_channels documentation, built from ``docs/``.

Pages are Markdown (myst-parser); the theme is Sphinx's built-in alabaster, so a
build needs no network. Django is set up before autodoc imports the package, with
the test suite's settings (an in-memory layer, no database work at import).
"""

from __future__ import annotations

import logging
import os
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

project = "wshub_channels"
author = "wshub_channels developers"
copyright = "wshub_channels developers"
try:
    release = metadata.version("wshub-channels")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    release = "0+unknown"
version = ".".join(release.split(".")[:2])

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

myst_heading_anchors = 3  # GitHub-style #anchors for headings down to ###
myst_enable_extensions = ["colon_fence"]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "alabaster"
html_title = f"wshub_channels {release}"
html_theme_options = {
    "description": "A production WebSocket hub for Django Channels",
    "fixed_sidebar": True,
}


class _EmptyGlobFilter(logging.Filter):
    """Each toctree ends in a glob that picks up pages added later, so a new page needs
    no toctree edit to pass ``-W``. While there is none, that glob matching nothing is
    not an error (Sphinx gives this warning no type, so ``suppress_warnings`` cannot)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "didn't match any documents" not in str(record.msg)


def setup(app: object) -> None:
    logging.getLogger("sphinx.sphinx.directives.other").addFilter(_EmptyGlobFilter())
