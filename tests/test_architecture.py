"""The shape of the package: at most 6 import floors, no circle, no module over 400 lines.

The floors are measured on the package's own import graph (grimp, the library
import-linter runs on, with annotation-only imports left out as the
contracts in ``pyproject.toml`` do). A room is a top-level module or a
subpackage (``wshub_channels.core``, ``wshub_channels.hub`` ...), and a
room's floor is one more than the highest floor it imports, so the floors
count the longest chain of imports between rooms, the face (``__init__``)
included.
"""

from __future__ import annotations

import functools
from pathlib import Path

import grimp
import pytest

pytestmark = pytest.mark.unit

PACKAGE = "wshub_channels"
MAX_FLOORS = 6
MAX_LINES = 400


def _room(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _room_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph(PACKAGE, exclude_type_checking_imports=True)
    edges: dict[str, set[str]] = {_room(m): set() for m in graph.modules}
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if _room(imported) != _room(module):
                edges[_room(module)].add(_room(imported))
    return edges


def floors(edges: dict[str, set[str]]) -> dict[str, int]:
    """Each room's floor: 1 for a room that imports no other, else 1 + the highest below."""

    @functools.cache
    def floor(room: str, path: tuple[str, ...] = ()) -> int:
        if room in path:
            raise AssertionError(f"import circle: {' -> '.join((*path, room))}")
        return 1 + max((floor(t, (*path, room)) for t in edges[room]), default=0)

    return {room: floor(room) for room in edges}


def test_floors_count_the_longest_chain() -> None:
    edges = {"a": {"b", "c"}, "b": {"c"}, "c": set(), "d": set()}
    assert floors(edges) == {"a": 3, "b": 2, "c": 1, "d": 1}
    with pytest.raises(AssertionError, match="circle"):
        floors({"a": {"b"}, "b": {"a"}})


def test_the_package_has_at_most_six_floors_and_no_circle() -> None:
    found = floors(_room_graph())
    assert found[PACKAGE] == max(found.values())  # the face sits on top
    assert max(found.values()) <= MAX_FLOORS, sorted(found.items(), key=lambda kv: -kv[1])


def test_no_module_is_over_400_lines() -> None:
    root = Path(__file__).resolve().parent.parent / PACKAGE
    long = {
        str(path.relative_to(root)): lines
        for path in root.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long
