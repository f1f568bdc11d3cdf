"""The chat's WebSocket consumer: one connection per browser tab, any number of rooms.

What it shows of ``wshub_channels``:

- ``JsonHubConsumer`` hooks: ``on_connect`` sets the hub user id to the
  nickname, ``on_json`` handles the page's requests, ``on_error`` turns a
  rate-limit rejection (``WSHUB["LIMITS"]["max_message_rate"]``) into a
  message on the page, ``before_room_join`` keeps the members room for
  logged-in people.
- Rooms: ``join_room``/``leave_room``, ``hub.broadcast_to_room``; cluster-wide
  ``hub.cluster_clients(room=...)`` for "who is here" and
  ``hub.cluster_clients(user_id=...)`` for nicknames in use.
- Room presence events: ``room_presence`` opts every room in, and
  ``on_room_presence`` tells the page who joined or left, on any node.
- Direct messages: ``hub.send_to_user(nick, ...)`` reaches every tab of that
  person, on every node, and no one else.

Limits (rooms per client, people per room, tabs per nickname) raise typed
errors that become ``error`` objects with a ``code`` the page explains.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from wshub_channels import (
    AlreadyInRoom,
    ConnectionClosed,
    HubError,
    InvalidName,
    JsonHubConsumer,
    MaxRoomsReached,
    NotInRoom,
    RateLimitExceeded,
    RoomEvent,
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


class ChatConsumer(JsonHubConsumer):
    """A tab of one person: nickname from the session, any number of rooms."""

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
        if room == MEMBERS_ROOM and self.identity.login is None:
            raise Unauthorized(f"Room {room!r} is for logged-in people: log in first.")

    async def on_room_presence(self, event: RoomEvent) -> None:
        with contextlib.suppress(ConnectionClosed):  # this tab may be closing too
            await self.send_json(
                {
                    "type": "presence",
                    "room": event.room,
                    "event": event.event,
                    "id": event.client_id,
                    "nick": event.user_id,
                }
            )

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
        except (RoomFull, MaxRoomsReached, Unauthorized, NotInRoom, InvalidName) as exc:
            await self.send_error(*_explain(exc, content), kind, content)

    async def _join(self, content: dict[str, Any]) -> None:
        room = clean_room(content.get("room"))
        with contextlib.suppress(AlreadyInRoom):  # joining twice is harmless
            await self.join_room(room)
        await self.send_json({"type": "joined", "room": room, **await self._members(room)})

    async def _leave(self, content: dict[str, Any]) -> None:
        room = clean_room(content.get("room"))
        await self.leave_room(room)
        await self.send_json({"type": "left", "room": room})

    async def _say(self, content: dict[str, Any]) -> None:
        room = clean_room(content.get("room"))
        if not self.in_room(room):
            raise ChatError("not_in_room", f"Join {room!r} before writing there.")
        message = {
            "type": "message",
            "room": room,
            "from": self.user_id,
            "login": self.identity.login,
            "text": clean_text(content.get("text")),
        }
        await self.hub.broadcast_to_room(room, dump_json(message))

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
                rate = self.hub.limits.max_message_rate
                text = f"Slow down: at most {rate:g} messages a second. That one was not sent."
                await self.send_error("rate_limited", text)
        elif isinstance(error, ValueError):
            await self.send_error("bad_request", "The server could not read that request.")
        else:  # the recovery middleware has logged it with its traceback
            await self.send_error("server_error", "Something went wrong on the server.")


def _explain(exc: HubError, content: dict[str, Any]) -> tuple[str, str]:
    """An error code and a sentence for an error the hub raised on purpose."""
    room = content.get("room")
    if isinstance(exc, RoomFull):
        return "room_full", f"Room {room!r} is full. Try another room."
    if isinstance(exc, MaxRoomsReached):
        return "too_many_rooms", "You are in as many rooms as allowed: leave one first."
    if isinstance(exc, Unauthorized):
        return "login_required", str(exc)
    if isinstance(exc, NotInRoom):
        return "not_in_room", f"You are not in {room!r}."
    return "bad_request", str(exc)


_ACTIONS: dict[str, Action] = {
    "join": ChatConsumer._join,
    "leave": ChatConsumer._leave,
    "say": ChatConsumer._say,
    "dm": ChatConsumer._dm,
    "who": ChatConsumer._who,
    "rooms": ChatConsumer._rooms_now,
}
