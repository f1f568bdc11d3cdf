"""Fan-out: how long one ``group_send`` takes to reach every member of a big group.

For each layer and group size N, in one process and one event loop:

1. create the layer fresh (brokers get a unique prefix per run);
2. create N channels with ``new_channel()`` and ``group_add`` each to one group;
3. start N tasks, each awaiting one ``receive()`` on its channel, and let them all
   reach their wait (a few loop turns, then a probe message sent to a separate
   channel and received, so a broker-backed layer has its subscriptions and
   receive loop in place, then ``--settle`` seconds for broker-backed layers);
4. ``t0``; ``await group_send(group, message)``; wait until all N receivers have
   returned. "All delivered" is the moment the last receiver got its message,
   "group_send" the time the call itself took.

Every receiver must get exactly the message sent. A run in which some never
arrive is reported as lost (after ``--stall`` seconds without a delivery), with
the count, not dropped from the table. Each run is fenced by ``--timeout``.

Run from the repository root::

    python benchmarks/layer_fanout.py                      # everything, 3 repeats
    python benchmarks/layer_fanout.py --layers hub,inmemory --sizes 1000 --repeat 1

Results are printed and written to the ``layer_fanout`` section of
``benchmarks/RESULTS.md`` (``--no-write`` to skip).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import itertools
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import _common

Message = dict[str, Any]

SECTION = "layer_fanout"
GROUP = "bench-fanout"
#: What group_send sends (``--message``): "flat" has only scalar values, so each member
#: gets a shallow copy; "nested" holds lists and dicts, which every member must own.
MESSAGES: dict[str, Message] = {
    "flat": {"type": "bench.msg", "text": "x" * 100},
    "nested": {
        "type": "bench.msg",
        "text": "x" * 100,
        "items": [1, 2, 3, {"k": "v"}],
        "meta": {"user": 7, "tags": ["a", "b"]},
    },
}
MESSAGE: Message = MESSAGES["flat"]
PROBE: Message = {"type": "bench.probe"}
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
#: Per channel. Each member gets one message, so the stock default of 100 would
#: do; set high so that no layer can lose a message to capacity in this test.
CAPACITY = 1000

#: Layers the ratios are given against.
BASELINES = ("inmemory", "hub")

#: How the receivers behave. "once": each awaits one receive(), as the method asks;
#: whatever receive() costs on entry is paid in setup. "rearm": each calls receive()
#: again as soon as it has the message, like a consumer's loop, so that cost lands
#: inside the timed window -- where a real server pays it after a broadcast.
MODES = {
    "once": "one receive() per member",
    "rearm": "receivers re-armed like consumers (receive() again at once)",
}


class ChannelLayer(Protocol):
    """The part of the Channels layer spec this benchmark uses."""

    async def new_channel(self) -> str: ...

    async def send(self, channel: str, message: Message) -> None: ...

    async def receive(self, channel: str) -> Message: ...

    async def group_add(self, group: str, channel: str) -> None: ...

    async def group_send(self, group: str, message: Message) -> None: ...


@dataclass(frozen=True)
class Brokers:
    redis_url: str
    nats_url: str


@dataclass(frozen=True)
class LayerSpec:
    key: str
    name: str
    package: str
    target: str
    #: "redis", "nats" or None for an in-process layer.
    broker: str | None
    #: Constructor keyword arguments, given the brokers and a prefix unique to the run.
    options: Callable[[Brokers, str], dict[str, Any]]
    #: What to remove from the broker after the layer's flush() and close(), given the
    #: brokers and the run's prefix (for what a layer keeps through its flush()).
    cleanup: Callable[[Brokers, str], Awaitable[object]] | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.package})"

    def load(self) -> Callable[..., ChannelLayer]:
        module, _, attribute = self.target.rpartition(".")
        factory: Callable[..., ChannelLayer] = getattr(importlib.import_module(module), attribute)
        return factory


def hub_prefix(prefix: str) -> str:
    """The run's prefix as the hub's broker layers take it (letters, digits and ``_``)."""
    return prefix.rstrip("_")


async def delete_nats_hub_streams(brokers: Brokers, prefix: str) -> None:
    """NatsHubLayer's flush() keeps its JetStream stream and bucket: delete them."""
    await _common.delete_nats_prefix_streams(brokers.nats_url, hub_prefix(prefix))


