"""``Events`` in isolation: hub hook, then client hook, then signal; errors reported, not raised.

A small fake client records its hook calls in a shared log next to the
recording hub-wide hooks and signal receivers, so each test reads one
ordered list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.dispatch import Signal

from wshub_channels import signals
from wshub_channels.errors import MaxConnectionsReached, Unauthorized
from wshub_channels.hooks import Hooks
from wshub_channels.hub.events import EVENT_SIGNALS, Events
from wshub_channels.metrics import DebugMetrics

pytestmark = pytest.mark.unit


class Boom(Exception):
    """What the failing hooks raise."""


class FakeClient:
    """The hooks ``Events`` calls on a connection, recording into ``log``."""

    def __init__(self, log: list[str], fail: set[str] | None = None) -> None:
        self.id = "specific.fakenode0000!client"
        self.log = log
        self.fail = fail or set()
        self.errors: list[Exception] = []

    async def _hook(self, name: str, *args: Any) -> None:
        self.log.append(f"client.{name}" + "".join(f":{a}" for a in args))
        if name in self.fail:
            raise Boom(f"client.{name}")

    async def before_room_join(self, room: str) -> None:
        await self._hook("before_room_join", room)

    async def on_room_join(self, room: str) -> None:
        await self._hook("on_room_join", room)

    async def on_connect(self) -> None:
        await self._hook("on_connect")

    async def on_close(self, code: int) -> None:
        await self._hook("on_close", code)

    async def on_error(self, error: Exception) -> None:
        self.errors.append(error)
        await self._hook("on_error", error)


class RecordingHooks(Hooks):
    def __init__(self, log: list[str], fail: set[str] | None = None) -> None:
        self.log = log
        self.fail = fail or set()
        self.errors: list[tuple[Any, Exception]] = []

    async def _hook(self, name: str, *args: Any) -> None:
        self.log.append(f"hub.{name}" + "".join(f":{a}" for a in args))
        if name in self.fail:
            exc = MaxConnectionsReached if name == "on_connect" else Boom
            raise exc(f"hub.{name}")

    async def before_room_join(self, client: Any, room: str) -> None:
        await self._hook("before_room_join", room)

    async def on_room_join(self, client: Any, room: str) -> None:
        await self._hook("on_room_join", room)

    async def on_connect(self, client: Any) -> None:
        await self._hook("on_connect")

    async def on_close(self, client: Any, code: int) -> None:
        await self._hook("on_close", code)

    async def on_error(self, client: Any, error: Exception) -> None:
        self.errors.append((client, error))
        await self._hook("on_error", error)


@pytest.fixture
def log() -> list[str]:
    return []


@pytest.fixture
def listen() -> Iterator[Callable[..., None]]:
    """Connect a receiver for FakeClient senders, for the test only."""
    connected: list[tuple[Signal, Any]] = []

    def connect(signal: Signal, receiver: Any) -> None:
        signal.connect(receiver, sender=FakeClient, weak=False)
        connected.append((signal, receiver))

    yield connect
    for signal, receiver in connected:
        signal.disconnect(receiver, sender=FakeClient)


class Counts:
    """The counters the hub used to keep, read from DebugMetrics' error counts."""

    def __init__(self, metrics: DebugMetrics) -> None:
        self._metrics = metrics

    @property
    def hook_errors(self) -> int:
        return int(self._metrics.stats()["errors"].get("hook_error", 0))

    @property
    def signal_errors(self) -> int:
        return int(self._metrics.stats()["errors"].get("signal_receiver", 0))


def make_events(hooks: Hooks | None) -> tuple[Events, DebugMetrics, Counts]:
    metrics = DebugMetrics()
    return Events(hooks, metrics), metrics, Counts(metrics)


def signal_recorder(log: list[str], name: str) -> Any:
    async def receiver(sender: Any, client: Any, **kwargs: Any) -> None:
        assert sender is FakeClient and isinstance(client, FakeClient)
        details = "".join(f":{k}={v}" for k, v in sorted(kwargs.items()) if k != "signal")
        log.append(f"signal.{name}{details}")

    return receiver


# -- check -----------------------------------------------------------------------------------


async def test_check_runs_the_hub_hook_then_the_client_hook(log: list[str]) -> None:
    """check('room_join') calls hub before_room_join, then the client's, with the room."""
    events, _, stats = make_events(RecordingHooks(log))
    await events.check(FakeClient(log), "room_join", "r")  # type: ignore[arg-type]
    assert log == ["hub.before_room_join:r", "client.before_room_join:r"]
    assert stats.hook_errors == 0


