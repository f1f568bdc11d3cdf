"""Fixtures of the multi-process tests: the bus a cluster of test servers shares."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.buses import Bus
from tests.rig.nats_cluster import NatsCluster, start_nats_cluster
from tests.rig.redis_cluster import RedisCluster

#: Every bus the cluster tests run on; "nats-cluster" spreads the hub nodes over
#: the servers of a three-server NATS cluster; "redis-cluster" is a Redis Cluster of
#: three masters and three replicas (sharded pub/sub), every node given all masters.
BUSES = ("redis", "redis-cluster", "nats", "nats-cluster")


@pytest.fixture(scope="session")
def nats_cluster() -> Iterator[NatsCluster]:
    cluster = start_nats_cluster(3)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module", params=BUSES)
def bus(request: pytest.FixtureRequest) -> Bus:
    """The bus of one run of a cluster test module."""
    name: str = request.param
    if name == "redis":
        return Bus(name, "redis", (request.getfixturevalue("redis_url"),))
    if name == "redis-cluster":
        redis_cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        return Bus(name, "redis", (redis_cluster.url,))
    if name == "nats":
        return Bus(name, "nats", (request.getfixturevalue("nats_url"),))
    cluster: NatsCluster = request.getfixturevalue("nats_cluster")
    return Bus(name, "nats", cluster.urls)