LAYERS: dict[str, LayerSpec] = {
    spec.key: spec
    for spec in (
        LayerSpec(
            "hub",
            "InMemoryHubLayer",
            "wshub_channels",
            "wshub_channels.layers.InMemoryHubLayer",
            None,
            lambda brokers, prefix: {"capacity": CAPACITY},
        ),
        LayerSpec(
            "hub-redis",
            "RedisHubLayer",
            "wshub_channels",
            "wshub_channels.layers.RedisHubLayer",
            "redis",
            lambda brokers, prefix: {
                "hosts": [brokers.redis_url],
                "prefix": hub_prefix(prefix),
                "capacity": CAPACITY,
            },
        ),
        LayerSpec(
            "hub-nats",
            "NatsHubLayer",
            "wshub_channels",
            "wshub_channels.layers.NatsHubLayer",
            "nats",
            lambda brokers, prefix: {
                "servers": [brokers.nats_url],
                "prefix": hub_prefix(prefix),
                "capacity": CAPACITY,
            },
            delete_nats_hub_streams,
        ),
        LayerSpec(
            "inmemory",
            "InMemoryChannelLayer",
            "channels",
            "channels.layers.InMemoryChannelLayer",
            None,
            lambda brokers, prefix: {"capacity": CAPACITY},
        ),
        LayerSpec(
            "redis",
            "RedisChannelLayer",
            "channels-redis",
            "channels_redis.core.RedisChannelLayer",
            "redis",
            lambda brokers, prefix: {
                "hosts": [brokers.redis_url],
                "prefix": prefix,
                "capacity": CAPACITY,
            },
        ),
        LayerSpec(
            "redis-pubsub",
            "RedisPubSubChannelLayer",
            "channels-redis",
            "channels_redis.pubsub.RedisPubSubChannelLayer",
            "redis",
            lambda brokers, prefix: {"hosts": [brokers.redis_url], "prefix": prefix},
        ),
        LayerSpec(
            "nats",
            "NatsChannelLayer",
            "channels-nats",
            "channels_nats.NatsChannelLayer",
            "nats",
            lambda brokers, prefix: {
                "servers": [brokers.nats_url],
                "prefix": prefix,
                "capacity": CAPACITY,
            },
        ),
    )
}


@dataclass(frozen=True)
class Options:
    timeout: float
    stall: float
    settle: float
    check_extra: float
    brokers: Brokers


# ----------------------------------------------------------------- one run


@dataclass
class Run:
    status: str  # "ok", "lost", "timeout", "error"
    expected: int
    delivered: int = 0
    #: Receivers that got something other than the message sent.
    wrong: int = 0
    #: Receivers whose receive() raised.
    failed: int = 0
    #: Further messages found on the channels afterwards (``--check-extra``).
    extra: int | None = None
    setup_s: float | None = None
    send_s: float | None = None
    total_s: float | None = None
    #: CPU time of this process from the group_send call to the last delivery.
    cpu_s: float | None = None
    detail: str = ""

    def note(self, text: str) -> None:
        self.detail = f"{self.detail}; {text}" if self.detail else text


