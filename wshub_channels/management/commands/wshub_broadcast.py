"""``manage.py wshub_broadcast [--room R | --user U | --client C] TEXT``: send from any process.

Without a target, every client of the cluster gets TEXT (a text frame).
Sends through the bus from this process (publisher mode). Exits with status 1
and a clear message when the bus is unreachable or the client is not found.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...errors import ClientNotFound, InvalidName
from ...hub.hub import get_hub
from ..cli import SLACK, bus_errors, connected_hub, run

__all__ = ["Command"]


async def send(text: str, room: str | None, user: str | None, client: str | None) -> str:
    """Send ``text`` to its target; return what was done, in words."""
    hub = await connected_hub()
    with bus_errors():
        try:
            if room is not None:
                await hub.broadcast_to_room(room, text)
                return f"sent to room {room!r}"
            if user is not None:
                await hub.send_to_user(user, text)
                return f"sent to user {user!r}"
            if client is not None:
                await hub.send_to_client(client, text)
                return f"sent to client {client!r}"
            await hub.broadcast(text)
            return "sent to every client"
        except (ClientNotFound, InvalidName) as exc:
            raise CommandError(str(exc)) from None


class Command(BaseCommand):
    help = "Send a text message to a room, a user, a client, or everyone, across the cluster."

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group()
        target.add_argument("--room", help="send to every member of this room")
        target.add_argument("--user", help="send to every connection of this user id")
        target.add_argument("--client", help="send to this one client id")
        parser.add_argument("text", help="the message (sent as a text frame)")

    def handle(self, *args: Any, **options: Any) -> None:
        timeout = get_hub().layer.request_timeout + SLACK
        done = run(
            send(options["text"], options["room"], options["user"], options["client"]), timeout
        )
        self.stdout.write(done)
