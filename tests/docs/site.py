"""The built documentation site, for the tests that open it.

:func:`built_site` returns the HTML build of ``docs/`` (what ``./dev docs``
writes), building it with this interpreter's Sphinx, warnings as errors, when
it is missing or older than a page, ``docs/conf.py`` or the package's sources.
:func:`save_screenshot` keeps a page's picture under ``build/test-artifacts/docs/``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.docs.blocks import DOCS, README, REPO_ROOT

__all__ = ["ARTIFACTS", "SAVED", "SITE", "built_site", "save_screenshot", "sphinx_missing"]

SITE = REPO_ROOT / "build" / "docs" / "html"
ARTIFACTS = REPO_ROOT / "build" / "test-artifacts" / "docs"
#: Screenshots saved in this run, listed at its end (tests/docs/conftest.py).
SAVED: list[Path] = []


def save_screenshot(page: Any, name: str) -> Path:
    """Save a full-page PNG of a playwright ``page`` as ``ARTIFACTS/<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SAVED.append(path)
    print(f"screenshot saved: {path}")
    return path


def sphinx_missing() -> str | None:
    """None when Sphinx and myst-parser import; else what is missing."""
    try:
        import myst_parser  # noqa: F401
        import sphinx  # noqa: F401
    except ImportError as exc:
        return f"the docs extra is not installed ({exc.name}): pip install -e '.[docs]'"
    return None


def _newest_source() -> float:
    sources = [README, *DOCS.rglob("*"), *(REPO_ROOT / "wshub_channels").rglob("*.py")]
    sources.append(REPO_ROOT / "benchmarks" / "RESULTS.md")
    return max(p.stat().st_mtime for p in sources if p.is_file())


def built_site() -> Path:
    """The site's directory, fresh; raises ``RuntimeError`` with Sphinx's output if the
    build fails."""
    index = SITE / "index.html"
    if index.exists() and index.stat().st_mtime >= _newest_source():
        return SITE
    argv = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    done = subprocess.run(
        [*argv, str(DOCS), str(SITE)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"the docs build failed:\n{done.stdout}\n{done.stderr}")
    index.touch()
    return SITE