class Tally:
    """What the receivers got, and when the last of them got it."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.delivered = 0
        self.wrong = 0
        self.failed = 0
        self.first_error: str | None = None
        self.last_at = 0.0
        #: This process's CPU time (``time.process_time()``) when the last receiver
        #: returned; read once, not per delivery, so the timed window pays nothing for it.
        self.finished_cpu: float | None = None
        #: Messages that came after the one expected (only seen with re-armed receivers).
        self.extra = 0
        self.finished = asyncio.Event()

    def note(self, text: str) -> None:
        if self.first_error is None:
            self.first_error = text

    @property
    def count(self) -> int:
        return self.delivered + self.wrong + self.failed

    def _returned(self, at: float) -> None:
        self.last_at = max(self.last_at, at)
        if self.count >= self.expected and not self.finished.is_set():
            self.finished_cpu = time.process_time()
            self.finished.set()

    def got(self, message: Message, at: float) -> None:
        if message == MESSAGE:
            self.delivered += 1
        else:
            self.wrong += 1
            if self.first_error is None:
                self.first_error = f"unexpected message {str(message)[:120]}"
        self._returned(at)

    def raised(self, error: Exception, at: float) -> None:
        self.failed += 1
        if self.first_error is None:
            self.first_error = f"receive() raised {type(error).__name__}: {error}"
        self._returned(at)


async def receive_one(layer: ChannelLayer, channel: str, tally: Tally, rearm: bool) -> None:
    """Receive the message; with ``rearm``, go on receiving as a consumer would."""
    try:
        message = await layer.receive(channel)
    except Exception as error:
        tally.raised(error, time.perf_counter())
        return
    tally.got(message, time.perf_counter())
    while rearm:
        try:
            await layer.receive(channel)
        except Exception as error:
            tally.note(f"a re-armed receive() raised {describe_error(error)}")
            return
        tally.extra += 1


async def probe(layer: ChannelLayer, interval: float = 0.2) -> None:
    """Round-trip a message on a channel outside the group.

    Once it is back, a broker-backed layer has worked through everything queued
    before it (subscriptions, their confirmations) and its receive loop runs.
    Sent again every ``interval`` in case the first went out before the
    subscription was in place.
    """
    channel = await layer.new_channel()
    task = asyncio.create_task(layer.receive(channel))
    try:
        while True:
            await layer.send(channel, PROBE)
            done, _ = await asyncio.wait({task}, timeout=interval)
            if done:
                task.result()
                return
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def set_up(
    layer: ChannelLayer,
    size: int,
    tally: Tally,
    receivers: list[asyncio.Task[None]],
    settle: float,
    rearm: bool,
) -> list[str]:
    channels = []
    for _ in range(size):
        channel = await layer.new_channel()
        await layer.group_add(GROUP, channel)
        channels.append(channel)
    receivers.extend(asyncio.create_task(receive_one(layer, ch, tally, rearm)) for ch in channels)
    for _ in range(5):
        await asyncio.sleep(0)
    await probe(layer)
    if settle > 0:
        await asyncio.sleep(settle)
    return channels


async def wait_for_delivery(tally: Tally, sent_at: float, options: Options) -> str:
    deadline = sent_at + options.timeout
    while tally.count < tally.expected:
        now = time.perf_counter()
        if now >= deadline:
            return "timeout"
        if now - max(tally.last_at, sent_at) >= options.stall:
            return "lost"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tally.finished.wait(), timeout=min(0.25, deadline - now))
    return "ok" if tally.delivered == tally.expected else "error"


async def count_extra(layer: ChannelLayer, channels: Sequence[str], window: float) -> int:
    """Receive once more on every channel for ``window`` seconds: a duplicate shows here."""
    tasks = [asyncio.create_task(layer.receive(channel)) for channel in channels]
    try:
        await asyncio.sleep(window)
        return sum(1 for t in tasks if t.done() and not t.cancelled() and t.exception() is None)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def dispose(layer: ChannelLayer) -> None:
    """flush() and close() where the layer has them."""
    for name in ("flush", "close"):
        method = getattr(layer, name, None)
        if method is not None:
            await method()


def describe_error(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__


async def run_once(spec: LayerSpec, size: int, rearm: bool, options: Options) -> Run:
    run = Run(status="error", expected=size)
    prefix = f"bench_{uuid.uuid4().hex[:12]}_"
    try:
        factory = spec.load()
        layer = factory(**spec.options(options.brokers, prefix))
    except Exception as error:
        run.note(f"could not create the layer: {describe_error(error)}")
        return run

    tally = Tally(size)
    receivers: list[asyncio.Task[None]] = []
    try:
        started = time.perf_counter()
        settle = options.settle if spec.broker else 0.0
        try:
            channels = await asyncio.wait_for(
                set_up(layer, size, tally, receivers, settle, rearm), options.timeout
            )
        except TimeoutError:
            run.status = "timeout"
            run.note(f"setup did not finish within {options.timeout:g} s")
            return run
        run.setup_s = time.perf_counter() - started
        if tally.count:
            run.note(f"{tally.count} receiver(s) returned before group_send: {tally.first_error}")
            return run

        gc.collect()
        cpu_at = time.process_time()
        sent_at = time.perf_counter()
        try:
            await asyncio.wait_for(layer.group_send(GROUP, MESSAGE), options.timeout)
        except TimeoutError:
            run.status = "timeout"
            run.note(f"group_send did not return within {options.timeout:g} s")
            return run
        run.send_s = time.perf_counter() - sent_at
        run.status = await wait_for_delivery(tally, sent_at, options)
        if tally.count:
            run.total_s = tally.last_at - sent_at
        if tally.finished_cpu is not None:
            run.cpu_s = tally.finished_cpu - cpu_at
        if run.status == "timeout":
            run.note(f"not all delivered within {options.timeout:g} s")
        elif run.status == "lost":
            run.note(
                f"{size - tally.count:,} receiver(s) got nothing "
                f"({options.stall:g} s without a delivery)"
            )
        if tally.first_error:
            run.note(tally.first_error)
        if rearm:
            if options.check_extra > 0:
                await asyncio.sleep(options.check_extra)
            run.extra = tally.extra
        elif options.check_extra > 0 and run.status == "ok":
            run.extra = await asyncio.wait_for(
                count_extra(layer, channels, options.check_extra),
                options.timeout + options.check_extra,
            )
    except Exception as error:
        run.status = "error"
        run.note(describe_error(error))
    finally:
        run.delivered, run.wrong, run.failed = tally.delivered, tally.wrong, tally.failed
        for task in receivers:
            task.cancel()
        try:
            await asyncio.wait_for(
                asyncio.gather(*receivers, return_exceptions=True), options.timeout
            )
            await asyncio.wait_for(dispose(layer), options.timeout)
            if spec.cleanup is not None:
                await asyncio.wait_for(spec.cleanup(options.brokers, prefix), options.timeout)
        except Exception as error:
            run.note(f"cleanup failed: {describe_error(error)}")
        del receivers, layer
        gc.collect()
    return run


# ---------------------------------------------------------------- reporting


@dataclass
class Cell:
    """All the runs of one layer at one size in one mode."""

    spec: LayerSpec
    size: int
    mode: str
    unavailable: str | None = None
    runs: list[Run] = field(default_factory=list)

    @property
    def timed(self) -> list[Run]:
        return [r for r in self.runs if r.status in ("ok", "lost") and r.total_s is not None]

    @property
    def clean(self) -> bool:
        """Every run delivered the message to every receiver."""
        return bool(self.runs) and all(r.status == "ok" for r in self.runs)

    @property
    def lower_bound(self) -> float | None:
        """A floor under the all-delivered time of a layer whose runs all lost messages."""
        if not self.runs or any(r.status != "lost" or r.total_s is None for r in self.runs):
            return None
        return min(r.total_s for r in self.runs if r.total_s is not None)

    @property
    def total(self) -> float | None:
        return _common.median(r.total_s for r in self.timed if r.total_s is not None)

    @property
    def send(self) -> float | None:
        return _common.median(r.send_s for r in self.timed if r.send_s is not None)

    @property
    def setup(self) -> float | None:
        return _common.median(r.setup_s for r in self.runs if r.setup_s is not None)

    @property
    def cpu_per_member(self) -> float | None:
        """Median over the runs of this process's CPU seconds per member, timed window."""
        return _common.median(r.cpu_s / self.size for r in self.runs if r.cpu_s is not None)

    def time_text(self) -> str:
        if self.unavailable is not None:
            return "unavailable"
        if not self.timed:
            statuses = sorted({r.status for r in self.runs})
            return "/".join(statuses) if statuses else "not run"
        text = _common.format_ms(self.total)
        if any(r.status == "lost" for r in self.timed):
            text += " (to the last one that arrived)"
        return text

    def range_text(self) -> str:
        totals = [r.total_s for r in self.timed if r.total_s is not None]
        if len(totals) < 2:
            return _common.DASH
        return f"{_common.format_ms(min(totals))}{_common.DASH}{_common.format_ms(max(totals))}"

    def delivered_text(self) -> str:
        if not self.runs:
            return _common.DASH
        worst = min(self.runs, key=lambda r: (r.delivered, -r.wrong, -r.failed))
        text = f"{worst.delivered:,}/{self.size:,}"
        extras = []
        if worst.wrong:
            extras.append(f"{worst.wrong:,} wrong")
        if worst.failed:
            extras.append(f"{worst.failed:,} raised")
        most_extra = max((r.extra for r in self.runs if r.extra is not None), default=None)
        if most_extra:
            extras.append(f"+{most_extra:,} extra")
        if worst.delivered < self.size:
            extras.append("LOST" if worst.status == "lost" else worst.status)
        return text + (f" ({', '.join(extras)})" if extras else "")

    def notes(self) -> list[str]:
        if self.unavailable is not None:
            return [f"{self.spec.label}: unavailable ({self.unavailable})"]
        out: list[str] = []
        for number, run in enumerate(self.runs, 1):
            if run.detail or run.status != "ok":
                out.append(
                    f"{self.spec.label}, {self.size:,} channels, {self.mode}, run {number}: "
                    f"{run.status}" + (f" ({run.detail})" if run.detail else "")
                )
        return out


