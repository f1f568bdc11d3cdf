"""The built site, opened in headless Chromium: the tutorial and the API reference
render their headings, and the API page shows names autodoc read from the package.

Screenshots go to ``build/test-artifacts/docs/`` (git-ignored); their paths are
printed at the end of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.site import built_site, save_screenshot, sphinx_missing
from tests.rig.browser import launch_browser, new_page, unavailable_reason

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site() -> Path:
    reason = sphinx_missing()
    if reason:
        pytest.skip(reason)
    return built_site()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with launch_browser() as launched:
        yield launched


def _open(browser: object, page_path: Path, shot: str) -> object:
    page = new_page(browser)  # type: ignore[arg-type]
    page.goto(page_path.as_uri())
    save_screenshot(page, shot)
    return page


def test_tutorial_page_renders(site: Path, browser: object) -> None:
    page = _open(browser, site / "tutorial.html", "docs-tutorial")
    assert (
        page.locator("div.body h1").first.inner_text().startswith("Tutorial: a chat in 10 minutes")
    )
    section_titles = page.locator("div.body h2").all_inner_texts()
    assert any("The consumer" in title for title in section_titles)
    assert page.locator("div.highlight-python").count() >= 5  # the code, highlighted
    assert "class ChatConsumer(ProtocolHubConsumer)" in page.locator("body").inner_text()


def test_api_reference_shows_autodoc_names(site: Path, browser: object) -> None:
    page = _open(browser, site / "ref" / "api.html", "docs-api-reference")
    assert page.locator("div.body h1").first.inner_text().startswith("API reference")
    for object_id in [
        "wshub_channels.HubConsumer",
        "wshub_channels.get_hub",
        "wshub_channels.Hub.broadcast_to_room",
        "wshub_channels.layers.RedisHubLayer",
        "wshub_channels.testing.HubCommunicator",
        "wshub_channels.auth.make_token",
        "wshub_channels.errors.ClientNotFound",
    ]:
        signature = page.locator(f"dt[id='{object_id}']")
        assert signature.count() == 1 and signature.is_visible(), object_id
    # A docstring made it onto the page, not only the name.
    doc = page.locator("dt[id='wshub_channels.HubConsumer'] + dd").inner_text()
    assert len(doc.split()) > 5


def test_index_lists_every_section(site: Path, browser: object) -> None:
    page = _open(browser, site / "index.html", "docs-index")
    links = page.locator("div.body li.toctree-l1 > a").all_inner_texts()
    for title in ["Tutorial", "Topic guides", "Reference", "Benchmark", "Reliability"]:
        assert any(text.startswith(title) for text in links), (title, links)