async def test_check_propagates_a_hub_hook_raise_before_the_client_hook(log: list[str]) -> None:
    """A raising hub before_* hook propagates and the client hook does not run."""
    events, _, stats = make_events(RecordingHooks(log, fail={"before_room_join"}))
    with pytest.raises(Boom, match=r"hub\.before_room_join"):
        await events.check(FakeClient(log), "room_join", "r")  # type: ignore[arg-type]
    assert log == ["hub.before_room_join:r"]
    assert stats.hook_errors == 0


async def test_check_propagates_a_client_hook_raise(log: list[str]) -> None:
    """A raising client before_* hook propagates after the hub hook ran."""
    events, _, _ = make_events(RecordingHooks(log))
    client = FakeClient(log, fail={"before_room_join"})
    with pytest.raises(Boom, match=r"client\.before_room_join"):
        await events.check(client, "room_join", "r")  # type: ignore[arg-type]
    assert log == ["hub.before_room_join:r", "client.before_room_join:r"]


async def test_check_without_hub_hooks_runs_only_the_client_hook(log: list[str]) -> None:
    """With no WSHUB hooks, check calls the client's hook alone."""
    events, _, _ = make_events(None)
    await events.check(FakeClient(log), "room_join", "r")  # type: ignore[arg-type]
    assert log == ["client.before_room_join:r"]


# -- notify ----------------------------------------------------------------------------------


async def test_notify_runs_hub_hook_client_hook_then_signal(
    log: list[str], listen: Callable[..., None]
) -> None:
    """notify('room_join') runs the hub hook, the client hook, then room_joined with room=."""
    listen(signals.room_joined, signal_recorder(log, "room_joined"))
    events, _, stats = make_events(RecordingHooks(log))
    await events.notify(FakeClient(log), "room_join", "r", room="r")  # type: ignore[arg-type]
    assert log == ["hub.on_room_join:r", "client.on_room_join:r", "signal.room_joined:room=r"]
    assert stats.hook_errors == 0 and stats.signal_errors == 0


@pytest.mark.parametrize("failing", ["hub", "client"])
async def test_notify_reports_a_raising_hook_and_goes_on(
    log: list[str], listen: Callable[..., None], failing: str
) -> None:
    """A raising on_* hook is reported (on_error, hook_errors, hub_error); the rest still runs."""
    listen(signals.client_disconnected, signal_recorder(log, "disconnected"))
    errors: list[Exception] = []

    async def on_hub_error(sender: Any, client: Any, error: Exception, **kwargs: Any) -> None:
        errors.append(error)
        log.append("signal.hub_error")

    listen(signals.hub_error, on_hub_error)
    hooks = RecordingHooks(log, fail={"on_close"} if failing == "hub" else set())
    client = FakeClient(log, fail={"on_close"} if failing == "client" else set())
    events, metrics, stats = make_events(hooks)
    await events.notify(client, "close", 1001, code=1001)  # type: ignore[arg-type]
    error = f"{failing}.on_close"
    report = [f"hub.on_error:{error}", f"client.on_error:{error}", "signal.hub_error"]
    if failing == "hub":
        expected = ["hub.on_close:1001", *report, "client.on_close:1001"]
    else:
        expected = ["hub.on_close:1001", "client.on_close:1001", *report]
    assert log == [*expected, "signal.disconnected:code=1001"]
    assert stats.hook_errors == 1
    assert metrics.stats()["errors"] == {"hook_error": 1}
    assert [str(e) for e in errors] == [error]
    assert [str(e) for e in client.errors] == [error]
    assert [(c, str(e)) for c, e in hooks.errors] == [(client, error)]


async def test_notify_reraise_propagates_at_once(
    log: list[str], listen: Callable[..., None]
) -> None:
    """An error listed in reraise= propagates: no report, no client hook, no signal."""
    listen(signals.client_connected, signal_recorder(log, "connected"))
    listen(signals.hub_error, signal_recorder(log, "hub_error"))
    hooks = RecordingHooks(log, fail={"on_connect"})  # raises MaxConnectionsReached
    events, _, stats = make_events(hooks)
    client = FakeClient(log)
    with pytest.raises(MaxConnectionsReached):
        await events.notify(client, "connect", reraise=(MaxConnectionsReached,))  # type: ignore[arg-type]
    assert log == ["hub.on_connect"]
    assert stats.hook_errors == 0 and client.errors == [] and hooks.errors == []