def size_table(cells: Sequence[Cell]) -> str:
    baselines = {c.spec.key: c for c in cells if c.spec.key in BASELINES}

    def against(key: str, cell: Cell) -> str:
        reference = baselines.get(key)
        if reference is None or not cell.clean:
            return "n/a"
        if reference is cell:
            return "baseline"
        if reference.clean:
            return _common.ratio_text(reference.total, cell.total)
        # A baseline that never delivered everything: the time to its last delivery
        # is a lower bound on its time to all delivered.
        return _common.ratio_text(reference.lower_bound, cell.total, at_least=True)

    headers = [
        "layer",
        "all delivered, median (ms)",
        f"min{_common.DASH}max (ms)",
        "group_send call (ms)",
        "delivered/expected",
        f"vs {LAYERS['inmemory'].name}",
        f"vs {LAYERS['hub'].name}",
        f"CPU {_common.MICRO}s per member",
        "setup (s)",
    ]
    rows = [
        [
            cell.spec.label,
            cell.time_text(),
            cell.range_text(),
            _common.format_ms(cell.send, 2),
            cell.delivered_text(),
            against("inmemory", cell),
            against("hub", cell),
            _common.DASH if cell.cpu_per_member is None else f"{cell.cpu_per_member * 1e6:,.2f}",
            _common.DASH if cell.setup is None else f"{cell.setup:,.2f}",
        ]
        for cell in cells
    ]
    return _common.markdown_table(headers, rows, align="lrrrrrrrr")


