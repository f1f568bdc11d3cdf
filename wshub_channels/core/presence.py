"""Presence: what a node says of itself, and the table of the other nodes (pure, no I/O).

Every node publishes a heartbeat each ``PRESENCE_INTERVAL`` on the cluster
subject and a goodbye when it shuts down (see :mod:`wshub_channels.hub.heartbeat`).
A heartbeat is one or more messages, each a dict:

- ``node_id``, ``host``, ``pid``, ``clients``, ``users``: the node's totals,
  repeated in every message, so they are never more than one beat old;
- ``seq``: the beat's number (every part of one beat shares it);
- ``base``: ``None`` when ``rooms`` is the node's full room table, else the
  ``seq`` of the beat this one changes (a delta);
- ``part`` and ``parts``: a beat's table is cut into messages of about
  :data:`CHUNK_BYTES` (:func:`cut`), so it fits any bus's ``max_payload``;
- ``rooms``: ``{room: members on that node}``; in a delta, 0 means gone.

:class:`BeatPlanner` (the sending side) sends the full table on the first
beat, every :data:`FULL_EVERY` beats, and whenever another node asks for it;
in between only the rooms that changed. :class:`PresenceTable` (the
receiving side) applies a delta only on top of the beat it names; after a
gap it answers ``want_full`` so the node is asked for its table at once, so
a late joiner or a node that missed a delta converges within two beats.

A node is keyed by its id *and* its pid: two processes with one node id
(forked after the layer was built) are both kept, and reported.
Not thread-safe; the hub uses it from its own loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "CHUNK_BYTES",
    "FULL_EVERY",
    "MISSED_BEATS",
    "Beat",
    "BeatPlanner",
    "BeatResult",
    "NodeInfo",
    "PresenceTable",
    "biggest_rooms",
    "cut",
]

MISSED_BEATS = 3
FULL_EVERY = 10
#: Roughly how many bytes of room table go into one heartbeat message.
CHUNK_BYTES = 48 * 1024
#: How many rooms' totals the table keeps current (the rooms asked about).
CACHED_ROOMS = 1000
#: A room's estimated wire size on top of its name (msgpack headers and count).
_ROOM_OVERHEAD = 4


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A node as its heartbeats describe it.

    ``rooms`` holds its per-room member counts as far as they are known (a
    node gathered by scatter-gather, rather than read from the table, sends
    none); ``room_count`` is how many rooms it has.
    """

    node_id: str
    host: str = ""
    pid: int = 0
    clients: int = 0
    users: int = 0
    rooms: dict[str, int] = field(default_factory=dict)
    room_count: int = 0

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> NodeInfo:
        """Build from a dict, ignoring unknown keys; raise ``TypeError`` on bad types."""
        known = {k: data[k] for k in _INFO_FIELDS if k in data}
        info = cls(**known)
        if not isinstance(info.node_id, str) or not isinstance(info.rooms, dict):
            raise TypeError("malformed node info")
        for name in ("pid", "clients", "users", "room_count"):
            if not isinstance(getattr(info, name), int):
                raise TypeError(f"malformed node info: {name}")
        return info


_INFO_FIELDS = ("node_id", "host", "pid", "clients", "users", "rooms", "room_count")
_HEAD_FIELDS = ("node_id", "host", "pid", "clients", "users")


def biggest_rooms(rooms: dict[str, int], budget: int) -> dict[str, int]:
    """The most populated rooms whose wire size fits ``budget`` bytes (all of them if they fit)."""
    picked: dict[str, int] = {}
    size = 0
    for room, count in sorted(rooms.items(), key=lambda item: -item[1]):
        size += len(room.encode("utf-8")) + _ROOM_OVERHEAD
        if size > budget:
            break
        picked[room] = count
    return picked