async def test_notify_reports_errors_not_listed_in_reraise(
    log: list[str], listen: Callable[..., None]
) -> None:
    """An error that is not one of reraise= is reported and the sequence goes on."""
    listen(signals.client_connected, signal_recorder(log, "connected"))
    hooks = RecordingHooks(log, fail={"on_connect"})
    events, _, stats = make_events(hooks)
    await events.notify(FakeClient(log), "connect", reraise=(Unauthorized,))  # type: ignore[arg-type]
    assert log[-2:] == ["client.on_connect", "signal.connected"]
    assert stats.hook_errors == 1


async def test_a_raising_signal_receiver_is_counted(
    log: list[str], listen: Callable[..., None]
) -> None:
    """A signal receiver that raises is counted in signal_errors; other receivers still run."""

    async def broken(sender: Any, **kwargs: Any) -> None:
        raise Boom("receiver")

    listen(signals.room_joined, broken)
    listen(signals.room_joined, signal_recorder(log, "room_joined"))
    events, metrics, stats = make_events(RecordingHooks(log))
    await events.notify(FakeClient(log), "room_join", "r", room="r")  # type: ignore[arg-type]
    assert log[-1] == "signal.room_joined:room=r"
    assert stats.signal_errors == 1 and stats.hook_errors == 0
    assert metrics.stats()["errors"] == {"signal_receiver": 1}


async def test_each_raising_signal_receiver_counts_once(
    log: list[str], listen: Callable[..., None]
) -> None:
    """Two receivers that raise on one signal count two signal_receiver errors."""

    async def broken(sender: Any, **kwargs: Any) -> None:
        raise Boom("receiver")

    async def also_broken(sender: Any, **kwargs: Any) -> None:
        raise Boom("receiver")

    listen(signals.room_joined, broken)
    listen(signals.room_joined, also_broken)
    events, metrics, _ = make_events(RecordingHooks(log))
    await events.notify(FakeClient(log), "room_join", "r", room="r")  # type: ignore[arg-type]
    assert metrics.stats()["errors"] == {"signal_receiver": 2}


async def test_every_event_signal_is_sent_with_the_client(
    log: list[str], listen: Callable[..., None]
) -> None:
    """Each on_<event> ends with its own signal, sent with client= the client."""
    for event, signal in EVENT_SIGNALS.items():
        listen(signal, signal_recorder(log, event))
    events, _, _ = make_events(None)
    client = FakeClient(log)
    await events.notify(client, "connect")  # type: ignore[arg-type]
    await events.notify(client, "close", 1000, code=1000)  # type: ignore[arg-type]
    assert log == [
        "client.on_connect",
        "signal.connect",
        "client.on_close:1000",
        "signal.close:code=1000",
    ]


# -- report_error ----------------------------------------------------------------------------


async def test_report_error_calls_hub_on_error_before_the_clients(
    log: list[str], listen: Callable[..., None]
) -> None:
    """report_error runs hub on_error, then the client's, then hub_error; counts by kind."""
    listen(signals.hub_error, signal_recorder(log, "hub_error"))
    events, metrics, stats = make_events(RecordingHooks(log))
    client = FakeClient(log)
    exc = Boom("handler")
    await events.report_error(client, exc, "message_handling")  # type: ignore[arg-type]
    assert log == [
        "hub.on_error:handler",
        "client.on_error:handler",
        "signal.hub_error:error=handler",
    ]
    assert client.errors == [exc]
    assert metrics.stats()["errors"] == {"message_handling": 1}
    assert stats.hook_errors == 0


async def test_report_error_survives_a_raising_on_error(
    log: list[str], listen: Callable[..., None]
) -> None:
    """A raising hub on_error is counted, and the client's on_error and hub_error still run."""
    listen(signals.hub_error, signal_recorder(log, "hub_error"))
    events, _, stats = make_events(RecordingHooks(log, fail={"on_error"}))
    client = FakeClient(log)
    await events.report_error(client, Boom("x"), "message_handling")  # type: ignore[arg-type]
    assert log == ["hub.on_error:x", "client.on_error:x", "signal.hub_error:error=x"]
    assert stats.hook_errors == 1