def method_text(modes: Sequence[str], repeat: int, options: Options) -> str:
    receivers = {
        "once": (
            "**one receive() per member**: N tasks each wait in one `receive()`, so what "
            "`receive()` costs on entry is paid before the clock starts (in setup)"
        ),
        "rearm": (
            "**re-armed like consumers**: each task calls `receive()` again as soon as it "
            "has the message, as a consumer's loop does, so what `receive()` costs on entry "
            "is paid inside the timed window, as a server pays it right after a broadcast"
        ),
    }
    if options.check_extra > 0:
        extra = (
            f" Afterwards every channel is received on for {options.check_extra:g} s more; "
            'a further message (a duplicate) shows as "+k extra".'
        )
    elif "rearm" in modes:
        extra = (
            " With re-armed receivers, a second message on a channel while waiting "
            '(a duplicate) shows as "+k extra".'
        )
    else:
        extra = ""
    lines = [
        "Per layer and group size N, in one process and event loop: a fresh layer; N "
        "channels from `new_channel()`, each `group_add`ed to one group; N receiving "
        "tasks, allowed to settle; then one `group_send` of "
        f"`{_describe(MESSAGE)}`. "
        '"All delivered" runs from the `group_send` call to the moment the last receiver '
        "had its message; the `group_send` column is the call alone. Median of "
        f"{repeat} run(s); the ratios compare the all-delivered medians, and only for "
        "layers that delivered every message in every run. Setup (creating the channels, "
        "joining the group, starting the receivers and letting them settle) is not in "
        "the medians and shown apart. The CPU column is this process's CPU time "
        "(`time.process_time()`, every thread) from the `group_send` call to the last "
        "delivery, divided by N, median of the runs that delivered everything; a "
        f"broker's own CPU is not in it. A run is fenced by {options.timeout:g} s, and a "
        f"layer that goes {options.stall:g} s without a delivery is reported with what it "
        f"delivered.{extra}",
        "",
        "Receivers:",
        "",
        *(f"- {receivers[mode]}." for mode in modes),
    ]
    return "\n".join(lines)


