"""Health in every state, ``POST /drainz`` and ``manage.py wshub_drain``, on real servers.

- The probes' JSON and status codes while the hub starts (its private Redis is
  not up yet), runs, loses its bus (the test stops that Redis), drains and
  after it stopped.
- ``POST /drainz``: from loopback, with the bearer token, and refused
  otherwise (a request that uvicorn saw relayed by a proxy counts as remote).
- ``wshub_drain`` lists the nodes of a live 2-node cluster and drains one.
- SIGINT under daphne: the hub still shuts down before the reactor stops.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.integration.buses import Bus, node_env
from tests.integration.drainkit import APP, aprobe, exit_of, refused_status
from tests.integration.peer import Peer
from tests.rig.brokers import start_redis_server
from tests.rig.servers import AsgiServer, StartAsgiServer, manage
from tests.rig.timing import async_wait_until
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration

KEYS = {"alive", "ready", "state", "uptime_seconds", "clients", "node_id", "bus"}
SECRET = "s3cret-redis-pw"


async def _both(
    server: AsgiServer,
) -> tuple[tuple[int, dict[str, Any]], tuple[int, dict[str, Any]]]:
    return await aprobe(server, "/healthz"), await aprobe(server, "/readyz")


async def _until_ready(server: AsgiServer, status: int, within: float) -> dict[str, Any]:
    """Poll /readyz until it answers ``status``; return its body."""
    found: dict[str, Any] = {}

    async def reached() -> bool:
        code, body = await aprobe(server, "/readyz")
        found.update(body)
        return code == status

    await async_wait_until(reached, within, interval=scaled(0.05), what=f"/readyz {status}")
    return found


async def test_health_json_and_status_codes_in_every_state(asgi_server: StartAsgiServer) -> None:
    """starting, running, bus outage, back, draining; no secret in any answer; exit at the end."""
    broker = start_redis_server(password=SECRET)
    broker.stop()  # not up yet: the hub stays starting
    try:
        url = f"redis://:{SECRET}@127.0.0.1:{broker.port}"
        config = {"hosts": [url], "prefix": f"hs{uuid.uuid4().hex[:8]}", "connect_timeout": 30}
        layers = {"default": {"BACKEND": "wshub_channels.layers.RedisHubLayer", "CONFIG": config}}
        env = {
            "WSHUB_TEST_LAYERS": json.dumps(layers),
            "WSHUB_TEST_SETTINGS": json.dumps({"DRAIN_TIMEOUT": scaled(60)}),
        }
        server = asgi_server("daphne", APP, env)  # daphne serves HTTP while the hub starts
        answers: list[dict[str, Any]] = []

        (alive, live), (ready, body) = await _both(server)
        answers += [live, body]
        assert set(body) == KEYS and set(body["bus"]) == {"connected", "last_error"}
        assert (alive, live["alive"], live["state"]) == (200, True, "starting")
        assert (ready, body["ready"], body["state"]) == (503, False, "starting")
        assert body["bus"]["connected"] is False

        broker.start()
        body = await _until_ready(server, 200, scaled(5))
        answers.append(body)
        assert (body["state"], body["ready"], body["bus"]) == (
            "running",
            True,
            {"connected": True, "last_error": None},
        )
        peer = await Peer.open(server.ws_url("/ws/control/"))
        (alive, live), (ready, body) = await _both(server)
        assert (alive, ready, live["clients"], body["clients"]) == (200, 200, 1, 1)
        assert live["uptime_seconds"] > 0 and live["node_id"] == body["node_id"]

        broker.stop()  # the bus goes away: alive, not ready
        body = await _until_ready(server, 503, scaled(5))
        answers.append(body)
        assert (body["state"], body["alive"], body["bus"]["connected"]) == ("running", True, False)
        assert body["bus"]["last_error"]
        assert (await aprobe(server, "/healthz"))[0] == 200

        broker.start()
        answers.append(await _until_ready(server, 200, scaled(5)))

        status, body = await aprobe(server, "/drainz", "POST")  # from loopback
        answers.append(body)
        assert (status, body["state"]) == (202, "draining")
        (alive, live), (ready, body) = await _both(server)
        assert (alive, live["state"], ready, body["state"]) == (200, "draining", 503, "draining")
        assert await refused_status(server.ws_url("/ws/control/")) == 403

        await peer.close()  # the last client leaves: the process exits, long before the timeout
        left = time.monotonic()
        status, exited = await exit_of(server, within=scaled(10))
        assert status == 0 and exited - left < scaled(5)
        assert all(SECRET not in json.dumps(answer) for answer in answers)
    finally:
        broker.stop()


async def test_health_after_shutdown_reports_stopped(asgi_server: StartAsgiServer) -> None:
    """A bare hub.shutdown(): both probes 503 with state stopped; SIGTERM then exits at once."""
    server = asgi_server("uvicorn", APP)
    peer = await Peer.open(server.ws_url("/ws/control/"))
    await peer.ws.send(json.dumps({"op": "shutdown", "ref": 1}))
    await asyncio.wait_for(peer.ws.wait_closed(), scaled(5))
    assert peer.ws.close_code == 1001
    (alive, live), (ready, body) = await _both(server)
    assert (alive, live["alive"], live["state"]) == (503, False, "stopped")
    assert (ready, body["ready"], body["state"], body["clients"]) == (503, False, "stopped", 0)
    assert await refused_status(server.ws_url("/ws/control/")) == 403
    assert server.running  # a stopped hub does not stop the server by itself
    sent = time.monotonic()
    server.process.terminate()
    status, exited = await exit_of(server, within=scaled(5))
    assert status == -15 and exited - sent < scaled(2)


async def test_drainz_from_loopback_with_a_token_and_refused_otherwise(
    asgi_server: StartAsgiServer,
) -> None:
    """uvicorn (it trusts X-Forwarded-For from 127.0.0.1): remote asks need the token."""
    plain = asgi_server("uvicorn", APP)
    token = "drain-t0ken"
    guarded = asgi_server(
        "uvicorn", APP, {"WSHUB_TEST_SETTINGS": json.dumps({"DRAIN_TOKEN": token})}
    )
    remote = {"X-Forwarded-For": "203.0.113.7"}

    status, body = await aprobe(plain, "/drainz", "POST", remote)
    assert status == 403 and "loopback" in body["error"]
    status, body = await aprobe(plain, "/drainz", "POST", {**remote, "Authorization": "Bearer x"})
    assert status == 403
    assert (await aprobe(plain, "/drainz"))[0] == 405  # GET
    assert (await aprobe(plain, "/readyz"))[0] == 200

    for headers in (remote, {**remote, "Authorization": "Bearer wrong"}):
        status, _ = await aprobe(guarded, "/drainz", "POST", headers)
        assert status == 401
    assert (await aprobe(guarded, "/readyz"))[0] == 200

    status, body = await aprobe(plain, "/drainz", "POST")  # loopback, no token
    assert (status, body["state"]) == (202, "draining")
    auth = {**remote, "Authorization": f"Bearer {token}"}
    status, body = await aprobe(guarded, "/drainz", "POST", auth)
    assert (status, body["state"]) == (202, "draining")
    for server in (plain, guarded):  # no clients: both drain, stop and exit by themselves
        status, _ = await exit_of(server, within=scaled(5))
        assert status == -15


async def test_wshub_drain_lists_the_nodes_and_drains_one_of_a_live_cluster(
    asgi_server: StartAsgiServer, redis_url: str
) -> None:
    """Listed by id; --node drains that node only (4001, exit 0); the other hears it leave."""
    bus, prefix = Bus("redis", "redis", (redis_url,)), f"wd{uuid.uuid4().hex[:8]}"
    nodes = [
        asgi_server("daphne", APP, node_env(bus, prefix, 0)),
        asgi_server("uvicorn", APP, node_env(bus, prefix, 1)),
    ]
    peers = [await Peer.open(node.ws_url("/ws/control/")) for node in nodes]
    ids = [(await peer.call("health"))["node_id"] for peer in peers]
    tool = node_env(bus, prefix, 2)

    listed = await asyncio.to_thread(manage, tool, "wshub_drain")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert sorted((row[0], row[3]) for row in rows) == sorted((i, "1") for i in ids)

    missing = await asyncio.to_thread(manage, tool, "wshub_drain", "--node", "nosuchnode12")
    assert missing.returncode == 1 and "no node 'nosuchnode12'" in missing.stderr

    drained = await asyncio.to_thread(
        manage, tool, "wshub_drain", "--node", ids[0], "--timeout", "0"
    )
    assert drained.returncode == 0, drained.stderr
    assert drained.stdout.strip() == f"node {ids[0]} is draining (1 client(s) connected)"
    await asyncio.wait_for(peers[0].ws.wait_closed(), scaled(5))
    assert peers[0].ws.close_code == 4001  # daphne's code for 1001
    status, _ = await exit_of(nodes[0], within=scaled(5))
    assert status == 0

    async def left() -> bool:
        return ["left", ids[0]] in await peers[1].call("node_events")

    await async_wait_until(left, scaled(1), interval=scaled(0.05), what="node_left")
    assert (await peers[1].call("health"))["state"] == "running"
    async with connect(nodes[1].ws_url("/ws/control/")) as ws:  # still takes clients
        assert "hello" in json.loads(await ws.recv())
    await peers[1].close()


async def test_sigint_under_daphne_shuts_the_hub_down_before_the_reactor_stops(
    asgi_server: StartAsgiServer,
) -> None:
    """Ctrl-C is daphne's, but the hub still closes its clients (4001) and exits cleanly."""
    server = asgi_server("daphne", APP)
    peer = await Peer.open(server.ws_url("/ws/control/"))
    server.process.send_signal(signal.SIGINT)
    await asyncio.wait_for(peer.ws.wait_closed(), scaled(5))
    assert peer.ws.close_code == 4001  # the hub's shutdown, not a dropped socket
    status, _ = await exit_of(server, within=scaled(5))
    assert status == 0