class BeatPlanner:
    """This node's side of the heartbeat: the rooms that changed, and the next beat's messages."""

    def __init__(self, full_every: int = FULL_EVERY, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.seq = 0
        self.full_every = full_every
        self.chunk_bytes = chunk_bytes
        self._dirty: set[str] = set()
        self._full_wanted = True

    def touch(self, room: str) -> None:
        """Note that ``room``'s member count on this node changed."""
        self._dirty.add(room)

    def want_full(self) -> None:
        """Make the next beat carry the whole table (a node asked, or one joined)."""
        self._full_wanted = True

    def next_beat(self, rooms: Callable[[], Sequence[str]]) -> Beat:
        """Start the next beat: which rooms it carries (a full table, or what changed),
        cut into parts by their names' size. ``rooms()`` lists this node's rooms.

        Counts are read later, part by part (:meth:`Beat.message`), so a large
        table costs many short steps of the event loop rather than one long one.
        """
        self.seq += 1
        full = self._full_wanted or self.seq % self.full_every == 1
        names = list(rooms()) if full else list(self._dirty)
        self._dirty.clear()
        self._full_wanted = False
        return Beat(self.seq, None if full else self.seq - 1, cut(names, self.chunk_bytes))

    def plan(
        self,
        head: dict[str, Any],
        rooms: Callable[[], Sequence[str]],
        count: Callable[[str], int],
    ) -> list[dict[str, Any]]:
        """Every message of the next beat at once (``head``: the node's totals)."""
        beat = self.next_beat(rooms)
        return [beat.message(head, part, count) for part in range(beat.parts)]


class Beat(NamedTuple):
    """One beat being sent: its number, what it changes (None: a full table), its parts."""

    seq: int
    base: int | None
    chunks: list[list[str]]

    @property
    def parts(self) -> int:
        return len(self.chunks)

    def message(
        self, head: dict[str, Any], part: int, count: Callable[[str], int]
    ) -> dict[str, Any]:
        """Part ``part`` as it goes on the bus, with each room's member count read now.

        ``head`` holds the node's totals (``node_id``, ``host``, ``pid``,
        ``clients``, ``users``).
        """
        rooms = {room: count(room) for room in self.chunks[part]}
        return {
            **head,
            "seq": self.seq,
            "base": self.base,
            "part": part,
            "parts": self.parts,
            "rooms": rooms,
        }


def cut(names: list[str], budget: int = CHUNK_BYTES) -> list[list[str]]:
    """Cut room names into runs of about ``budget`` bytes on the wire (at least one run).

    Sizes are estimated from the average name (C-speed sums, no step per
    room); a run of long non-ASCII names may come out up to 4 times over
    ``budget``, still far below any bus's ``max_payload``.
    """
    if not names:
        return [[]]
    average = sum(map(len, names)) / len(names) + _ROOM_OVERHEAD
    per_part = max(1, int(budget / average))
    return [names[i : i + per_part] for i in range(0, len(names), per_part)]


class BeatResult(NamedTuple):
    """What one heartbeat message told the table."""

    new: bool  # the node was not known
    want_full: bool  # the node's room table is out of step: ask it for a full one
    twin: NodeInfo | None  # another process already beats with this node id


class _Peer:
    """One other node as the table knows it."""

    __slots__ = ("applied", "head", "latest", "parts", "rooms", "seen")

    def __init__(self, head: dict[str, Any], now: float) -> None:
        self.head = head
        self.seen = now
        self.rooms: dict[str, int] = {}
        self.applied: int | None = None  # the seq the room table is at; None: unknown
        self.latest = 0  # the newest seq heard
        self.parts: dict[int, dict[int, dict[str, int]]] = {}  # seq -> part -> rooms

    def info(self, rooms: bool = True) -> NodeInfo:
        """A snapshot: its ``rooms`` is a copy (the table keeps changing its own)."""
        h = self.head
        table = dict(self.rooms) if rooms else {}
        return NodeInfo(
            h["node_id"], h["host"], h["pid"], h["clients"], h["users"], table, len(self.rooms)
        )


def _check_counts(rooms: dict[str, int]) -> None:
    counts = rooms.values()
    if set(map(type, counts)) - {int} or (counts and min(counts) < 0):  # C-speed passes
        raise TypeError("malformed heartbeat: a room count is not a count")


def _check_beat(msg: dict[str, Any]) -> None:
    for name in ("pid", "clients", "users", "seq", "part", "parts"):
        if not isinstance(msg.get(name), int):
            raise TypeError(f"malformed heartbeat: {name}")
    if not isinstance(msg.get("node_id"), str) or not isinstance(msg.get("host"), str):
        raise TypeError("malformed heartbeat: node_id, host")
    if not isinstance(msg.get("rooms"), dict) or not 0 <= msg["part"] < msg["parts"]:
        raise TypeError("malformed heartbeat: rooms, part")
    base = msg.get("base")
    if base is not None and not isinstance(base, int):
        raise TypeError("malformed heartbeat: base")


class PresenceTable:
    """The other nodes of the cluster, as last heard."""

    def __init__(self) -> None:
        self._peers: dict[tuple[str, int], _Peer] = {}
        self._newest: float | None = None  # the latest beat's arrival
        self._unknown = 0  # peers whose room table is not known
        self._clients = 0  # the peers' clients, summed as beats arrive
        #: Room totals over the peers, for the rooms asked about (bounded): kept in step
        #: as tables change, so a repeated room_count is O(1) and a table costs O(cache).
        self._cached: dict[str, int] = {}

    def _forget(self, key: tuple[str, int]) -> NodeInfo:
        peer = self._peers.pop(key)
        self._unknown -= peer.applied is None
        self._clients -= peer.head.get("clients", 0)
        self._shift(peer.rooms, {})
        self._newest = max((p.seen for p in self._peers.values()), default=None)
        return peer.info()

    def _shift(self, old: dict[str, int], new: dict[str, int]) -> None:
        """A peer's table went from ``old`` to ``new``: move the cached totals with it."""
        cached = self._cached
        for room in cached:
            cached[room] += new.get(room, 0) - old.get(room, 0)

    def beat(self, msg: dict[str, Any], now: float) -> BeatResult:
        """Take one heartbeat message; raise ``TypeError`` if it is malformed."""
        _check_beat(msg)
        key = (msg["node_id"], msg["pid"])
        peer = self._peers.get(key)
        new = peer is None
        twin = None
        if peer is None:
            twin = next((p.info() for k, p in self._peers.items() if k[0] == key[0]), None)
            peer = self._peers[key] = _Peer({}, now)
            self._unknown += 1
        self._clients += msg["clients"] - peer.head.get("clients", 0)
        peer.head = {name: msg[name] for name in _HEAD_FIELDS}
        peer.seen = now
        self._newest = now if self._newest is None else max(self._newest, now)
        was_unknown = peer.applied is None
        want_full = self._take_rooms(peer, msg)
        self._unknown += (peer.applied is None) - was_unknown
        return BeatResult(new, want_full, twin)

    def _take_rooms(self, peer: _Peer, msg: dict[str, Any]) -> bool:
        """Add one message's rooms to ``peer``; return True if its table is out of step."""
        seq = msg["seq"]
        if seq < peer.latest or seq == peer.applied:
            return False  # a part of an older beat arriving late, or of one complete
        peer.latest = seq
        parts = peer.parts.setdefault(seq, {})
        parts[msg["part"]] = msg["rooms"]
        for old in [s for s in peer.parts if s < seq]:
            del peer.parts[old]  # an older beat never completed: it is lost
        if len(parts) < msg["parts"]:
            return False
        del peer.parts[seq]
        base = msg["base"]
        if base is None:
            new = {room: n for part in parts.values() for room, n in part.items() if n}
            _check_counts(new)
            self._shift(peer.rooms, new)
            peer.rooms = new
        elif peer.applied is not None and peer.applied == base:
            for part in parts.values():
                self._apply(peer, part)
        else:
            peer.applied = None
            return True
        peer.applied = seq
        return False

    def _apply(self, peer: _Peer, part: dict[str, int]) -> None:
        """Apply one part of a delta: each room's new count (0: gone)."""
        _check_counts(part)
        rooms, cached = peer.rooms, self._cached
        for room, n in part.items():
            if room in cached:
                cached[room] += n - rooms.get(room, 0)
            if n:
                rooms[room] = n
            else:
                rooms.pop(room, None)

    def leave(self, node_id: str, pid: int) -> NodeInfo | None:
        """Forget a node that said goodbye; return what was known of it."""
        return self._forget((node_id, pid)) if (node_id, pid) in self._peers else None

    def expire(self, now: float, interval: float) -> list[NodeInfo]:
        """Evict and return the nodes silent for more than ``MISSED_BEATS`` intervals."""
        cutoff = now - MISSED_BEATS * interval
        gone = [key for key, peer in self._peers.items() if peer.seen < cutoff]
        return [self._forget(key) for key in gone]

    def nodes(self, rooms: bool = True) -> list[NodeInfo]:
        """Every node as known now; ``rooms=False`` leaves the per-room counts out (cheap)."""
        return [peer.info(rooms) for peer in self._peers.values()]

    def node_counts(self, room: str | None = None) -> list[tuple[str, int]]:
        """Each node's clients, or its members of ``room``: ``(node id, count)``."""
        if room is None:
            return [(p.head["node_id"], p.head["clients"]) for p in self._peers.values()]
        return [(p.head["node_id"], p.rooms.get(room, 0)) for p in self._peers.values()]

    def newest(self) -> float | None:
        """When the most recent heartbeat came in (None for an empty table)."""
        return self._newest

    @property
    def rooms_known(self) -> bool:
        """True when every node's room table is complete and in step."""
        return self._unknown == 0

    def client_count(self) -> int:
        """The clients of every node in the table (O(1): kept as beats arrive)."""
        return self._clients

    def room_count(self, room: str) -> int:
        """The members of ``room`` on every node in the table.

        O(nodes) the first time a room is asked about, then O(1): its total is
        kept as tables change (for up to :data:`CACHED_ROOMS` rooms).
        """
        found = self._cached.get(room)
        if found is None:
            found = sum(peer.rooms.get(room, 0) for peer in self._peers.values())
            if len(self._cached) >= CACHED_ROOMS:
                self._cached.clear()
            self._cached[room] = found
        return found

    def __len__(self) -> int:
        return len(self._peers)

    def __contains__(self, node_id: object) -> bool:
        return any(key[0] == node_id for key in self._peers)
