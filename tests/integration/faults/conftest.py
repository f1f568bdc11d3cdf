"""Fixtures of the fault tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.rig.brokers import ServerHandle, start_nats_server, start_redis_server


@pytest.fixture(params=["redis", "nats"])
def private_broker(request: pytest.FixtureRequest) -> Iterator[tuple[str, ServerHandle]]:
    """A broker this test owns outright, so that it can stop, restart or freeze it."""
    kind: str = request.param
    handle = start_redis_server() if kind == "redis" else start_nats_server()
    yield kind, handle
    handle.stop()
