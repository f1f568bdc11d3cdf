"""The documentation's pages hold together: links resolve, and the reference pages
say what the package does.

Every relative link in README.md and in the pages under ``docs/`` names a file
that exists, and every ``#anchor`` matches a heading of its target (GitHub's
slugs, which the Sphinx build's ``myst_heading_anchors`` follows). The settings
reference lists every ``WSHUB``, ``CONFIG`` and ``LIMITS`` key with the
package's own default; the built API reference documents every public export.
"""

from __future__ import annotations

import dataclasses
import re
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest

from tests.docs.blocks import DOCS, README, doc_files, headings, links, section_text, slug
from tests.docs.site import built_site, sphinx_missing
from wshub_channels.conf import DEFAULTS
from wshub_channels.config import Config, Limits

pytestmark = pytest.mark.unit

SETTINGS = DOCS / "ref" / "settings.md"


def _broken_links(path: Path) -> list[str]:
    broken = []
    for line, target in links(path):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{path.name}:{line}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in headings(dest):
            broken.append(f"{path.name}:{line}: {target} (no heading #{anchor})")
    return broken


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.name)
def test_relative_links_and_anchors_resolve(path: Path) -> None:
    """Every relative link names a file that exists, and every #anchor a heading in it."""
    assert not _broken_links(path)


def test_link_check_finds_a_broken_link(tmp_path: Path) -> None:
    """A link to a missing file or a missing heading is reported."""
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other page\n\n## Real `heading`, here\n")
    page.write_text(
        "# Page\n[ok](other.md#real-heading-here) [self](#page) [gone](missing.md) "
        "[bad](other.md#nope)\n```\n[in code](ignored.md)\n```\n"
    )
    assert _broken_links(page) == [
        "page.md:2: missing.md (no such file)",
        "page.md:2: other.md#nope (no heading #nope)",
    ]


def test_slug_follows_github() -> None:
    assert slug("Settings (`WSHUB`)") == "settings-wshub"
    assert slug("What each ASGI server allows") == "what-each-asgi-server-allows"
    assert slug("Client protocol v1 and `wshub.js`") == "client-protocol-v1-and-wshubjs"


def _table(heading: str) -> dict[str, tuple[str, str]]:
    """key -> (type, default) from the table under ``heading`` of the settings page."""
    rows: dict[str, tuple[str, str]] = {}
    for line in section_text(SETTINGS, heading).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"`[A-Za-z_]+`", cells[0]):
            rows[cells[0].strip("`")] = (cells[1], cells[2].strip("`"))
    return rows


def _value(cell: str) -> Any:
    if cell == "required":
        return dataclasses.MISSING
    return eval(cell, {})  # a Python literal or a product such as 512 * 1024


def test_settings_reference_lists_every_wshub_key_with_its_default() -> None:
    table = _table("## `WSHUB`")
    assert set(table) == set(DEFAULTS)
    for key, (_, default) in table.items():
        assert _value(default) == DEFAULTS[key], key


@pytest.mark.parametrize(("heading", "cls"), [("## `CONFIG`", Config), ("## `LIMITS`", Limits)])
def test_settings_reference_lists_every_field_with_its_default(heading: str, cls: type) -> None:
    table = _table(heading)
    fields = {f.name: f.default for f in dataclasses.fields(cls)}
    assert set(table) == set(fields)
    for key, (_, default) in table.items():
        assert _value(default) == fields[key], key


def test_settings_reference_history_rule() -> None:
    """``size`` is required and ``ttl`` defaults as ``HistoryRules.parse`` fills it in."""
    from wshub_channels.config import HistoryRules

    table = _table("## `HISTORY`")
    assert set(table) == {"size", "ttl"}
    rule = HistoryRules.parse({"room": {"size": 1}}).rule_for("room")
    assert rule is not None and rule.ttl == _value(table["ttl"][1])
    with pytest.raises(ValueError):
        HistoryRules.parse({"room": {"ttl": 1}})


MODULES = [
    "wshub_channels.layers",
    "wshub_channels.testing",
    "wshub_channels.auth",
    "wshub_channels.errors",
    "wshub_channels.signals",
    "wshub_channels.middleware",
    "wshub_channels.metrics",
    "wshub_channels.asgi",
]


def test_api_reference_documents_every_public_export() -> None:
    """The built API page has an entry for every name in each module's ``__all__``; the
    root's errors are documented once, under ``wshub_channels.errors``."""
    reason = sphinx_missing()
    if reason:
        pytest.skip(reason)
    html = (built_site() / "ref" / "api.html").read_text()
    ids = set(re.findall(r'<dt[^>]* id="(wshub_channels[\w.]*)"', html))
    errors = set(import_module("wshub_channels.errors").__all__)
    wanted = {f"wshub_channels.{n}" for n in import_module("wshub_channels").__all__}
    wanted -= {f"wshub_channels.{n}" for n in errors}
    for module in MODULES:
        wanted |= {f"{module}.{n}" for n in import_module(module).__all__}
    missing = sorted(wanted - ids)
    assert not missing, f"the API reference does not document {missing}"


def test_readme_is_not_among_broken_pages() -> None:
    """README.md is one of the pages checked, so the checks above cover it."""
    assert README in doc_files()