def report(
    cells: Sequence[Cell],
    sizes: Sequence[int],
    modes: Sequence[str],
    machine: Sequence[tuple[str, str]],
    command: str,
    repeat: int,
    options: Options,
) -> str:
    parts = [
        "## layer_fanout: one group_send to every member of a group",
        "",
        f"Date: {_common.utc_now()}",
        "",
        f"Command (from the repository root): `{command}`",
        "",
        method_text(modes, repeat, options),
        "",
        "Machine:",
        "",
        _common.render_description(machine),
    ]
    notes: list[str] = []
    for size in sizes:
        for mode in modes:
            row = [c for c in cells if c.size == size and c.mode == mode]
            parts += ["", f"### {size:,} channels, {MODES[mode]}", "", size_table(row)]
        for cell in (c for c in cells if c.size == size):
            notes.extend(note for note in cell.notes() if note not in notes)
    if notes:
        parts += ["", "Notes:", "", *(f"- {note}" for note in notes)]
    return "\n".join(parts) + "\n"


def _describe(message: Message) -> str:
    """The message as the report shows it, with the long text abbreviated."""
    shown = {k: (f"100 {_common.TIMES} 'x'" if k == "text" else v) for k, v in message.items()}
    return str(shown)


# --------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time one group_send until every member of a large group has it.",
    )
    parser.add_argument(
        "--layers",
        default=",".join(LAYERS),
        help=f"comma-separated, from: {', '.join(LAYERS)} (default: all)",
    )
    parser.add_argument("--sizes", default="1000,10000", help="group sizes (default: 1000,10000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per layer and size (default 3)")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds allowed to setup and to delivery"
    )
    parser.add_argument(
        "--stall",
        type=float,
        default=10.0,
        help="give up on the missing messages after this many seconds without a delivery",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=0.2,
        help="extra seconds broker-backed layers get before group_send (default 0.2)",
    )
    parser.add_argument(
        "--check-extra",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="after delivery, receive once more on every channel this long to catch "
        "duplicates (off by default; slow for InMemoryChannelLayer)",
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help="receiver behaviour(s): 'once' (one receive() each) and/or 'rearm' (receive() "
        "again at once, as a consumer does); default: both",
    )
    parser.add_argument(
        "--message",
        choices=sorted(MESSAGES),
        default="flat",
        help="the message group_send sends: flat (scalars only, the default) or nested "
        "(lists and dicts, which each member must get its own copy of)",
    )
    parser.add_argument("--results", type=Path, default=_common.RESULTS_FILE, help="results file")
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave the results file alone"
    )
    args = parser.parse_args(argv)
    keys = [key.strip() for key in args.layers.split(",") if key.strip()]
    unknown = [key for key in keys if key not in LAYERS]
    if unknown or not keys:
        parser.error(f"unknown layer(s) {unknown}; choose from {', '.join(LAYERS)}")
    args.layer_keys = keys
    global MESSAGE
    MESSAGE = MESSAGES[args.message]
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    if not modes or any(mode not in MODES for mode in modes):
        parser.error(f"--modes takes a comma-separated list from: {', '.join(MODES)}")
    args.mode_list = modes
    try:
        args.size_list = [int(size) for size in args.sizes.split(",") if size.strip()]
    except ValueError:
        parser.error("--sizes takes comma-separated integers")
    if not args.size_list or min(args.size_list) < 1 or args.repeat < 1:
        parser.error("--sizes and --repeat need positive numbers")
    return args


