"""Self-tests for the test rig: time unit, markers, bundled brokers and ASGI server processes."""

from __future__ import annotations

import asyncio
import math
import resource

import nats
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from tests.conftest import NOFILE_CAP
from tests.rig import timing
from tests.rig.brokers import (
    DEFAULT_NATS_URL,
    DEFAULT_REDIS_URL,
    NATS_MAX_PAYLOAD,
    ServerHandle,
    nats_answers,
    redis_answers,
    start_nats_server,
    start_redis_server,
)
from tests.rig.servers import AsgiKind, StartAsgiServer, pid_exists, port_accepts
from tests.rig.timing import t

ECHO_APP = "tests.rig.echo_asgi:application"


def _port_of(url: str) -> int:
    port = url.rsplit(":", 1)[1].split("/", 1)[0]
    return int(port)


# --------------------------------------------------------------------------------------
# Unit tier
# --------------------------------------------------------------------------------------


def test_time_unit_parsing_and_scaling() -> None:
    assert timing.parse_time_unit(None) == 1.0
    assert timing.parse_time_unit("") == 1.0
    assert timing.parse_time_unit("3") == 3.0
    assert timing.parse_time_unit("0.5") == 0.5
    for bad in ("0", "-1", "nan", "inf", "fast"):
        with pytest.raises(ValueError, match=timing.TIME_UNIT_ENV):
            timing.parse_time_unit(bad)
    assert t(2.5) == pytest.approx(2.5 * timing.UNIT)


def test_wait_until_polls_until_true_or_deadline() -> None:
    calls: list[int] = []

    def third_time_lucky() -> bool:
        calls.append(1)
        return len(calls) >= 3

    timing.wait_until(third_time_lucky, t(2), interval=0.001)
    assert len(calls) == 3
    with pytest.raises(TimeoutError, match="never"):
        timing.wait_until(lambda: False, 0.05, what="never")


async def test_async_wait_until_accepts_async_predicates() -> None:
    state = {"n": 0}

    async def ready() -> bool:
        state["n"] += 1
        return state["n"] >= 2

    await timing.async_wait_until(ready, t(2), interval=0.001)
    assert state["n"] == 2
    with pytest.raises(TimeoutError):
        await timing.async_wait_until(lambda: False, 0.05)


