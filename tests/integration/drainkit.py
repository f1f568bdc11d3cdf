"""Helpers of the drain tests: HTTP probes, crowds of idle clients, closes, exits, drain logs."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.rig.servers import AsgiServer
from wshub_channels.testing import scaled

__all__ = [
    "APP",
    "Close",
    "aprobe",
    "batches_in_log",
    "closes",
    "exit_of",
    "first_503",
    "open_idle",
    "probe",
    "refused_status",
]

APP = "tests.apps.hub_app:application"
_BATCH = re.compile(r"drain batch (\d+)/(\d+): closing (\d+) client\(s\) at \+([\d.]+)s")


def probe(
    server: AsgiServer, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """One HTTP request to ``server``: (status, JSON body)."""
    request = urllib.request.Request(
        server.http_url + path,
        method=method,
        headers=headers or {},
        data=b"" if method == "POST" else None,
    )
    try:
        with urllib.request.urlopen(request, timeout=scaled(2)) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = error.read()
        return error.code, json.loads(body) if body.startswith(b"{") else {}


async def aprobe(
    server: AsgiServer, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    return await asyncio.to_thread(probe, server, path, method, headers)


async def first_503(server: AsgiServer, since: float, within: float) -> float:
    """Poll ``/readyz`` back to back until it answers 503; seconds from ``since``."""
    deadline = time.monotonic() + within
    while True:
        status, body = await aprobe(server, "/readyz")
        if status == 503:
            assert body["state"] == "draining", body
            return time.monotonic() - since
        assert time.monotonic() < deadline, f"/readyz still {status} after {within:.2f}s"


async def open_idle(url: str, count: int) -> list[ClientConnection]:
    """``count`` clients that read their hello and then nothing (50 handshakes at a time)."""
    gate = asyncio.Semaphore(50)

    async def one() -> ClientConnection:
        async with gate:
            ws = await connect(url, open_timeout=scaled(10))
            await asyncio.wait_for(ws.recv(), scaled(5))
            return ws

    return list(await asyncio.gather(*(one() for _ in range(count))))


@dataclass(frozen=True)
class Close:
    """When (seconds after a reference time) a client saw its close, and the code."""

    at: float
    code: int | None


async def closes(sockets: list[ClientConnection], since: float, within: float) -> list[Close]:
    """Wait for every socket to close; when each closed, and with which code."""

    async def one(ws: ClientConnection) -> Close:
        await ws.wait_closed()
        return Close(time.monotonic() - since, ws.close_code)

    return list(await asyncio.wait_for(asyncio.gather(*(one(ws) for ws in sockets)), within))


async def exit_of(server: AsgiServer, within: float) -> tuple[int, float]:
    """Wait (without signalling it) for the server to exit: (status, monotonic time)."""
    status = await asyncio.to_thread(server.process.wait, within)
    return status, time.monotonic()


async def refused_status(url: str) -> int:
    """The HTTP status a refused handshake got (fails if the handshake is accepted)."""
    try:
        ws = await connect(url, open_timeout=scaled(5))
    except InvalidStatus as refused:
        return int(refused.response.status_code)
    await ws.close()
    raise AssertionError("the handshake was accepted")


def batches_in_log(log: str) -> list[tuple[int, int, int, float]]:
    """The drain batches a server logged: (number, of, clients closed, seconds into the drain)."""
    return [(int(a), int(b), int(c), float(d)) for a, b, c, d in _BATCH.findall(log)]
