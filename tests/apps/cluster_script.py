"""Plain processes on a test cluster's bus, for the presence tests. Prints one JSON line.

``python -m tests.apps.cluster_script publisher PAGE``: a sync script with no
server. Through ``async_to_sync`` (publisher mode) it reads the global client
count and pages ``cluster_clients`` PAGE at a time.

``python -m tests.apps.cluster_script twins WAIT``: builds its channel layer,
then forks, as ``gunicorn --preload`` would: the two processes share a node
id. Each starts its hub, joins a channel to group ``twins``, waits to hear
the other's beat, sends the group a hello and reads both, then asks every
other node for its info (a gather). WAIT is the presence interval's order. Each prints the
twins it reported and whose hellos it got (the child's line comes first).

The bus comes from ``WSHUB_TEST_LAYERS`` / ``WSHUB_TEST_SETTINGS`` (see
``tests/integration/buses.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from asgiref.sync import async_to_sync  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402

from tests.rig.timing import async_wait_until  # noqa: E402
from wshub_channels import get_hub, signals  # noqa: E402


def publisher(page_size: int) -> dict[str, Any]:
    hub = get_hub()
    count = async_to_sync(hub.global_client_count)()
    items: list[list[str]] = []
    offset, total, missing = 0, None, []
    while total is None or offset < total:
        page = async_to_sync(hub.cluster_clients)(limit=page_size, offset=offset)
        items.extend([info.node, info.id] for info in page.items)
        total, missing = page.total, page.missing_nodes
        offset += page_size
    return {"mode": hub.mode, "count": count, "items": items, "total": total, "missing": missing}


async def twin(wait: float) -> dict[str, Any]:
    errors: list[str] = []

    def on_error(sender: Any, error: Exception, **kwargs: Any) -> None:
        errors.append(type(error).__name__)

    signals.hub_error.connect(on_error, weak=False)
    hub = get_hub()
    await hub.start()
    layer = hub.layer
    channel = await layer.new_channel()
    await layer.group_add("twins", channel)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30 * wait
    with contextlib.suppress(TimeoutError):  # until the twin's beat is heard (and reported)
        await async_wait_until(
            lambda: bool(hub.heartbeat.duplicates), 30 * wait, interval=wait / 20
        )
    duplicates = sorted(pid for _, pid in hub.heartbeat.duplicates)
    await asyncio.sleep(wait)  # the twin hears ours, and joins its channel, meanwhile
    await layer.group_send("twins", {"type": "hello", "pid": os.getpid()})
    got = []
    with contextlib.suppress(TimeoutError):
        while len(got) < 2:
            message = await asyncio.wait_for(layer.receive(channel), deadline - loop.time())
            got.append(message["pid"])
    answers = await layer.gather_call("node_info", timeout=5 * wait)
    gathered = sorted(a["info"]["pid"] for a in answers if isinstance(a, dict))
    await asyncio.sleep(3 * wait)  # stay while the twin gathers too
    await hub.shutdown()
    return {
        "pid": os.getpid(),
        "node_id": hub.node_id,
        "duplicates": duplicates,
        "got": sorted(got),
        "gathered": gathered,
        "errors": errors,
    }


def twins(wait: float) -> None:
    get_channel_layer()  # built before the fork, as a preloading server would
    child = os.fork()
    result = asyncio.run(twin(wait))
    if child == 0:
        print(json.dumps(result), flush=True)
        os._exit(0)
    os.waitpid(child, 0)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "publisher":
        print(json.dumps(publisher(int(sys.argv[2]))), flush=True)
    else:
        twins(float(sys.argv[2]))
