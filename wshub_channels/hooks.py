"""Hub-wide hooks (``WSHUB["HOOKS"]``): one object whose methods run for every client.

Subclass :class:`Hooks` and override what you need. Each hook runs before the
consumer's own override of the same name. A ``before_*`` hook rejects by
raising (``AuthenticationFailed`` or ``Unauthorized`` in ``before_connect``
refuses the handshake with 403); ``before_message`` may return a new
``Message`` to transform it. A hook that raises anywhere else is reported to
``on_error`` and counted; the connection survives.
"""

from __future__ import annotations

from django.utils.module_loading import import_string

from .message import Message
from .types import Client

__all__ = ["Hooks", "load_hooks"]


class Hooks:
    """No-op hub-wide hooks; every method is optional to override."""

    async def before_connect(self, client: Client) -> None:
        pass

    async def on_connect(self, client: Client) -> None:
        pass

    async def before_message(self, client: Client, msg: Message) -> Message:
        return msg

    async def on_message(self, client: Client, msg: Message) -> None:
        pass

    async def on_close(self, client: Client, code: int) -> None:
        pass

    async def on_error(self, client: Client, error: Exception) -> None:
        pass

    async def on_send_dropped(self, client: Client, data: bytes | str) -> None:
        pass

    async def before_room_join(self, client: Client, room: str) -> None:
        pass

    async def on_room_join(self, client: Client, room: str) -> None:
        pass

    async def before_room_leave(self, client: Client, room: str) -> None:
        pass

    async def on_room_leave(self, client: Client, room: str) -> None:
        pass


def load_hooks(path: str | None) -> Hooks | None:
    """Return the hooks named by ``WSHUB["HOOKS"]``: a class (instantiated) or an object."""
    if path is None:
        return None
    found = import_string(path)
    hooks: Hooks = found() if isinstance(found, type) else found
    return hooks