def test_unmarked_tests_are_marked_unit(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("unit") is not None


def test_nofile_soft_limit_raised() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = NOFILE_CAP if hard == resource.RLIM_INFINITY else min(hard, NOFILE_CAP)
    assert soft == resource.RLIM_INFINITY or soft >= wanted


# --------------------------------------------------------------------------------------
# Integration tier: brokers
# --------------------------------------------------------------------------------------


async def _check_redis(handle: ServerHandle) -> str:
    client = aioredis.Redis.from_url(handle.url, socket_timeout=t(5))
    try:
        assert await client.ping() is True
        info = await client.info("server")
        assert int(info["tcp_port"]) == handle.port
        assert int(info["process_id"]) == handle.pid
        return str(info["redis_version"])
    finally:
        await client.aclose()


async def _check_nats(handle: ServerHandle) -> str:
    nc = await nats.connect(handle.url, connect_timeout=math.ceil(t(5)), allow_reconnect=False)
    try:
        assert nc.max_payload >= 8 * 1024 * 1024
        assert nc.max_payload == NATS_MAX_PAYLOAD
        js = nc.jetstream(timeout=t(5))
        await js.add_stream(name="RIG_CHECK", subjects=["rig.check.>"])
        ack = await js.publish("rig.check.one", b"hello", timeout=t(5))
        assert ack.stream == "RIG_CHECK"
        stored = await js.get_msg("RIG_CHECK", ack.seq)
        assert stored.data == b"hello"
        assert stored.subject == "rig.check.one"
        return str(nc.connected_server_version)
    finally:
        await nc.close()


@pytest.mark.integration
async def test_bundled_brokers_start_even_when_services_run() -> None:
    redis_service = redis_answers("127.0.0.1", _port_of(DEFAULT_REDIS_URL))
    nats_service = nats_answers("127.0.0.1", _port_of(DEFAULT_NATS_URL))
    redis_server = await asyncio.to_thread(start_redis_server)
    try:
        nats_server = await asyncio.to_thread(start_nats_server)
    except BaseException:
        await asyncio.to_thread(redis_server.stop)
        raise
    try:
        redis_version = await _check_redis(redis_server)
        nats_version = await _check_nats(nats_server)
        print(
            f"\nbundled redis-server {redis_version}: {redis_server.binary} "
            f"port={redis_server.port} pid={redis_server.pid} "
            f"(service on 6379 answering: {redis_service})"
            f"\nbundled nats-server {nats_version}: {nats_server.binary} "
            f"port={nats_server.port} pid={nats_server.pid} "
            f"(service on 4222 answering: {nats_service})"
        )
    finally:
        await asyncio.to_thread(redis_server.stop)
        await asyncio.to_thread(nats_server.stop)
    assert not port_accepts(redis_server.port)
    assert not port_accepts(nats_server.port)
    assert not pid_exists(redis_server.pid)
    assert not pid_exists(nats_server.pid)


@pytest.mark.integration
async def test_bundled_brokers_restart_on_the_same_port() -> None:
    redis_server = await asyncio.to_thread(start_redis_server)
    try:
        port, first_pid = redis_server.port, redis_server.pid
        client = aioredis.Redis.from_url(redis_server.url, socket_timeout=t(5))
        try:
            await client.set("rig:key", "before")
        finally:
            await client.aclose()
        await asyncio.to_thread(redis_server.restart)
        assert redis_server.port == port
        assert redis_server.pid != first_pid
        assert not pid_exists(first_pid)
        client = aioredis.Redis.from_url(redis_server.url, socket_timeout=t(5))
        try:
            # Same port, new process, and the data is gone (no persistence configured).
            assert await client.get("rig:key") is None
        finally:
            await client.aclose()
    finally:
        await asyncio.to_thread(redis_server.stop)

    nats_server = await asyncio.to_thread(start_nats_server)
    try:
        port, first_pid = nats_server.port, nats_server.pid
        nc = await nats.connect(nats_server.url, connect_timeout=math.ceil(t(5)))
        try:
            js = nc.jetstream(timeout=t(5))
            await js.add_stream(name="RIG_RESTART", subjects=["rig.restart"])
            await js.publish("rig.restart", b"kept", timeout=t(5))
        finally:
            await nc.close()
        await asyncio.to_thread(nats_server.restart)
        assert nats_server.port == port
        assert nats_server.url == f"nats://127.0.0.1:{port}"
        assert nats_server.pid != first_pid
        assert not pid_exists(first_pid)
        nc = await nats.connect(nats_server.url, connect_timeout=math.ceil(t(5)))
        try:
            js = nc.jetstream(timeout=t(5))
            # The JetStream store directory survives a restart, like a real crash.
            stored = await js.get_msg("RIG_RESTART", 1)
            assert stored.data == b"kept"
        finally:
            await nc.close()
    finally:
        await asyncio.to_thread(nats_server.stop)


@pytest.mark.integration
async def test_broker_fixtures_answer(redis_url: str, nats_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url, socket_timeout=t(5))
    try:
        assert await client.ping() is True
    finally:
        await client.aclose()
    nc = await nats.connect(nats_url, connect_timeout=math.ceil(t(5)), allow_reconnect=False)
    try:
        assert nc.is_connected
        print(f"\nredis_url={redis_url} nats_url={nats_url} (max_payload={nc.max_payload})")
    finally:
        await nc.close()


# --------------------------------------------------------------------------------------
# Integration tier: ASGI servers
# --------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_asgi_server_runs_echo_consumer(kind: AsgiKind, asgi_server: StartAsgiServer) -> None:
    server = await asyncio.to_thread(asgi_server, kind, ECHO_APP)
    assert server.kind == kind
    try:
        async with connect(server.ws_url("ws/echo/"), open_timeout=t(10), close_timeout=t(2)) as ws:
            await ws.send("hi")
            async with asyncio.timeout(t(10)):
                reply = await ws.recv()
            assert reply == "echo:hi"
    except BaseException:
        print(f"--- {kind} log ---\n{server.log_text()}")
        raise
    finally:
        await asyncio.to_thread(server.stop)
    assert not pid_exists(server.pid)
    assert not port_accepts(server.port)
