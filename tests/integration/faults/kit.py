"""Shared pieces of the fault tests: private brokers, probes, streams that stamp time.

Every figure a fault test prints starts with ``FIGURE`` so a run's figures can be
collected with ``pytest -s ... | grep FIGURE`` (see ``docs/reliability.md``).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from tests.integration.peer import Peer
from tests.rig.servers import AsgiServer
from wshub_channels.testing import scaled

APP = "tests.apps.hub_app:application"


def figure(text: str) -> None:
    """Print one measured figure (``pytest -s`` shows it)."""
    print(f"FIGURE {text}", flush=True)


def probe(server: AsgiServer, path: str, timeout: float | None = None) -> tuple[int, Any]:
    """GET ``path``: (status, parsed JSON body)."""
    wait = scaled(2) if timeout is None else timeout
    try:
        with urllib.request.urlopen(server.http_url + path, timeout=wait) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@dataclass
class Listener:
    """Reads one peer's deliveries in a task, stamping each line with its arrival time."""

    peer: Peer
    got: dict[str, float] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            frame = await self.peer.ws.recv()
            now = time.monotonic()
            text = frame.decode() if isinstance(frame, bytes) else frame
            for line in text.split("\n"):
                self.got.setdefault(line, now)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


@dataclass
class Stream:
    """Sends ``<tag><n>`` to ``room`` every ``period`` seconds from one peer, recording
    each call's outcome ("ok" or the error class name) and when it was sent."""

    peer: Peer
    room: str
    tag: str
    period: float
    outcomes: list[tuple[str, float, str]] = field(default_factory=list)  # (text, sent, outcome)
    task: asyncio.Task[None] | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        n = 0
        start = time.monotonic()
        while not self.stopping.is_set():
            text = f"{self.tag}{n}"
            sent = time.monotonic()
            reply = await self.peer.call_raw("broadcast_to_room", room=self.room, text=text)
            self.outcomes.append((text, sent, str(reply.get("error", "ok"))))
            n += 1
            delay = start + n * self.period - time.monotonic()
            await asyncio.sleep(max(0.0, delay))

    async def stop(self) -> None:
        self.stopping.set()
        if self.task is not None:
            await self.task

    def sent_between(self, begin: float, end: float) -> list[tuple[str, float, str]]:
        return [o for o in self.outcomes if begin <= o[1] < end]


def drop_counters(stats: dict[str, int]) -> int:
    """The layer counters under which a message can be dropped after it was accepted."""
    keys = ("full_drops", "expired", "no_channel_drops", "slow_consumer", "receive_lost")
    return sum(int(stats.get(key, 0)) for key in keys)
