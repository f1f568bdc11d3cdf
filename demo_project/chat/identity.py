"""Who is chatting: a nickname kept in the session, unique among the people connected.

A person is one browser session: the session holds their nickname and a
random ``person`` token that all their tabs share. Each connection puts the
nickname in its hub user id (so ``hub.send_to_user(nick, ...)`` reaches every
tab of that person, on every node) and the token in its metadata (listed
cluster-wide), so the server can tell "my other tab" from "someone else
using this nickname" with one cluster-wide query.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from wshub_channels import ClientInfo, Hub

from .protocol import ChatError, clean_nickname

__all__ = [
    "NICK_KEY",
    "PERSON_KEY",
    "Identity",
    "check_nickname_free",
    "earlier_claim",
    "read_identity",
    "remember_nickname",
]

NICK_KEY = "chat_nick"
PERSON_KEY = "chat_person"
#: How many connections of one nickname a lookup reads (a person's tabs on every node).
_LOOKUP = 50


@dataclass(frozen=True, slots=True)
class Identity:
    """``nick`` and ``person`` from the session (None before a nickname is picked);
    ``login`` is the Django username of a logged-in person."""

    nick: str | None
    person: str | None
    login: str | None


async def read_identity(session: Any, user: Any) -> Identity:
    """The identity in a session (a request's, or a WebSocket scope's) and a user."""
    nick = await session.aget(NICK_KEY)
    person = await session.aget(PERSON_KEY)
    login = user.get_username() if user is not None and user.is_authenticated else None
    return Identity(nick if isinstance(nick, str) else None, person, login)


async def remember_nickname(session: Any, nick: str) -> None:
    """Keep ``nick`` in the session, and give the session a person token if it has none."""
    await session.aset(NICK_KEY, nick)
    if not await session.aget(PERSON_KEY):
        await session.aset(PERSON_KEY, secrets.token_hex(8))


async def _holders(hub: Hub, nick: str) -> list[ClientInfo]:
    page = await hub.cluster_clients(user_id=nick, limit=_LOOKUP)
    return page.items


async def check_nickname_free(hub: Hub, value: object, person: str | None) -> str:
    """Return the cleaned nickname, or raise ``ChatError`` if someone else connected uses it."""
    nick = clean_nickname(value)
    if any(info.metadata.get("person") != person for info in await _holders(hub, nick)):
        raise ChatError("nickname_taken", f"The nickname {nick!r} is in use by someone else.")
    return nick


async def earlier_claim(hub: Hub, nick: str, person: str, me: str) -> bool:
    """True if someone else (another ``person``) took ``nick`` before connection ``me``.

    Run after the connection took the nickname: when two people pick the same
    one at the same moment, both see each other and the later one gives way.
    """
    holders = await _holders(hub, nick)
    mine = next((info for info in holders if info.id == me), None)
    if mine is None:
        return False

    def order(info: ClientInfo) -> tuple[datetime, str]:
        return (info.connected_since or datetime.min.replace(tzinfo=UTC), info.id)

    return any(
        info.metadata.get("person") != person and order(info) < order(mine) for info in holders
    )
