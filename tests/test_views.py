"""The probes and ``POST /drainz`` through Django's async test client, on a private hub."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.testing import HttpCommunicator
from django.core.asgi import get_asgi_application
from django.test import AsyncClient, override_settings

from tests.inprocess import Clients, private_layer
from tests.test_stopping import ALIAS, Leaver
from wshub_channels import get_hub
from wshub_channels.testing import async_wait_until, scaled

pytestmark = pytest.mark.unit

KEYS = {"alive", "ready", "state", "uptime_seconds", "clients", "node_id", "bus"}


@pytest.fixture
async def web() -> AsyncIterator[AsyncClient]:
    settings = {"CHANNEL_LAYER": ALIAS, "DRAIN_TIMEOUT": scaled(5), "DRAIN_TOKEN": "t0ken"}
    with override_settings(WSHUB=settings):
        async with private_layer(ALIAS):
            yield AsyncClient()


class Answer:
    def __init__(self, response: dict[str, Any]) -> None:
        self.status_code: int = response["status"]
        self.headers = {k.decode().lower(): v.decode() for k, v in response["headers"]}
        self.body = json.loads(response["body"])

    def json(self) -> Any:
        return self.body

    def __getitem__(self, name: str) -> str:
        return self.headers[name.lower()]


async def _drainz(web: AsyncClient, addr: str, **headers: str) -> Answer:
    """POST /drainz through Django's ASGI handler as a client at ``addr`` with ``headers``."""
    raw = [
        (name.lower().replace("_", "-").encode(), value.encode()) for name, value in headers.items()
    ]
    comm = HttpCommunicator(get_asgi_application(), "POST", "/drainz", headers=raw)
    comm.scope["client"] = [addr, 40000]  # the address the server saw
    answer = Answer(await comm.get_response(timeout=scaled(2)))
    await comm.wait(timeout=scaled(2))  # the handler finishes the request (closes its body)
    return answer


async def _get(web: AsyncClient, path: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    response = await web.get(path, **extra)
    return response.status_code, response.json()


async def test_probes_report_every_field_and_start_a_hub_nobody_started(web: AsyncClient) -> None:
    """A hub never started reports starting (503 ready, 200 alive), and the probe starts it."""
    status, body = await _get(web, "/readyz")
    assert set(body) == KEYS and set(body["bus"]) == {"connected", "last_error"}
    assert (status, body["state"], body["ready"]) == (503, "starting", False)
    await async_wait_until(lambda: get_hub(ALIAS).state == "running", scaled(2))
    status, body = await _get(web, "/readyz")
    assert (status, body["state"], body["ready"], body["bus"]["connected"]) == (
        200,
        "running",
        True,
        True,
    )
    status, body = await _get(web, "/healthz")
    assert (status, body["alive"], body["node_id"]) == (200, True, get_hub(ALIAS).node_id)


async def test_probes_are_get_only(web: AsyncClient) -> None:
    assert (await web.post("/readyz")).status_code == 405
    assert (await web.post("/healthz")).status_code == 405
    assert (await web.get("/drainz")).status_code == 405


async def test_drainz_from_loopback_starts_a_drain(web: AsyncClient) -> None:
    """POST /drainz from 127.0.0.1: 202, draining; the probes follow at once."""
    clients = Clients()
    await clients.connect(Leaver)
    response = await _drainz(web, "127.0.0.1")
    assert response.status_code == 202
    assert response.json()["state"] == "draining" and response.json()["clients"] == 1
    status, body = await _get(web, "/readyz")
    assert (status, body["state"]) == (503, "draining")
    assert (await web.get("/healthz")).status_code == 200
    await clients.close_all()


async def test_drainz_is_refused_from_outside_without_the_token(web: AsyncClient) -> None:
    """From another address, or relayed by a proxy: 401 asking for the bearer token."""
    await get_hub(ALIAS).start()
    for addr, headers in (
        ("10.2.3.4", {}),
        ("127.0.0.1", {"X-Forwarded-For": "203.0.113.9"}),
        ("10.2.3.4", {"Authorization": "Bearer wrong"}),
    ):
        response = await _drainz(web, addr, **headers)
        assert response.status_code == 401, (addr, headers)
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert get_hub(ALIAS).state == "running"
    response = await _drainz(web, "10.2.3.4", Authorization="Bearer t0ken")
    assert response.status_code == 202 and get_hub(ALIAS).state == "draining"


async def test_drainz_without_a_token_setting_is_loopback_only(web: AsyncClient) -> None:
    with override_settings(WSHUB={"CHANNEL_LAYER": ALIAS}):
        await get_hub(ALIAS).start()
        response = await _drainz(web, "10.2.3.4", Authorization="Bearer x")
        assert response.status_code == 403
        assert get_hub(ALIAS).state == "running"


async def test_drainz_on_a_hub_that_is_not_running_answers_409(web: AsyncClient) -> None:
    await get_hub(ALIAS).start()
    await get_hub(ALIAS).shutdown()
    response = await _drainz(web, "127.0.0.1")
    assert response.status_code == 409 and response.json()["state"] == "stopped"
    status, body = await _get(web, "/healthz")
    assert (status, body["alive"], body["state"]) == (503, False, "stopped")


async def test_drainz_refuses_a_cross_site_page_on_the_host(web: AsyncClient) -> None:
    """A browser page of another origin posting from loopback is refused; the hub runs on."""
    await get_hub(ALIAS).start()
    cross = {"Origin": "http://127.0.0.1:3000", "Host": "127.0.0.1:8000"}
    response = await _drainz(web, "127.0.0.1", **cross)
    assert response.status_code == 403 and "cross-site" in response.json()["error"]
    response = await _drainz(web, "127.0.0.1", Sec_Fetch_Site="cross-site")
    assert response.status_code == 403
    response = await _drainz(web, "127.0.0.1", **cross, Authorization="Bearer t0ken")
    assert response.status_code == 403
    same = {"Origin": "http://127.0.0.1:8000", "Host": "127.0.0.1:8000"}
    response = await _drainz(web, "127.0.0.1", **same)  # a browser, no token
    assert response.status_code == 401
    assert get_hub(ALIAS).state == "running"
