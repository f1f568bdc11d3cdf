"""Drop policies and send timeouts on uvicorn, whose ASGI send waits for the socket.

A client that stops reading fills its socket buffers; then the server's queue
fills (4 messages here) and the drop policy applies.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.peer import Peer
from tests.integration.stalled import StalledClient
from tests.rig.servers import StartAsgiServer
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration
APP = "tests.apps.hub_app:application"
FLOOD = {"count": 200, "size": 64 * 1024}


async def _stalled_pair(start: StartAsgiServer, policy: str) -> tuple[StalledClient, Peer]:
    settings = {
        "CONFIG": {"send_queue_size": 4, "drop_policy": policy},
        "METRICS": "wshub_channels.metrics.DebugMetrics",
    }
    server = start("uvicorn", APP, {"WSHUB_TEST_SETTINGS": json.dumps(settings)})
    url = server.ws_url("/ws/control/")
    slow = await StalledClient(url).open()
    control = await Peer.open(url)
    return slow, control


async def _drain_seqs(slow: StalledClient) -> list[int]:
    return [int(text.split(":", 1)[0]) for text in await slow.read_all()]


@pytest.mark.parametrize("policy", ["drop_newest", "drop_oldest"])
async def test_drop_policy_with_a_client_that_stops_reading(
    policy: str, asgi_server: StartAsgiServer
) -> None:
    """drop_newest keeps the oldest messages; drop_oldest keeps the newest; both count drops."""
    slow, control = await _stalled_pair(asgi_server, policy)
    await control.call("flood", client=slow.id, **FLOOD)
    stats = await control.call("lookup")
    assert stats["send_dropped"] > 0 and stats["dropped"] == stats["send_dropped"]
    seqs = await _drain_seqs(slow)
    assert seqs == sorted(seqs) and len(seqs) + stats["send_dropped"] == FLOOD["count"]
    if policy == "drop_newest":
        assert seqs == list(range(len(seqs)))  # a prefix: the newest were dropped
    else:
        assert seqs[-4:] == [196, 197, 198, 199]  # the queue kept the newest four
    slow.close()
    await control.close()


async def test_disconnect_policy_closes_slow_client_with_1013(
    asgi_server: StartAsgiServer,
) -> None:
    """The disconnect policy closes a client whose queue overflows with code 1013."""
    slow, control = await _stalled_pair(asgi_server, "disconnect")
    await control.call("flood", client=slow.id, **FLOOD)
    seqs = await _drain_seqs(slow)
    assert len(seqs) < FLOOD["count"]
    assert slow.close_code == 1013
    assert await control.call("json") == '{"ok":true}'  # the neighbour is unharmed
    slow.close()
    await control.close()


async def test_send_with_timeout_raises_send_buffer_full(asgi_server: StartAsgiServer) -> None:
    """send_text(timeout=) waits for room, then raises SendBufferFull; nothing is dropped."""
    slow, control = await _stalled_pair(asgi_server, "drop_newest")
    error = await control.expect_error(
        "send_timeout", client=slow.id, count=200, size=64 * 1024, timeout=scaled(0.3)
    )
    assert error == "SendBufferFull"
    assert (await control.call("lookup"))["send_dropped"] == 0
    slow.close()
    await control.close()
