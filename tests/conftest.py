"""Shared pytest setup: file-descriptor limit, tier markers, broker and ASGI server fixtures.

Fixtures (all session-scoped):

* ``redis_url``: ``REDIS_URL``, else a Redis answering on 127.0.0.1:6379, else a bundled
  ``redis-server`` started for the session.
* ``nats_url``: ``NATS_URL``, else a NATS answering on 127.0.0.1:4222, else a bundled
  ``nats-server`` (JetStream, 8 MB max_payload) started for the session.
* ``redis_cluster``: a Redis Cluster of 3 masters and 3 replicas (``redis-server`` 7+,
  see ``tests/rig/redis_cluster.py``), started for the session; skipped, saying what is
  missing, without such a binary.
* ``asgi_server``: a callable ``start(kind, app, env=None) -> AsgiServer`` running real
  daphne/uvicorn processes; everything it started is stopped at session end.

Timeouts scale with ``WSHUB_TEST_TIME_UNIT`` (see ``tests/rig/timing.py``).
"""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Callable, Iterator

import pytest

from tests.rig.brokers import ServerHandle, resolve_nats_url, resolve_redis_url
from tests.rig.redis_cluster import RedisCluster, cluster_server_or_skip, start_redis_cluster
from tests.rig.servers import AsgiKind, AsgiServer, StartAsgiServer, start_asgi_server

#: Upper bound for the raised RLIMIT_NOFILE soft limit.
NOFILE_CAP = 65536

#: Every test belongs to at least one tier; unmarked tests are ``unit``.
TIER_MARKERS = ("unit", "integration", "slow", "soak")


def raise_nofile_limit(cap: int = NOFILE_CAP) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (at most ``cap``); never lower it.

    Fan-out and storm tests open thousands of sockets. Returns the resulting
    ``(soft, hard)`` pair.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
    if soft != resource.RLIM_INFINITY and soft < target:
        # Some sandboxes refuse; tests that need many sockets will then say so themselves.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


raise_nofile_limit()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that has no tier marker as ``unit`` (before ``-m`` selection runs)."""
    for item in items:
        if not any(item.get_closest_marker(name) for name in TIER_MARKERS):
            item.add_marker(pytest.mark.unit)


def _session_broker(resolve: Callable[[], tuple[str, ServerHandle | None]]) -> Iterator[str]:
    url, handle = resolve()
    try:
        yield url
    finally:
        if handle is not None:
            handle.stop()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a Redis server for the whole session."""
    yield from _session_broker(resolve_redis_url)


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """URL of a NATS server for the whole session."""
    yield from _session_broker(resolve_nats_url)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A Redis Cluster (3 masters, 3 replicas) for the whole session; tests that kill
    or move its servers start their own (``start_redis_cluster``)."""
    cluster = start_redis_cluster(cluster_server_or_skip())
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def asgi_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartAsgiServer]:
    """Factory for real ASGI server processes; logs go to a pytest temp directory."""
    log_dir = tmp_path_factory.mktemp("asgi-logs")
    started: list[AsgiServer] = []

    def start(kind: AsgiKind, app: str, env: dict[str, str] | None = None) -> AsgiServer:
        server = start_asgi_server(kind, app, env, log_dir=log_dir)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in reversed(started):
            server.stop()
