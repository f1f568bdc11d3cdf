"""The Python examples of the token auth and history guides run as written.

These examples lived in the README until the guides moved into ``docs/``; the
checks stayed. :func:`~tests.docs.blocks.python_blocks` takes the fenced
``python`` blocks of one section of a page; each test runs them with the names
the prose gives them (``request``: a logged-in request) and then checks what
they promise. ``tests/docs/test_blocks.py`` runs every other block.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import import_module
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import login, logout
from django.contrib.auth.models import User
from django.test import RequestFactory, override_settings

from tests.asyncdb import async_db  # noqa: F401  (fixture)
from tests.docs.blocks import DOCS, python_blocks
from wshub_channels import get_hub
from wshub_channels.errors import TokenRevoked
from wshub_channels.testing import scaled

pytestmark = pytest.mark.unit

SECURITY = DOCS / "topics" / "security.md"
HISTORY = DOCS / "topics" / "history.md"
TOKEN_AUTH = "## Token auth"
HISTORY_SECTION = "# History and recovery"


def test_python_blocks_reads_one_section() -> None:
    blocks = python_blocks(SECURITY, TOKEN_AUTH)
    assert len(blocks) == 1 and "token = make_token(" in blocks[0]
    assert all("allow_origins" not in b for b in blocks)  # the section above is not read


@pytest.fixture
def cache_sessions() -> Iterator[None]:
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.cache"):
        yield


@pytest.mark.usefixtures("async_db")
async def test_token_auth_example(cache_sessions: None) -> None:
    """The example makes a token a Chat consumer admits, which logout then revokes."""
    from asgiref.sync import sync_to_async

    user = await User.objects.acreate_user("readme", password="pw")
    request = RequestFactory().get("/")
    request.session = import_module(settings.SESSION_ENGINE).SessionStore()
    request.user = user  # as AuthenticationMiddleware leaves it
    await sync_to_async(login)(request, user, "django.contrib.auth.backends.ModelBackend")
    namespace: dict[str, Any] = {"request": request}
    for block in python_blocks(SECURITY, TOKEN_AUTH):
        await sync_to_async(exec)(block, namespace)
    token, chat = namespace["token"], namespace["Chat"]

    await get_hub().start()
    comm = WebsocketCommunicator(
        chat.as_asgi(), "/ws/", subprotocols=["wshub.v1", f"wshub.token.{token}"]
    )
    assert await comm.connect(scaled(2)) == (True, "wshub.v1")
    assert get_hub().get_client_by_user_id(str(user.pk)) is not None
    await comm.disconnect()

    await sync_to_async(logout)(request)
    with pytest.raises(TokenRevoked):
        await sync_to_async(namespace["check_token"])(token)
    replay = WebsocketCommunicator(
        chat.as_asgi(), "/ws/", subprotocols=["wshub.v1", f"wshub.token.{token}"]
    )
    assert (await replay.connect(scaled(2)))[0]
    closed = await replay.receive_output(scaled(2))
    assert closed == {"type": "websocket.close", "code": 4401}, json.dumps(closed)


async def test_history_example() -> None:
    """A client that sends its position gets what it missed; one from a lost epoch reloads."""
    blocks = python_blocks(HISTORY, HISTORY_SECTION)
    namespace: dict[str, Any] = {}
    exec(blocks[0], namespace)
    with override_settings(WSHUB=namespace["WSHUB"]):
        exec(blocks[1], namespace)
        chat, last_messages = namespace["Chat"], namespace["last_messages"]
        hub = get_hub()
        await hub.start()
        for n in range(3):
            await hub.broadcast_to_room("chat.lobby", f"m{n}")
        assert (await last_messages())[-3:] == ["m0", "m1", "m2"]
        top = (await hub.history("chat.lobby", limit=0)).position
        back = WebsocketCommunicator(
            chat.as_asgi(), f"/ws/?offset={top.offset - 2}&epoch={top.epoch}"
        )
        assert (await back.connect(scaled(2)))[0]
        assert [await back.receive_from(scaled(2)) for _ in range(2)] == ["m1", "m2"]
        assert await back.receive_nothing(scaled(0.2))
        lost = WebsocketCommunicator(chat.as_asgi(), "/ws/?offset=5&epoch=gone")
        assert (await lost.connect(scaled(2)))[0]
        assert json.loads(await lost.receive_from(scaled(2))) == {"reload": True}
        await back.disconnect()
        await lost.disconnect()
