"""A real WebSocket client for the control app in ``tests/apps/hub_app.py``."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections import deque
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from wshub_channels.testing import scaled

_refs = itertools.count(1)


class Peer:
    """One connection: ``call`` runs a hub command; deliveries collect in ``inbox``."""

    def __init__(self, ws: ClientConnection, client_id: str) -> None:
        self.ws = ws
        self.id = client_id
        self.inbox: deque[str | bytes] = deque()
        self.frames = 0

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> Peer:
        """Connect; clients offer permessage-deflate (uvicorn takes it: the ASGI path)
        unless ``WSHUB_TEST_CLIENT_COMPRESSION=none`` (uvicorn writes directly too)."""
        if os.environ.get("WSHUB_TEST_CLIENT_COMPRESSION") == "none":
            kwargs.setdefault("compression", None)
        ws = await connect(url, open_timeout=scaled(5), **kwargs)
        hello = json.loads(await asyncio.wait_for(ws.recv(), scaled(5)))
        return cls(ws, hello["hello"])

    async def _read(self, wait: float) -> None:
        frame = await asyncio.wait_for(self.ws.recv(), scaled(wait))
        self.frames += 1
        if isinstance(frame, bytes):
            self.inbox.append(frame)
        else:
            self.inbox.extend(frame.split("\n"))

    async def call(self, op: str, **args: Any) -> Any:
        """Run a command; return its result or raise AssertionError naming the error."""
        reply = await self.call_raw(op, **args)
        if "error" in reply:
            raise AssertionError(f"{op} failed with {reply['error']}")
        return reply.get("result")

    async def call_raw(self, op: str, **args: Any) -> dict[str, Any]:
        ref = next(_refs)
        await self.ws.send(json.dumps({"op": op, "ref": ref, **args}))
        while True:
            for item in list(self.inbox):
                if isinstance(item, str) and item.startswith('{"reply":'):
                    parsed = json.loads(item)
                    if parsed.get("reply") == ref:
                        self.inbox.remove(item)
                        return dict(parsed)
            await self._read(5)

    async def expect_error(self, op: str, **args: Any) -> str:
        reply = await self.call_raw(op, **args)
        assert "error" in reply, f"{op} succeeded but should have failed"
        return str(reply["error"])

    async def next(self, wait: float = 2) -> str | bytes:
        """Return the next delivery that is not a command reply."""
        while True:
            while self.inbox:
                item = self.inbox.popleft()
                if not (isinstance(item, str) and item.startswith('{"reply":')):
                    return item
            await self._read(wait)

    async def nothing(self, wait: float = 0.3) -> bool:
        """True if no delivery arrives within ``wait`` units."""
        try:
            item = await self.next(wait)
        except TimeoutError:
            return True
        self.inbox.appendleft(item)
        return False

    async def close(self) -> None:
        await self.ws.close()


def hub_server(start: Any, kind: str, **settings: Any) -> Any:
    """Start the test hub app under ``kind`` with ``settings`` as its ``WSHUB``."""
    return start(
        kind, "tests.apps.hub_app:application", {"WSHUB_TEST_SETTINGS": json.dumps(settings)}
    )
