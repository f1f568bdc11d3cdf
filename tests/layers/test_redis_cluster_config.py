"""Redis Cluster without a server: config, key names, and the handover guard."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from wshub_channels.layers import RedisHubLayer
from wshub_channels.layers.redis.client import _node_options, key_slot, wants_cluster
from wshub_channels.layers.redis.cluster import RedisClusterBus, RedisClusterStore
from wshub_channels.layers.redis.handover import Handover

pytestmark = pytest.mark.unit


def test_a_cluster_is_chosen_by_the_flag_or_the_url() -> None:
    assert wants_cluster(["redis+cluster://a:1,b:2"], False)
    assert wants_cluster(["redis://a:1"], True)
    assert not wants_cluster(["redis://a:1", ("b", 2)], False)
    layer = RedisHubLayer(hosts=["redis+cluster://127.0.0.1:7000,127.0.0.1:7001"])
    assert layer.cluster and isinstance(layer.bus, RedisClusterBus)
    assert not RedisHubLayer(hosts=["redis://127.0.0.1:6379"]).cluster


def test_startup_nodes_and_options_from_hosts() -> None:
    assert _node_options("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001") == (
        [("10.0.0.1", 7000), ("10.0.0.2", 7001)],
        {"password": "pw"},
    )
    assert _node_options("rediss://u:p@h:1/0") == (
        [("h", 1)],
        {"ssl": True, "username": "u", "password": "p"},
    )
    assert _node_options(("a", 2)) == ([("a", 2)], {})
    with pytest.raises(ImproperlyConfigured):
        _node_options({"sentinels": [("h", 1)], "master_name": "m"})


def test_a_prefix_with_braces_is_refused_on_a_cluster() -> None:
    with pytest.raises(ImproperlyConfigured, match="braces"):
        RedisHubLayer(hosts=["redis://127.0.0.1:1"], cluster=True, prefix="a{b}")


def test_every_key_of_a_channel_or_group_shares_one_slot() -> None:
    """Queue, registry and holds under {channel}; a group's members in its subject's slot."""
    layer = RedisHubLayer(hosts=["redis://127.0.0.1:1"], cluster=True, prefix="p")
    store = layer.store
    assert isinstance(store, RedisClusterStore)
    channel = "jobs.high"
    keys = [store.key("q", channel), store.key("hs", channel), store.hold_key(channel, "t0k3n")]
    assert len({key_slot(k.encode()) for k in keys}) == 1
    subject = layer.subject("g", "chat")
    assert key_slot(store.group_key("chat").encode()) == key_slot(subject.encode())
    single = RedisHubLayer(hosts=["redis://127.0.0.1:1"], prefix="p").store
    assert single.key("q", channel) == "p:q:jobs.high"  # single-Redis names unchanged
    assert single.hold_key(channel, "t") == "p:h:jobs.high:t"


def test_handover_refuses_a_publish_that_reached_fewer_on_a_new_master() -> None:
    guard = Handover(settle=60.0)
    guard.check("s", "m1", 2)
    guard.check("s", "m1", 1)  # members left on the same master: taken
    guard.check("s", "m1", 2)
    with pytest.raises(ConnectionError, match="1 of its 2"):
        guard.check("s", "m2", 1)  # a new master, a subscriber not back yet
    guard.check("s", "m2", 2)  # all back: taken, and m2 is the master now
    guard.check("s", "m2", 0)
    assert guard.refused == 1


def test_handover_gives_up_after_settle_and_forgets_old_subjects() -> None:
    guard = Handover(settle=0.0, size=2)
    guard.check("s", "m1", 3)
    guard.check("s", "m2", 1)  # settle 0: a subscriber gone for good is not waited for
    for subject in ("a", "b", "c"):
        guard.check(subject, "m1", 1)
    guard.check("s", "m9", 0)  # "s" was forgotten: nothing to compare with
