"""Hub-wide hooks (``WSHUB["HOOKS"]``): one object whose methods run for every client.

Subclass :class:`Hooks` and override what you need. Each hook runs before the
consumer's own override of the same name. A ``before_*`` hook rejects by
raising (``AuthenticationFailed`` or ``Unauthorized`` in ``before_connect``
refuses the handshake with 403); ``before_message`` may return a new
``Message`` to transform it. A hook that raises anywhere else is reported to
``on_error`` and counted; the connection survives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .message import Message

if TYPE_CHECKING:
    from .consumer import HubConsumer

__all__ = ["Hooks"]


class Hooks:
    """No-op hub-wide hooks; every method is optional to override."""

    async def before_connect(self, client: HubConsumer) -> None:
        pass

    async def on_connect(self, client: HubConsumer) -> None:
        pass

    async def before_message(self, client: HubConsumer, msg: Message) -> Message:
        return msg

    async def on_message(self, client: HubConsumer, msg: Message) -> None:
        pass

    async def on_close(self, client: HubConsumer, code: int) -> None:
        pass

    async def on_error(self, client: HubConsumer, error: Exception) -> None:
        pass

    async def on_send_dropped(self, client: HubConsumer, data: bytes | str) -> None:
        pass

    async def before_room_join(self, client: HubConsumer, room: str) -> None:
        pass

    async def on_room_join(self, client: HubConsumer, room: str) -> None:
        pass

    async def before_room_leave(self, client: HubConsumer, room: str) -> None:
        pass

    async def on_room_leave(self, client: HubConsumer, room: str) -> None:
        pass