def prepare_imports() -> None:
    """Make the package in this repository importable and give Django settings."""
    _common.import_this_tree()
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        from django.conf import settings

        if not settings.configured:
            settings.configure(USE_TZ=True)


def availability(spec: LayerSpec) -> str | None:
    """None if the layer class can be imported, else why not."""
    try:
        spec.load()
    except Exception as error:
        return describe_error(error)
    return None


async def describe_machine(
    specs: Sequence[LayerSpec], brokers: Brokers, extra: dict[str, str] | None = None
) -> list[tuple[str, str]]:
    """The machine, versions and broker servers of a run; ``extra`` adds lines of a caller's."""
    loop = asyncio.get_running_loop()
    extra = {"Event loop": f"asyncio, {type(loop).__name__}", **(extra or {})}
    extra["wshub-channels"] = _common.library_version(_common.package_origin())
    used = {spec.broker for spec in specs}
    if "redis" in used:
        version = await asyncio.to_thread(_common.redis_server_version, brokers.redis_url)
        extra["Redis server"] = f"{version} at {_common.redact_url(brokers.redis_url)}"
    if "nats" in used:
        version = await _common.nats_server_version(brokers.nats_url)
        extra["NATS server"] = f"{version} at {_common.redact_url(brokers.nats_url)}"
    packages = ["Django", "channels", "channels-redis", "redis", "channels-nats", "nats-py"]
    return _common.machine_description(packages, extra)


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def benchmark(args: argparse.Namespace) -> str:
    brokers = Brokers(
        redis_url=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL),
        nats_url=os.environ.get("NATS_URL", DEFAULT_NATS_URL),
    )
    options = Options(
        timeout=args.timeout,
        stall=args.stall,
        settle=args.settle,
        check_extra=args.check_extra,
        brokers=brokers,
    )
    specs = [LAYERS[key] for key in args.layer_keys]
    machine = await describe_machine(specs, brokers)
    missing = {spec.key: availability(spec) for spec in specs}
    for spec in specs:
        if missing[spec.key] is not None:
            progress(f"{spec.label}: unavailable ({missing[spec.key]})")

    cells: list[Cell] = []
    for size, mode in itertools.product(args.size_list, args.mode_list):
        row = {spec.key: Cell(spec, size, mode, missing[spec.key]) for spec in specs}
        cells.extend(row.values())
        # Round robin, so that drift on the machine spreads over all layers alike.
        for number in range(1, args.repeat + 1):
            for spec in specs:
                cell = row[spec.key]
                if cell.unavailable is not None:
                    continue
                if any(r.status in ("error", "timeout") for r in cell.runs):
                    continue  # it failed hard once; another go would only cost time
                run = await run_once(spec, size, mode == "rearm", options)
                cell.runs.append(run)
                progress(
                    f"{spec.label:41} {size:>6,} {mode:5} run {number}/{args.repeat}: "
                    f"{run.status:7} "
                    f"all delivered {_common.format_ms(run.total_s):>10} ms, "
                    f"group_send {_common.format_ms(run.send_s, 2):>9} ms, "
                    f"{run.delivered:,}/{size:,}"
                    + ("" if run.extra is None else f" +{run.extra:,} extra")
                    + ", setup "
                    + f"{_common.DASH if run.setup_s is None else f'{run.setup_s:.2f}'} s"
                    + (f" [{run.detail}]" if run.detail else "")
                )
    command = _common.command_line(__file__, env=("REDIS_URL", "NATS_URL"))
    return report(cells, args.size_list, args.mode_list, machine, command, args.repeat, options)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    prepare_imports()
    text = asyncio.run(benchmark(args))
    print(text)
    if not args.no_write:
        _common.replace_section(SECTION, text, path=args.results)
        progress(f"wrote the {SECTION} section of {args.results.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
