"""README.md: short, with a quickstart that serves a chat as written.

The README is the front page: at most 200 lines, a quickstart of at most 20
lines of code, the two commands of ``./dev``, and the supported-versions table
that ``docs/versions.md`` includes. The quickstart's blocks run in one
namespace, and the ASGI application they build carries a message between two
WebSocket clients.
"""

from __future__ import annotations

import re

import pytest
from channels.testing import WebsocketCommunicator

from tests.docs.blocks import DOCS, README, REPO_ROOT, python_blocks, section_text
from wshub_channels.testing import scaled

pytestmark = pytest.mark.unit

QUICKSTART = "## Quickstart"


def test_readme_is_at_most_200_lines() -> None:
    assert len(README.read_text().splitlines()) <= 200


def test_quickstart_is_at_most_20_lines_of_code() -> None:
    code = [line for block in python_blocks(README, QUICKSTART) for line in block.splitlines()]
    assert code and len(code) <= 20


def test_readme_keeps_the_two_commands_and_their_subcommands() -> None:
    """``./dev demo`` and ``./dev test`` are named as they are, and exist in ./dev."""
    text = README.read_text()
    dev = (REPO_ROOT / "dev").read_text()
    for command in ("demo", "test"):
        assert re.search(rf"^\./dev {command}\s", text, re.M)
        assert re.search(rf"^  {command}\)$", dev, re.M)


def test_versions_table_is_between_its_markers_and_included() -> None:
    text = README.read_text()
    table = text.split("<!-- versions:begin -->")[1].split("<!-- versions:end -->")[0]
    assert "| Python | Django | channels |" in table
    assert "<!-- versions:begin -->" in section_text(README, "## Supported versions")
    assert ":start-after: <!-- versions:begin -->" in (DOCS / "versions.md").read_text()


async def test_quickstart_serves_a_chat() -> None:
    """The quickstart's settings are valid, and its application relays a message from
    one client to the other (not back to the sender)."""
    settings_block, consumer_block, asgi_block = python_blocks(README, QUICKSTART)
    namespace: dict[str, object] = {}
    exec(settings_block, namespace)
    layers = namespace["CHANNEL_LAYERS"]
    assert isinstance(layers, dict)
    assert layers["default"]["BACKEND"] == "wshub_channels.layers.InMemoryHubLayer"
    exec(consumer_block, namespace)
    exec(asgi_block, namespace)
    application = namespace["application"]

    alice = WebsocketCommunicator(application, "/ws/")
    bob = WebsocketCommunicator(application, "/ws/")
    assert (await alice.connect(scaled(2)))[0]
    assert (await bob.connect(scaled(2)))[0]
    await alice.send_to(text_data="hello")
    assert await bob.receive_from(scaled(2)) == "hello"
    assert await alice.receive_nothing(scaled(0.2))
    await alice.disconnect()
    await bob.disconnect()
