"""NatsHubLayer against private nats-servers that need a token, a password or TLS.

Right credentials connect and carry messages; wrong ones leave the bus down
with a ``last_error`` that names the cause. No secret ever shows in
``health()``, in ``bus_status()`` or in the logs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.rig.brokers import ServerHandle, start_nats_server
from tests.rig.timing import async_wait_until
from wshub_channels.conf import get_settings
from wshub_channels.hub.hub import Hub
from wshub_channels.layers import NatsHubLayer
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration

TOKEN = "tok-3f9a1c-not-for-logs"
PASSWORD = "pw-81d2e7-not-for-logs"
MAX_PAYLOAD = "max_payload: 8MB\n"


@pytest.fixture(scope="module")
def token_server() -> Iterator[ServerHandle]:
    with start_nats_server(config=f'{MAX_PAYLOAD}authorization {{ token: "{TOKEN}" }}\n') as s:
        yield s


@pytest.fixture(scope="module")
def password_server() -> Iterator[ServerHandle]:
    config = f'{MAX_PAYLOAD}authorization {{ user: "alice", password: "{PASSWORD}" }}\n'
    with start_nats_server(config=config) as server:
        yield server


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    trustme = pytest.importorskip("trustme")
    directory = tmp_path_factory.mktemp("tls")
    ca, stranger = trustme.CA(), trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = {
        "ca": directory / "ca.pem",
        "stranger": directory / "stranger.pem",
        "cert": directory / "server.pem",
        "key": directory / "server.key",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    stranger.cert_pem.write_to_path(str(files["stranger"]))
    cert.cert_chain_pems[0].write_to_path(str(files["cert"]))
    cert.private_key_pem.write_to_path(str(files["key"]))
    return files


@pytest.fixture(scope="module")
def tls_server(tls_files: dict[str, Path]) -> Iterator[ServerHandle]:
    config = (
        f'{MAX_PAYLOAD}tls {{\n  cert_file: "{tls_files["cert"]}"\n'
        f'  key_file: "{tls_files["key"]}"\n  timeout: 2\n}}\n'
    )
    with start_nats_server(config=config) as server:
        yield server


def _layer(url: str, **options: Any) -> Any:
    return NatsHubLayer(servers=[url], connect_timeout=scaled(1), **options)


async def _carries_messages(layer: Any) -> None:
    """A group_send through the server reaches a member: the connection really works."""
    await layer.start()
    channel = await layer.new_channel()
    await layer.group_add("auth-check", channel)
    await layer.group_send("auth-check", {"type": "through.the.server"})
    got = await asyncio.wait_for(layer.receive(channel), scaled(2))
    assert got == {"type": "through.the.server"}
    assert layer.bus_status().connected


async def _stays_down(layer: Any, cause: str, secret: str | None) -> str:
    """The bus reports down with ``cause`` in last_error and no secret anywhere."""
    hub = Hub(layer, get_settings())
    starting = asyncio.ensure_future(layer.start())
    try:
        await async_wait_until(
            lambda: cause in str(layer.bus_status().last_error).lower(),
            scaled(5),
            what=f"a bus error naming {cause!r}",
        )
        status = layer.bus_status()
        assert not status.connected
        error = str(status.last_error)
        assert cause in error.lower(), error
        health = hub.health()
        assert not health.ready and health.bus == status
        if secret is not None:
            assert secret not in error and secret not in repr(health)
        return error
    finally:
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await layer.close()


async def test_token_right_and_wrong(
    token_server: ServerHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """The right token connects; a wrong one is an authorization error, never logged."""
    caplog.set_level(logging.DEBUG, logger="wshub_channels")
    good = _layer(token_server.url, token=TOKEN)
    try:
        await _carries_messages(good)
    finally:
        await good.close()
    await _stays_down(_layer(token_server.url, token="wrong-" + TOKEN), "authoriz", TOKEN)
    assert TOKEN not in caplog.text


async def test_user_and_password_right_and_wrong(
    password_server: ServerHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """The right password connects; a wrong one is an authorization error, never logged."""
    caplog.set_level(logging.DEBUG, logger="wshub_channels")
    good = _layer(password_server.url, user="alice", password=PASSWORD)
    try:
        await _carries_messages(good)
    finally:
        await good.close()
    wrong = "wrong-" + PASSWORD
    await _stays_down(_layer(password_server.url, user="alice", password=wrong), "authoriz", wrong)
    assert PASSWORD not in caplog.text and wrong not in caplog.text


async def test_credentials_in_the_url_are_not_shown(password_server: ServerHandle) -> None:
    """A password given in the server URL is kept out of last_error too."""
    wrong = "url-" + PASSWORD
    url = password_server.url.replace("nats://", f"nats://alice:{wrong}@")
    await _stays_down(_layer(url), "authoriz", wrong)


async def test_tls_with_the_right_and_a_wrong_ca(
    tls_server: ServerHandle, tls_files: dict[str, Path]
) -> None:
    """TLS with the server's CA connects; a stranger CA fails certificate verification."""
    url = tls_server.url.replace("nats://", "tls://")
    good = _layer(url, tls_ca_file=str(tls_files["ca"]))
    try:
        await _carries_messages(good)
    finally:
        await good.close()
    await _stays_down(_layer(url, tls_ca_file=str(tls_files["stranger"])), "certificate", None)
