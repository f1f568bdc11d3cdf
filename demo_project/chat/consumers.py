"""The chat's WebSocket consumer: one connection per browser tab, any number of rooms.

What it shows of ``wshub_channels``:

- Client protocol v1 (``HubProtocolMixin``; the page uses ``wshub.js``):
  joining, leaving and writing in rooms are protocol frames, so rooms carry
  offsets, history (``WSHUB["HISTORY"]``) and recovery after a reconnect;
  :meth:`on_room_send` turns a line into the chat's message; ``protocol_error``
  words the refusals for people; presence events reach the page as
  ``presence`` frames.
- ``JsonHubConsumer`` hooks for the page's own requests (JSON without
  ``"t"``): ``on_connect`` sets the hub user id to the nickname, ``on_json``
  answers ``who``, ``rooms`` and ``dm``, ``on_error`` turns a rate-limit
  rejection (``WSHUB["LIMITS"]["max_message_rate"]``) into a notice,
  ``before_room_join`` keeps the members room for logged-in people.
- Rooms: ``hub.broadcast_to_room``; cluster-wide ``hub.cluster_clients(room=...)``
  for "who is here" and ``hub.cluster_clients(user_id=...)`` for nicknames in use.
- Room presence events: ``room_presence`` opts every room in.
- Direct messages: ``hub.send_to_user(nick, ...)`` reaches every tab of that
  person, on every node, and no one else.

Limits (rooms per client, people per room, tabs per nickname) raise typed
errors that become ``error`` frames with a ``code`` the page explains.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from wshub_channels import (
    ConnectionClosed,
    HubProtocolMixin,
    InvalidName,
    JsonHubConsumer,
    MaxRoomsReached,
    NotInRoom,
    RateLimitExceeded,
    RoomFull,
    Unauthorized,
)
from wshub_channels.connection.consumer import dump_json

from .directory import directory_for
from .identity import Identity, earlier_claim, read_identity
from .protocol import MEMBERS_ROOM, ChatError, clean_nickname, clean_room, clean_text

__all__ = ["ChatConsumer"]

logger = logging.getLogger("demo_project.chat")

#: Close codes the page explains (4000-4999 pass through daphne and uvicorn alike).
CLOSE_NO_NICKNAME = 4401
CLOSE_NICKNAME_TAKEN = 4409
#: At most one "slow down" notice per this many seconds (not one per dropped message).
RATE_NOTICE_EVERY = 1.0
#: The most members one "who" answer lists.
MAX_MEMBERS = 200

Action = Callable[["ChatConsumer", dict[str, Any]], Awaitable[None]]


class ChatConsumer(HubProtocolMixin, JsonHubConsumer):  # type: ignore[misc]
    """A tab of one person: nickname from the session, any number of rooms."""

    protocol_ping = getattr(settings, "DEMO_PING", 20.0)
    identity = Identity(None, None, None)
    rate_noticed = -RATE_NOTICE_EVERY  # when the page was last told it is rate limited

    # -- connection --------------------------------------------------------------

    async def before_connect(self) -> None:
        self.identity = await read_identity(self.scope["session"], self.scope.get("user"))

    async def on_connect(self) -> None:
        me = self.identity
        if me.nick is None or me.person is None:
            await self._refuse("no_nickname", "Pick a nickname first.", CLOSE_NO_NICKNAME)
            return
        self.set_metadata("person", me.person)
        if me.login:
            self.set_metadata("login", me.login)
        # Raises MaxUserConnectionsReached past max_connections_per_user: the hub then
        # closes this connection with 1013 (4013 under daphne) and the page says why.
        await self.set_user_id(me.nick)
        if await earlier_claim(self.hub, me.nick, me.person, self.id):
            text = f"The nickname {me.nick!r} is in use by someone else."
            await self._refuse("nickname_taken", text, CLOSE_NICKNAME_TAKEN)
            return
        directory = directory_for(self.hub)
        await self.send_json(
            {
                "type": "hello",
                "id": self.id,
                "node": self.hub.node_id,
                "nick": me.nick,
                "login": me.login,
                "members_room": MEMBERS_ROOM,
            }
        )
        await self.send_json({"type": "rooms", "rooms": await directory.current()})

    async def _refuse(self, code: str, text: str, close_code: int) -> None:
        await self.send_error(code, text)
        await self.close(close_code, code)

    def room_presence(self, room: str) -> bool:
        return True  # every room tells its members who comes and goes

    async def before_room_join(self, room: str) -> None:
        try:
            if clean_room(room) != room:
                raise ChatError("bad_room", "Room names are lower-case, without extra spaces.")
        except ChatError as exc:
            raise InvalidName(exc.message) from None
        if room == MEMBERS_ROOM and self.identity.login is None:
            raise Unauthorized(f"Room {room!r} is for logged-in people: log in first.")

    async def on_room_send(self, room: str, data: str) -> None:
        """A line typed in ``room`` (a ``send`` frame): everyone there gets it, in order."""
        if not self.in_room(room):
            raise ChatError("not_in_room", f"Join {room!r} before writing there.")
        message = {
            "type": "message",
            "room": room,
            "from": self.user_id,
            "login": self.identity.login,
            "text": clean_text(data),
        }
        await self.hub.broadcast_to_room(room, dump_json(message))

    def protocol_error(self, exc: BaseException, frame: Any) -> tuple[str, str]:
        """The refusals of joins, leaves and lines, in the page's words."""
        code, text = super().protocol_error(exc, frame)
        room = getattr(frame, "room", None)
        if isinstance(exc, ChatError):
            return exc.code, exc.message
        if isinstance(exc, RoomFull):
            return code, f"Room {room!r} is full. Try another room."
        if isinstance(exc, MaxRoomsReached):
            return code, "You are in as many rooms as allowed: leave one first."
        if isinstance(exc, NotInRoom):
            return code, f"You are not in {room!r}."
        if isinstance(exc, RateLimitExceeded):
            return code, self._slow_down()
        return code, text

    # -- requests ------------------------------------------------------------------

    async def on_json(self, content: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        action = _ACTIONS.get(kind) if isinstance(kind, str) else None
        try:
            if action is None:
                raise ChatError("bad_request", "The server did not understand that request.")
            await action(self, content)
        except ChatError as exc:
            await self.send_error(exc.code, exc.message, kind, content)
        except InvalidName as exc:
            await self.send_error("bad_request", str(exc), kind, content)

    async def _dm(self, content: dict[str, Any]) -> None:
        to = clean_nickname(content.get("to"))
        text = clean_text(content.get("text"))
        page = await self.hub.cluster_clients(user_id=to, limit=1)
        if not page.total:
            raise ChatError("no_such_user", f"Nobody called {to!r} is connected.")
        message = {"type": "dm", "from": self.user_id, "to": to, "text": text}
        await self.hub.send_to_user(to, dump_json(message))
        if to != self.user_id:  # a note to yourself already reached this tab
            await self.send_json({**message, "echo": True})

    async def _who(self, content: dict[str, Any]) -> None:
        room = clean_room(content.get("room"))
        await self.send_json({"type": "who", "room": room, **await self._members(room)})

    async def _rooms_now(self, content: dict[str, Any]) -> None:
        await self.send_json({"type": "rooms", "rooms": await directory_for(self.hub).current()})

    async def _members(self, room: str) -> dict[str, Any]:
        page = await self.hub.cluster_clients(room=room, limit=MAX_MEMBERS)
        members = [
            {"id": info.id, "nick": info.user_id, "login": info.metadata.get("login")}
            for info in page.items
        ]
        return {"members": members, "total": page.total, "missing_nodes": page.missing_nodes}

    # -- errors ----------------------------------------------------------------------

    async def send_error(
        self, code: str, text: str, action: str | None = None, content: Any = None
    ) -> None:
        """Tell the page that ``action`` (about ``content["room"]``, if any) was refused."""
        if self.is_closed:
            return
        room = content.get("room") if isinstance(content, dict) else None
        error = {"type": "error", "code": code, "message": text, "action": action}
        if isinstance(room, str):
            error["room"] = room
        with contextlib.suppress(ConnectionClosed):
            await self.send_json(error)

    async def on_error(self, error: Exception) -> None:
        if isinstance(error, RateLimitExceeded):
            now = time.monotonic()
            if now - self.rate_noticed >= RATE_NOTICE_EVERY:
                self.rate_noticed = now
                await self.send_error("rate_limited", self._slow_down())
        elif isinstance(error, ValueError):
            await self.send_error("bad_request", "The server could not read that request.")
        else:  # the recovery middleware has logged it with its traceback
            await self.send_error("server_error", "Something went wrong on the server.")

    def _slow_down(self) -> str:
        rate = self.hub.limits.max_message_rate
        return f"Slow down: at most {rate:g} messages a second. That one was not sent."


_ACTIONS: dict[str, Action] = {
    "dm": ChatConsumer._dm,
    "who": ChatConsumer._who,
    "rooms": ChatConsumer._rooms_now,
}
