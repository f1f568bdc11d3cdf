"""Calls between nodes: the op codec, typed errors, call and gather through a requester."""

from __future__ import annotations

import msgpack
import pytest
from channels.exceptions import ChannelFull

from wshub_channels import errors
from wshub_channels.core.wire import decode_call, encode_call, encode_error, encode_result
from wshub_channels.layers import NoResponders
from wshub_channels.layers.rpc import RemoteOps, decode_answer, error_from_name

pytestmark = pytest.mark.unit


# -- the op codec and typed errors -----------------------------------------------------


def test_call_round_trip() -> None:
    """A call carries its op name and arguments; tuples become lists."""
    assert decode_call(encode_call("join_room", ("c1", "lobby"))) == ("join_room", ["c1", "lobby"])
    assert encode_call("op", []) == msgpack.packb(["op", []], use_bin_type=True)


@pytest.mark.parametrize(
    "body", [b"\xc1", msgpack.packb("op"), msgpack.packb(["op"]), msgpack.packb([1, []])]
)
def test_malformed_call_raises_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        decode_call(body)


def test_answer_carries_the_result() -> None:
    assert decode_answer(encode_result({"n": 1})) == {"n": 1}
    assert decode_answer(encode_result(None)) is None


@pytest.mark.parametrize(
    "error",
    [
        errors.ClientNotFound("no such client"),
        errors.HubTimeout("slow"),
        TypeError("bad type"),
        ValueError("bad value"),
        ChannelFull("full"),
    ],
)
def test_answer_rebuilds_typed_errors(error: Exception) -> None:
    """Hub errors and a few builtins come back as their own class, with their message."""
    with pytest.raises(type(error), match=str(error)):
        decode_answer(encode_error(error))


def test_unknown_error_becomes_hub_error() -> None:
    """An error class this node does not know is raised as HubError."""
    with pytest.raises(errors.HubError, match="boom"):
        decode_answer(encode_error(KeyError("boom")))
    assert type(error_from_name("NoSuchThing", "x")) is errors.HubError
    assert type(error_from_name("__doc__", "x")) is errors.HubError


@pytest.mark.parametrize(
    "body",
    [b"\xc1", msgpack.packb([True, 1]), msgpack.packb([1, 2, 3]), msgpack.packb([False, 1, ""])],
)
def test_malformed_answer_raises_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        decode_answer(body)


# -- RemoteOps ------------------------------------------------------------------------


class Counters:
    def __init__(self) -> None:
        self.bad = 0
        self.bus = 0

    def ops(self, gather_subject: str | None = None) -> RemoteOps:
        def bad() -> None:
            self.bad += 1

        def bus() -> None:
            self.bus += 1

        return RemoteOps(bad, bus, gather_subject)


async def test_handler_runs_registered_ops_and_answers_errors() -> None:
    """The request handler runs an op by name and answers its result or its typed error."""
    counters = Counters()
    ops = counters.ops()

    async def add(a: int, b: int) -> int:
        return a + b

    async def missing(client_id: str) -> None:
        raise errors.ClientNotFound(client_id)

    ops.register("add", add)
    ops.register("missing", missing)
    assert "add" in ops and "nothing" not in ops
    assert decode_answer(await ops.handle("s", encode_call("add", [2, 3]))) == 5
    with pytest.raises(errors.ClientNotFound, match="c9"):
        decode_answer(await ops.handle("s", encode_call("missing", ["c9"])))
    assert counters.bad == 0
    for body in (encode_call("nothing", []), b"\xc1"):
        with pytest.raises(ValueError, match=r"malformed request|unknown op 'nothing'"):
            decode_answer(await ops.handle("s", body))
    assert counters.bad == 2


async def test_a_gather_of_an_unknown_op_gets_no_answer() -> None:
    """On the gather subject, a node without the op stays silent (it is not a hub node)."""
    counters = Counters()
    ops = counters.ops("p.all")
    assert await ops.handle("p.all", encode_call("nothing", [])) is None
    with pytest.raises(ValueError, match="unknown op"):
        decode_answer(await ops.handle("p.n.x", encode_call("nothing", [])))  # type: ignore[arg-type]


async def test_call_returns_the_result_or_raises() -> None:
    """call maps replies, no reply, a gone node and a failing bus to result and errors."""
    counters = Counters()
    ops = counters.ops()
    seen: list[tuple[str, float, int | None]] = []

    async def answers(subject: str, data: bytes, timeout: float, most: int | None) -> list[bytes]:
        seen.append((subject, timeout, most))
        assert decode_call(data) == ("op", [1])
        return [encode_result("ok")]

    async def silent(subject: str, data: bytes, timeout: float, most: int | None) -> list[bytes]:
        return []

    async def nobody(subject: str, data: bytes, timeout: float, most: int | None) -> list[bytes]:
        raise NoResponders(subject)

    async def broken(subject: str, data: bytes, timeout: float, most: int | None) -> list[bytes]:
        raise ConnectionError("down")

    assert await ops.call(answers, "n.x", "op", (1,), 2.0, "x") == "ok"
    assert seen == [("n.x", 2.0, 1)]
    with pytest.raises(errors.HubTimeout, match="node x did not answer 'op'"):
        await ops.call(silent, "n.x", "op", (1,), 2.0, "x")
    with pytest.raises(NoResponders):
        await ops.call(nobody, "n.x", "op", (1,), 2.0, "x")
    assert counters.bus == 0
    with pytest.raises(errors.BusUnavailable, match="calling node x failed"):
        await ops.call(broken, "n.x", "op", (1,), 2.0, "x")
    assert counters.bus == 1


async def test_gather_collects_every_answer_and_errors_as_exceptions() -> None:
    """gather asks for ``expect`` replies, decodes each, and keeps a node's error as its value."""
    ops = RemoteOps(on_bad_request=lambda: None, on_bus_error=lambda: None)
    asked: list[int | None] = []

    async def requester(subject: str, body: bytes, timeout: float, n: int | None) -> list[bytes]:
        asked.append(n)
        return [encode_result(1), encode_error(errors.NotInRoom("no")), b"\xc1"]

    answers = await ops.gather(requester, "s", "op", [], 1.0, 3)
    assert asked == [3] and answers[0] == 1
    assert isinstance(answers[1], errors.NotInRoom) and isinstance(answers[2], ValueError)

    async def nobody(subject: str, body: bytes, timeout: float, n: int | None) -> list[bytes]:
        raise NoResponders(subject)

    assert await ops.gather(nobody, "s", "op", [], 1.0, None) == []
