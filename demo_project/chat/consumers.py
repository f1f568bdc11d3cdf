"""The demo chat: each socket joins one room; messages go to the room, echoes to the sender."""

from __future__ import annotations

from typing import Any

from wshub_channels import JsonHubConsumer, get_hub
from wshub_channels.consumer import dump_json


class ChatConsumer(JsonHubConsumer):
    """JSON protocol: the client sends {"text": ...}; the server sends {"kind", "text", ...}."""

    async def on_connect(self) -> None:
        self.room = self.scope["url_route"]["kwargs"]["room"]
        await self.join_room(self.room)
        await self.send_json({"kind": "welcome", "id": self.id, "room": self.room})
        await self._presence()

    async def on_json(self, content: Any) -> None:
        text = str(content.get("text", ""))[:2000] if isinstance(content, dict) else ""
        await self.send_json({"kind": "echo", "text": text})
        message = {"kind": "chat", "text": text, "from": self.id[-6:]}
        await get_hub().broadcast_to_room(self.room, dump_json(message), exclude=[self])

    async def on_close(self, code: int) -> None:
        if hasattr(self, "room"):
            await self._presence()

    async def _presence(self) -> None:
        hub = get_hub()
        count = hub.room_count(self.room)
        await hub.broadcast_to_room(self.room, dump_json({"kind": "presence", "count": count}))
