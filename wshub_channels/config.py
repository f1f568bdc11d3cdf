"""Config, Limits and DropPolicy: frozen dataclasses with builders.

Both classes are immutable; every ``with_*`` builder returns a modified copy.
``from_dict`` builds them from the ``WSHUB["CONFIG"]`` / ``WSHUB["LIMITS"]``
settings form and raises ``ValueError`` naming an unknown key or a bad value.
This module is pure.
"""

from __future__ import annotations

import dataclasses
import enum
import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Self

__all__ = ["Config", "DropPolicy", "HistoryRule", "HistoryRules", "Limits"]


class DropPolicy(enum.StrEnum):
    """What a full per-connection outbound queue does with one more message."""

    DROP_NEWEST = "drop_newest"  # discard the new message (the default)
    DROP_OLDEST = "drop_oldest"  # evict the oldest queued message
    DISCONNECT = "disconnect"  # close the slow client with 1013


def _from_dict(cls: type[Any], data: Mapping[str, Any], what: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown {what} key(s): {', '.join(unknown)}")
    obj = cls(**data)
    obj.validate()
    return obj


@dataclass(frozen=True, slots=True)
class Config:
    """Per-connection behaviour. Defaults follow the Go library where it has one.

    ``direct_writes`` (True): write each message's frame, built once per
    message, straight to the socket of every connection whose server is known
    (daphne, uvicorn with each of its ``ws`` implementations), while that
    connection is open, negotiated no extension, has nothing queued or in
    flight and the server's buffer for it is empty; every other write goes
    through the ASGI ``send`` (see :mod:`wshub_channels.connection.directwrite`).
    False: every write goes through the ASGI ``send``.

    ``broadcast_batch_size`` (1000): a local fan-out to more recipients than
    this yields to the event loop after each batch of that many, so one large
    broadcast never stalls the loop (an in-memory queue costs about 1 µs a
    recipient and a socket write a few µs, so a batch holds the loop for about
    1 to 10 ms). Fan-outs, and the hub's sends to one client or user, are
    delivered in the order they were made: a later one waits for the one
    still being fanned out.
    """

    max_message_size: int = 512 * 1024  # inbound frame limit; larger frames close with 1009
    send_queue_size: int = 256  # outbound queue bound per connection, in frames
    send_queue_bytes: int = 8 * 1024 * 1024  # ... and in bytes of payload (0: no byte bound)
    write_timeout: float = 10.0  # seconds a single socket write may take (uvicorn)
    idle_timeout: float = 0.0  # close a client silent this long (0: never)
    compression: bool = False  # ask the server for permessage-deflate where it can
    coalesce_writes: bool = False  # join queued text messages with "\n"
    coalesce_max_bytes: int = 64 * 1024  # cap of one coalesced frame
    drop_policy: DropPolicy = DropPolicy.DROP_NEWEST
    check_origin: str | Callable[..., bool] = "wshub_channels.origin.allow_same_origin"
    close_on_rate_limit: bool = False  # close with 1008 instead of only reporting
    direct_writes: bool = True  # frame once, write straight to idle known sockets
    broadcast_batch_size: int = 1000  # recipients per fan-out batch between loop yields

    @classmethod
    def default(cls) -> Self:
        return cls()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        data = dict(data)
        if "drop_policy" in data:
            data["drop_policy"] = DropPolicy(data["drop_policy"])
        result: Config = _from_dict(cls, data, "WSHUB['CONFIG']")
        return result

    def validate(self) -> None:
        names = (
            "max_message_size",
            "send_queue_size",
            "coalesce_max_bytes",
            "broadcast_batch_size",
        )
        for name in names:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        value = self.send_queue_bytes
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"send_queue_bytes must be an int >= 0, got {value!r}")
        for name in ("write_timeout", "idle_timeout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if not isinstance(self.drop_policy, DropPolicy):
            raise ValueError(f"drop_policy must be a DropPolicy, got {self.drop_policy!r}")

    def with_max_message_size(self, size: int) -> Config:
        return replace(self, max_message_size=size)

    def with_send_queue_size(self, size: int) -> Config:
        return replace(self, send_queue_size=size)

    def with_send_queue_bytes(self, size: int) -> Config:
        return replace(self, send_queue_bytes=size)

    def with_write_timeout(self, seconds: float) -> Config:
        return replace(self, write_timeout=seconds)

    def with_idle_timeout(self, seconds: float) -> Config:
        return replace(self, idle_timeout=seconds)

    def with_compression(self, enabled: bool = True) -> Config:
        return replace(self, compression=enabled)

    def with_coalescing(self, enabled: bool = True, max_bytes: int | None = None) -> Config:
        return replace(
            self, coalesce_writes=enabled, coalesce_max_bytes=max_bytes or self.coalesce_max_bytes
        )

    def with_drop_policy(self, policy: DropPolicy | str) -> Config:
        return replace(self, drop_policy=DropPolicy(policy))

    def with_check_origin(self, check: str | Callable[..., bool]) -> Config:
        return replace(self, check_origin=check)

    def with_close_on_rate_limit(self, enabled: bool = True) -> Config:
        return replace(self, close_on_rate_limit=enabled)

    def with_direct_writes(self, enabled: bool = True) -> Config:
        return replace(self, direct_writes=enabled)

    def with_broadcast_batch_size(self, size: int) -> Config:
        return replace(self, broadcast_batch_size=size)


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-node limits. Every count of 0 means unlimited.

    ``max_message_rate`` is the Go library's name for the per-connection message
    rate; ``max_messages_per_second`` is accepted as an alias, in ``from_dict``
    (``WSHUB["LIMITS"]``) and as a read-only property.
    """

    max_connections: int = 0
    max_connections_per_user: int = 0
    max_rooms_per_client: int = 0
    max_clients_per_room: int = 0
    max_message_rate: float = 0  # messages per second per connection, token bucket
    max_bytes_per_second: float = 0  # per connection, token bucket
    burst: float = 0  # bucket size in seconds of rate (0: one second's worth)

    @classmethod
    def default(cls) -> Self:
        return cls()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Limits:
        data = dict(data)
        if "max_messages_per_second" in data:
            if "max_message_rate" in data:
                raise ValueError(
                    "WSHUB['LIMITS'] sets both max_message_rate and its alias "
                    "max_messages_per_second; keep max_message_rate"
                )
            data["max_message_rate"] = data.pop("max_messages_per_second")
        result: Limits = _from_dict(cls, data, "WSHUB['LIMITS']")
        return result

    @property
    def max_messages_per_second(self) -> float:
        """Alias of :attr:`max_message_rate` (the Go library's name is the documented one)."""
        return self.max_message_rate

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{f.name} must be a number >= 0, got {value!r}")

    def with_max_connections(self, n: int) -> Limits:
        return replace(self, max_connections=n)

    def with_max_connections_per_user(self, n: int) -> Limits:
        return replace(self, max_connections_per_user=n)

    def with_max_rooms_per_client(self, n: int) -> Limits:
        return replace(self, max_rooms_per_client=n)

    def with_max_clients_per_room(self, n: int) -> Limits:
        return replace(self, max_clients_per_room=n)

    def with_max_message_rate(self, messages_per_second: float) -> Limits:
        return replace(self, max_message_rate=messages_per_second)

    def with_max_bytes_per_second(self, bytes_per_second: float) -> Limits:
        return replace(self, max_bytes_per_second=bytes_per_second)

    def with_rate_limit(
        self, messages_per_second: float = 0, bytes_per_second: float = 0, burst: float = 0
    ) -> Limits:
        return replace(
            self,
            max_message_rate=messages_per_second,
            max_bytes_per_second=bytes_per_second,
            burst=burst,
        )


@dataclass(frozen=True, slots=True)
class HistoryRule:
    """How much of a room to keep: at most ``size`` messages, each for ``ttl`` seconds."""

    size: int
    ttl: float

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 1:
            raise ValueError(f"history size is an int >= 1, not {self.size!r}")
        if not isinstance(self.ttl, (int, float)) or isinstance(self.ttl, bool) or self.ttl <= 0:
            raise ValueError(f"history ttl is a number of seconds > 0, not {self.ttl!r}")


@dataclass(frozen=True)
class HistoryRules:
    """``WSHUB["HISTORY"]`` read once: room name patterns mapped to rules.

    Patterns are shell-style (``fnmatch``, case-sensitive): ``"chat.*"``
    matches ``"chat.lobby"``; a name without wildcards matches only itself.
    The first pattern that matches, in the setting's order, wins. A room that
    matches none keeps no history and costs nothing.
    """

    rules: tuple[tuple[str, HistoryRule], ...] = ()
    _compiled: tuple[tuple[re.Pattern[str], HistoryRule], ...] = field(
        init=False, repr=False, compare=False, default=()
    )
    _cache: dict[str, HistoryRule | None] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        compiled = tuple((re.compile(fnmatch.translate(p)), rule) for p, rule in self.rules)
        object.__setattr__(self, "_compiled", compiled)

    @classmethod
    def parse(cls, setting: Mapping[str, Any] | None) -> HistoryRules:
        """Read ``WSHUB["HISTORY"]``; raise ``ValueError`` naming the bad entry."""
        if not setting:
            return cls()
        if not isinstance(setting, Mapping):
            raise ValueError("WSHUB['HISTORY'] maps room patterns to {'size': N, 'ttl': seconds}")
        rules: list[tuple[str, HistoryRule]] = []
        for pattern, spec in setting.items():
            if not isinstance(pattern, str) or not pattern:
                raise ValueError(f"WSHUB['HISTORY']: a pattern is a non-empty str: {pattern!r}")
            if not isinstance(spec, Mapping) or set(spec) - {"size", "ttl"} or "size" not in spec:
                raise ValueError(
                    f"WSHUB['HISTORY'][{pattern!r}] is {{'size': N, 'ttl': seconds}}, not {spec!r}"
                )
            try:
                rule = HistoryRule(spec["size"], spec.get("ttl", 300))
            except ValueError as exc:
                raise ValueError(f"WSHUB['HISTORY'][{pattern!r}]: {exc}") from None
            rules.append((pattern, rule))
        return cls(tuple(rules))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def rule_for(self, room: str) -> HistoryRule | None:
        """The rule of ``room``, or None when it keeps no history."""
        if not self._compiled:
            return None
        cache = self._cache
        try:
            return cache[room]
        except KeyError:
            pass
        found = next((rule for regex, rule in self._compiled if regex.match(room)), None)
        if len(cache) >= 65536:  # bounded: room names come from users
            cache.clear()
        cache[room] = found
        return found
