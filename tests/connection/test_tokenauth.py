"""Token auth in the handshake, in process: admitted, refused with its code, never counted.

The consumers run under ``WebsocketCommunicator`` on a private in-memory hub layer;
users live in the test database, login sessions in the cache session store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from importlib import import_module
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.models import AnonymousUser, User
from django.test import RequestFactory, override_settings

from tests.asyncdb import async_db  # noqa: F401  (fixture)
from tests.inprocess import WAIT, private_layer
from tests.rig.timing import async_wait_until
from wshub_channels import AuthenticationFailed, HubConsumer, get_hub
from wshub_channels.auth import TokenAuth, make_token
from wshub_channels.hub.hub import Hub
from wshub_channels.testing import scaled

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("async_db")]

ALIAS = "wshub-test-tokenauth"
HEADER_ONLY = TokenAuth(first_message=False)


class Tokened(HubConsumer):
    """Says who it is once admitted; echoes frames with the user id."""

    channel_layer_alias = ALIAS
    token_auth = TokenAuth(timeout=scaled(0.5))

    async def before_connect(self) -> None:
        if b"deny" in self.scope["query_string"]:
            raise AuthenticationFailed("denied by the app")

    async def on_connect(self) -> None:
        user = self.scope["user"]
        await self.send_json({"id": self.id, "user": self.user_id, "name": user.username})

    async def on_message(self, msg: Any) -> None:
        await self.send_text(f"{self.user_id}:{msg.text()}")


class HeaderOnly(Tokened):
    token_auth = HEADER_ONLY


class QueryToo(Tokened):
    token_auth = TokenAuth(first_message=False, query_param="token")


@pytest.fixture(autouse=True)
def cache_sessions() -> Iterator[None]:
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.cache"):
        yield


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    with override_settings(WSHUB={"METRICS": "wshub_channels.metrics.DebugMetrics"}):
        async with private_layer(ALIAS):
            hub = get_hub(ALIAS)
            await hub.start()
            yield hub


@pytest.fixture
async def user() -> User:
    return await User.objects.acreate_user("ada", password="pw")


def communicator(
    consumer: type[HubConsumer], token: str | None = None, query: str = "", **scope: Any
) -> WebsocketCommunicator:
    offered = ["wshub.v1"] + ([f"wshub.token.{token}"] if token is not None else [])
    comm = WebsocketCommunicator(consumer.as_asgi(), f"/ws/?{query}", subprotocols=offered)
    comm.scope.update(scope)
    return comm


def refusals(hub: Hub) -> dict[str, int]:
    stats = hub.metrics.stats()  # type: ignore[attr-defined]
    return {k: v for k, v in stats.items() if k.startswith("refused_")}


async def closed_with(comm: WebsocketCommunicator) -> int:
    """The close code right after an accept, with no frame in between."""
    out = await comm.receive_output(WAIT)
    assert out["type"] == "websocket.close", out
    return int(out["code"])


def assert_nobody(hub: Hub) -> None:
    assert hub.client_count() == 0
    assert hub.connections.registry.pending == 0
    assert hub.metrics.stats().get("connections_total", 0) == 0  # type: ignore[attr-defined]


async def test_a_header_token_admits_its_user(hub: Hub, user: User) -> None:
    """wshub.v1 is selected (the token never echoed), the scope and hub know the user."""
    comm = communicator(Tokened, make_token(user))
    assert await comm.connect(WAIT) == (True, "wshub.v1")
    hello = json.loads(await comm.receive_from(WAIT))
    assert hello["user"] == str(user.pk) and hello["name"] == "ada"
    client = hub.get_client(hello["id"])
    assert client is not None and hub.get_client_by_user_id(str(user.pk)) is client
    assert client.scope["subprotocols"] == ["wshub.v1"]  # type: ignore[attr-defined]
    await comm.disconnect()


@pytest.mark.parametrize(
    ("token", "code", "reason"),
    [
        ("expired", 4419, "TokenExpired"),
        ("forged", 4401, "TokenInvalid"),
        ("missing", 4401, "TokenMissing"),
    ],
)
async def test_a_refused_header_token_is_closed_with_its_code(
    hub: Hub, user: User, token: str, code: int, reason: str
) -> None:
    """Accepted then closed at once with 4419 or 4401, counted, holding no slot."""
    from django.core import signing

    from wshub_channels.auth import SALT, read_token

    claims = read_token(make_token(user))
    tokens = {
        "expired": signing.Signer(salt=SALT, sep=".").sign_object(
            {"u": claims.user_id, "x": 1, "h": claims.digest}
        ),
        "forged": make_token(user)[:-3] + "abc",
        "missing": None,
    }
    comm = communicator(HeaderOnly, tokens[token])
    assert await comm.connect(WAIT) == (True, "wshub.v1")
    assert await closed_with(comm) == code
    await comm.wait(WAIT)  # the consumer ended by itself
    assert_nobody(hub)
    assert refusals(hub) == {f"refused_{reason}": 1}


async def test_a_token_replayed_after_logout_is_refused(hub: Hub, user: User) -> None:
    request = RequestFactory().get("/")
    request.session = import_module(settings.SESSION_ENGINE).SessionStore()
    request.user = user

    def mint_then_logout() -> str:
        from django.contrib.auth import login

        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return make_token(user, session=request.session)

    from asgiref.sync import sync_to_async

    token = await sync_to_async(mint_then_logout)()
    comm = communicator(Tokened, token)
    assert (await comm.connect(WAIT))[0]
    await comm.receive_from(WAIT)
    await comm.disconnect()
    await sync_to_async(logout)(request)
    replay = communicator(Tokened, token)
    assert await replay.connect(WAIT) == (True, "wshub.v1")
    assert await closed_with(replay) == 4401
    assert refusals(hub) == {"refused_TokenRevoked": 1}
    assert hub.client_count() == 0


async def test_a_first_message_token_admits_and_later_frames_follow(hub: Hub, user: User) -> None:
    """Accepted, unregistered until the auth frame; frames sent right after it are
    handled once admitted, in order."""
    comm = communicator(Tokened)
    assert await comm.connect(WAIT) == (True, "wshub.v1")
    await asyncio.sleep(scaled(0.05))
    assert hub.client_count() == 0 and hub.connections.registry.pending == 0
    await comm.send_to(text_data=json.dumps({"t": "auth", "token": make_token(user)}))
    await comm.send_to(text_data="one")
    await comm.send_to(text_data="two")
    hello = json.loads(await comm.receive_from(WAIT))
    assert hello["user"] == str(user.pk)
    assert await comm.receive_from(WAIT) == f"{user.pk}:one"
    assert await comm.receive_from(WAIT) == f"{user.pk}:two"
    assert hub.client_count() == 1
    await comm.disconnect()


@pytest.mark.parametrize(
    ("frame", "code", "reason"),
    [
        ('{"t": "auth", "token": "junk.junk"}', 4401, "TokenInvalid"),
        ('{"t": "join", "room": "r"}', 4401, "TokenMissing"),
        ("not json", 4401, "TokenMissing"),
        ('{"t": "auth", "token": ""}', 4401, "TokenMissing"),
        ("[" * 3000, 4401, "TokenMissing"),  # nested past the JSON reader's depth
        ('{"t": "auth", "token": "\\ud800"}', 4401, "TokenInvalid"),  # a lone surrogate
        ('{"t": "auth", "token": ["a"]}', 4401, "TokenMissing"),
    ],
)
async def test_a_bad_first_message_is_refused(hub: Hub, frame: str, code: int, reason: str) -> None:
    comm = communicator(Tokened)
    assert (await comm.connect(WAIT))[0]
    await comm.send_to(text_data=frame)
    await comm.send_to(text_data="ignored")
    assert await closed_with(comm) == code
    await comm.wait(WAIT)
    assert_nobody(hub)
    assert refusals(hub) == {f"refused_{reason}": 1}


async def test_an_expired_first_message_token_is_4419(hub: Hub, user: User) -> None:
    from django.core import signing

    from wshub_channels.auth import SALT, read_token

    claims = read_token(make_token(user))
    stale = signing.Signer(salt=SALT, sep=".").sign_object(
        {"u": claims.user_id, "x": 1, "h": claims.digest}
    )
    comm = communicator(Tokened)
    assert (await comm.connect(WAIT))[0]
    await comm.send_to(text_data=json.dumps({"t": "auth", "token": stale}))
    assert await closed_with(comm) == 4419
    assert refusals(hub) == {"refused_TokenExpired": 1}


async def test_no_auth_frame_in_time_is_4401(hub: Hub) -> None:
    comm = communicator(Tokened)
    assert (await comm.connect(WAIT))[0]
    assert await closed_with(comm) == 4401  # after TokenAuth.timeout
    await comm.disconnect()
    assert_nobody(hub)
    assert refusals(hub) == {"refused_TokenMissing": 1}


async def test_leaving_while_waiting_gives_the_channel_back(hub: Hub) -> None:
    comm = communicator(Tokened)
    assert (await comm.connect(WAIT))[0]
    await comm.disconnect()
    assert await comm.receive_nothing(scaled(0.7))  # the timer was stopped: no late close
    assert_nobody(hub)
    assert refusals(hub) == {}


async def test_an_app_refusal_after_an_early_accept_closes_with_1008(hub: Hub, user: User) -> None:
    """before_connect refuses a first-message client: 1008, not a (late) 403."""
    comm = communicator(Tokened, query="deny=1")
    assert (await comm.connect(WAIT))[0]
    await comm.send_to(text_data=json.dumps({"t": "auth", "token": make_token(user)}))
    assert await closed_with(comm) == 1008
    assert_nobody(hub)
    assert refusals(hub) == {"refused_AuthenticationFailed": 1}


async def test_an_app_refusal_with_a_header_token_stays_403(hub: Hub, user: User) -> None:
    comm = communicator(Tokened, make_token(user), query="deny=1")
    assert await comm.connect(WAIT) == (False, 1008)  # closed before accept: 403


async def test_a_cookie_user_needs_no_token(hub: Hub, user: User) -> None:
    comm = communicator(HeaderOnly, user=user)
    assert (await comm.connect(WAIT))[0]
    assert json.loads(await comm.receive_from(WAIT))["user"] == str(user.pk)
    await comm.disconnect()
    anonymous = communicator(HeaderOnly, user=AnonymousUser())
    assert (await anonymous.connect(WAIT))[0]
    assert await closed_with(anonymous) == 4401


async def test_the_query_string_is_read_only_when_configured(hub: Hub, user: User) -> None:
    token = make_token(user)
    ignored = communicator(HeaderOnly, query=f"token={token}")
    assert (await ignored.connect(WAIT))[0]
    assert await closed_with(ignored) == 4401
    read = communicator(QueryToo, query=f"token={token}")
    assert (await read.connect(WAIT))[0]
    assert json.loads(await read.receive_from(WAIT))["user"] == str(user.pk)
    await read.disconnect()


async def test_without_wshub_v1_no_subprotocol_is_selected(hub: Hub, user: User) -> None:
    comm = WebsocketCommunicator(
        HeaderOnly.as_asgi(), "/ws/", subprotocols=[f"wshub.token.{make_token(user)}"]
    )
    assert await comm.connect(WAIT) == (True, None)
    await comm.receive_from(WAIT)
    await comm.disconnect()
    await async_wait_until(lambda: hub.client_count() == 0, scaled(2))


async def test_a_failing_check_closes_with_1011_to_retry(hub: Hub, user: User) -> None:
    """The session store cannot be reached: not a refusal of the token (4401), nor a 403."""
    request = RequestFactory().get("/")
    request.session = import_module(settings.SESSION_ENGINE).SessionStore()
    from asgiref.sync import sync_to_async

    token = await sync_to_async(make_token)(user, session=request.session)
    with override_settings(SESSION_ENGINE="wshub_channels.no_such_session_engine"):
        comm = communicator(HeaderOnly, token)
        assert await comm.connect(WAIT) == (True, "wshub.v1")
        assert await closed_with(comm) == 1011
    assert_nobody(hub)
    assert refusals(hub) == {"refused_ModuleNotFoundError": 1}
