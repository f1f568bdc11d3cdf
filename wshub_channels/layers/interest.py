"""Local membership: which local members belong to which group, room or user.

Pure bookkeeping with no I/O. Memberships live in namespaces (``"g"`` for
Channels groups, ``"r"`` for rooms, ``"u"`` for users) so that a room is never
a group. :meth:`Interest.add` reports when a name gains its first local member
and :meth:`Interest.discard` when it loses its last one: those are the moments
the node subscribes to, or unsubscribes from, the name's bus subject.

Not thread-safe by itself; the layer calls it from one thread at a time.
"""

from __future__ import annotations

__all__ = ["Interest"]


class Interest:
    """Members per (namespace, name), with a reverse index per member."""

    __slots__ = ("_by_member", "_names")

    def __init__(self) -> None:
        self._names: dict[str, dict[str, dict[str, float]]] = {}
        self._by_member: dict[str, set[tuple[str, str]]] = {}

    def add(self, ns: str, name: str, member: str, now: float) -> bool:
        """Add (or refresh) ``member``; return True if ``name`` had no member before."""
        table = self._names.setdefault(ns, {})
        members = table.get(name)
        first = members is None
        if members is None:
            members = table[name] = {}
        members[member] = now
        self._by_member.setdefault(member, set()).add((ns, name))
        return first

    def discard(self, ns: str, name: str, member: str) -> bool:
        """Remove ``member``; return True if ``name`` has no member left."""
        table = self._names.get(ns)
        if table is None:
            return False
        members = table.get(name)
        if members is None or members.pop(member, None) is None:
            return False
        keys = self._by_member.get(member)
        if keys is not None:
            keys.discard((ns, name))
            if not keys:
                del self._by_member[member]
        if members:
            return False
        del table[name]
        return True

    def remove_member(self, member: str) -> list[tuple[str, str]]:
        """Remove ``member`` everywhere; return the (ns, name) pairs left empty."""
        emptied = []
        for ns, name in list(self._by_member.get(member, ())):
            if self.discard(ns, name, member):
                emptied.append((ns, name))
        self._by_member.pop(member, None)
        return emptied

    def members(self, ns: str, name: str) -> dict[str, float] | None:
        """Return the live member table of ``name`` (member -> joined time), or None."""
        table = self._names.get(ns)
        return None if table is None else table.get(name)

    def names_of(self, member: str, ns: str) -> list[str]:
        """Return the names in ``ns`` that ``member`` belongs to."""
        return [name for kind, name in self._by_member.get(member, ()) if kind == ns]

    def names(self, ns: str) -> list[str]:
        """Return every name in ``ns`` with at least one local member."""
        return list(self._names.get(ns, ()))

    def all_keys(self) -> list[tuple[str, str]]:
        """Return every (ns, name) with local members (used to resubscribe)."""
        return [(ns, name) for ns, table in self._names.items() for name in table]

    def clear(self) -> None:
        self._names.clear()
        self._by_member.clear()

    def sizes(self) -> dict[str, int]:
        """Return internal table sizes, for leak tests and debugging."""
        return {
            "names": sum(len(t) for t in self._names.values()),
            "memberships": sum(len(m) for t in self._names.values() for m in t.values()),
            "members": len(self._by_member),
        }
