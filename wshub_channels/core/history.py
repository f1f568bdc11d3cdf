"""Room history: positions, the rules that opt rooms in, and what a read returns (pure).

A room whose name matches a pattern of ``WSHUB["HISTORY"]`` keeps its last
messages. Each message stored there gets an ``offset`` one above the
previous one, and the room has an ``epoch``: a string that changes whenever
the room's history may have lost messages (the broker restarted empty, its
stream was reset, or everything in it expired). A :class:`Position` names
one message of one epoch; a client that saw up to a position can ask for
what came after it and learn whether the answer is complete.

This module is pure: the layers store and read, the hub delivers.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HistoryEntry", "HistoryPage", "HistoryRule", "HistoryRules", "Position"]


@dataclass(frozen=True, slots=True)
class Position:
    """A place in a room's history: the offset of a message, and the room's epoch.

    Offset 0 means "before the first message" of that epoch.
    """

    offset: int
    epoch: str

    def __post_init__(self) -> None:
        if not isinstance(self.offset, int) or isinstance(self.offset, bool) or self.offset < 0:
            raise ValueError(f"a position's offset is an int >= 0, not {self.offset!r}")
        if not isinstance(self.epoch, str):
            raise ValueError(f"a position's epoch is a str, not {self.epoch!r}")


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


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One stored message: its offset in the room, and the bytes the sender stored."""

    offset: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """What a history read returns.

    ``entries`` are the stored messages after the asked position, oldest
    first, at most the asked limit. ``position`` is the room's latest
    position now (offset 0 when nothing was ever stored in this epoch).
    ``complete`` is True when the store holds every message after the asked
    position in the same epoch (nothing was trimmed or expired in between);
    a limit that cuts the answer short does not make it incomplete.
    """

    entries: list[HistoryEntry]
    position: Position
    complete: bool


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
