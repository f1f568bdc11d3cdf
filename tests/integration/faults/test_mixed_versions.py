"""A rolling deploy with mixed envelope versions, on Redis and NATS.

A node of a newer release is simulated by publishing hand-made envelopes on the bus the
two server processes (daphne, uvicorn) share, on the subject of a room both have members
in. An envelope of a newer *major* version is ignored by every node and counted in its
layer's ``unknown_version``; nothing crashes and the nodes keep serving. An envelope of
a newer *minor* version (extra trailing fields in the envelope) is understood: its
message is delivered on both nodes.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import msgpack
import nats
import pytest
import redis.asyncio as aioredis

from tests.integration.buses import Bus, node_env
from tests.integration.faults.kit import APP, figure
from tests.integration.peer import Peer
from tests.rig.servers import StartAsgiServer
from wshub_channels.core.wire import ENVELOPE_MAJOR, ENVELOPE_MINOR, Kind
from wshub_channels.layers import RedisHubLayer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def envelope(major: int, minor: int, origin: str, room: str, text: str, *extra: Any) -> bytes:
    """An envelope as a node of another release would write it, ``extra`` fields last.

    The hub payload stays ``[text, excluded]``: its third and fourth fields are a history
    position, so a later minor can only add hub-payload fields after those (a payload of
    three fields, or four without a valid position, is a bad envelope).
    """
    payload = msgpack.packb([text, []], use_bin_type=True)
    fields = [major, minor, int(Kind.ROOM), origin, room, payload, os.getpid(), *extra]
    return msgpack.packb(fields, use_bin_type=True)  # type: ignore[no-any-return]


async def publish(kind: str, url: str, subject: str, frames: list[bytes]) -> None:
    if kind == "redis":
        client = aioredis.Redis.from_url(url)
        for frame in frames:
            await client.publish(subject, frame)
        await client.aclose()
    else:
        conn = await nats.connect(url)
        for frame in frames:
            await conn.publish(subject, frame)
        await conn.flush()
        await conn.close()


@pytest.mark.parametrize("kind", ["redis", "nats"])
async def test_newer_major_is_ignored_and_counted_newer_minor_is_understood(
    kind: str, request: pytest.FixtureRequest, asgi_server: StartAsgiServer
) -> None:
    url: str = request.getfixturevalue(f"{kind}_url")
    prefix = f"mv{uuid.uuid4().hex[:8]}"
    bus = Bus(kind, kind, (url,))
    nodes = [
        asgi_server(server, APP, node_env(bus, prefix, n))  # type: ignore[arg-type]
        for n, server in enumerate(("daphne", "uvicorn"))
    ]
    members = [await Peer.open(node.ws_url("/ws/control/?rooms=feed")) for node in nodes]
    before = [await m.call("layer_stats") for m in members]
    # The subject naming is the same in every layer: "<prefix>.r.<room>".
    subject = RedisHubLayer(hosts=[url], prefix=prefix).subject("r", "feed")
    future = ENVELOPE_MAJOR + 1
    frames = [
        envelope(future, 0, "node-of-release-n+1", "feed", "from a newer major"),
        envelope(future, 0, "node-of-release-n+1", "feed", "again", "extra"),
        envelope(ENVELOPE_MAJOR, ENVELOPE_MINOR + 1, "node-newer-minor", "feed", "newer minor"),
        envelope(
            ENVELOPE_MAJOR,
            ENVELOPE_MINOR + 5,
            "node-newer-minor",
            "feed",
            "more fields",
            None,
            "future",
            {"field": 1},
        ),
    ]
    await publish(kind, url, subject, frames)
    got = [[await m.next(5), await m.next(5)] for m in members]
    assert got == [["newer minor", "more fields"]] * 2
    assert all([await m.nothing(0.3) for m in members])  # the newer majors never arrive
    after = [await m.call("layer_stats") for m in members]
    counted = [a["unknown_version"] - b["unknown_version"] for a, b in zip(after, before)]  # noqa: B905
    bad = [a["bad_envelopes"] - b["bad_envelopes"] for a, b in zip(after, before)]  # noqa: B905
    assert counted == [2, 2] and bad == [0, 0], (counted, bad)
    # Both nodes keep serving: a broadcast from each reaches both members.
    for n, member in enumerate(members):
        await member.call("broadcast_to_room", room="feed", text=f"still here {n}")
        for other in members:
            assert await other.next(5) == f"still here {n}"
    for node in nodes:
        assert node.running
    figure(
        f"{kind} mixed versions: 2 envelopes of major {future} ignored, unknown_version +{counted} "
        f"(daphne, uvicorn); 2 of minors {ENVELOPE_MINOR + 1} and {ENVELOPE_MINOR + 5} delivered"
    )
    await asyncio.gather(*(m.close() for m in members))
    for node in nodes:
        node.stop()
