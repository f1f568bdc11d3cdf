"""A WebSocket client that really stops reading: a raw socket with a tiny receive buffer.

Client libraries keep reading into memory when the application stops calling
``recv()``, so the server never sees backpressure. This client speaks the
protocol through websockets' sans-I/O ``ClientProtocol`` over a socket it
controls, so when it stops reading, the server's socket fills.
"""

from __future__ import annotations

import asyncio
import json
import socket
from urllib.parse import urlsplit

from websockets.client import ClientProtocol
from websockets.frames import Close, Opcode
from websockets.uri import parse_uri

from wshub_channels.testing import scaled


class StalledClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.protocol = ClientProtocol(parse_uri(url), max_size=None)
        self.texts: list[str] = []
        self.close_code: int | None = None
        self.id = ""

    async def open(self) -> StalledClient:
        parts = urlsplit(self.url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (parts.hostname or "127.0.0.1", parts.port or 80))
        self.sock = sock
        self.protocol.send_request(self.protocol.connect())
        await self._flush()
        while not self.texts:
            await self._read_once(scaled(5))
        self.id = json.loads(self.texts.pop(0))["hello"]
        return self

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        for chunk in self.protocol.data_to_send():
            if chunk:
                await loop.sock_sendall(self.sock, chunk)

    async def _read_once(self, wait: float) -> bool:
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), wait)
        if not data:
            self.protocol.receive_eof()
            return False
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if getattr(event, "opcode", None) == Opcode.TEXT:
                self.texts.append(event.data.decode())  # type: ignore[union-attr]
            elif getattr(event, "opcode", None) == Opcode.CLOSE:
                self.close_code = Close.parse(event.data).code  # type: ignore[union-attr]
        await self._flush()  # pongs and the close reply
        return True

    async def read_all(self, idle: float = 1.0) -> list[str]:
        """Resume reading until nothing arrives for ``idle`` units or the peer closes."""
        try:
            while await self._read_once(scaled(idle)):
                pass
        except (TimeoutError, ConnectionError):
            pass
        return self.texts

    def close(self) -> None:
        self.sock.close()
