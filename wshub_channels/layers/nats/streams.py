"""The JetStream streams and consumers behind normal channels: names, lazy creation, checks.

A stream has one per-subject limit, so each capacity gets its own stream,
``<PREFIX>_q<capacity>``, made on first use, holding the subjects
``<prefix>.q.<capacity>.*``; a channel is one subject in it (its name
through the core's encoder). The stream is a work queue (a message acked by
its reader is gone) with ``max_msgs_per_subject`` = capacity and
``discard_new_per_subject``, so the server refuses a push to a full channel,
and ``max_age`` = the layer's ``expiry``. A channel has one durable pull
consumer, ``q<token>``, shared by every reader on every node, so each
message reaches one reader.

Without JetStream, or on a server older than 2.9.2 (the first with
``discard_new_per_subject``), the first use of a normal channel raises
``ImproperlyConfigured`` saying what to change.

Loop safety: belongs to the bus's home loop; every method must run there.
"""

from __future__ import annotations

import re

from django.core.exceptions import ImproperlyConfigured

from ...core.names import subject_token
from .client import JetStreamContext, js_api, js_errors

__all__ = ["ACK_WAIT", "JETSTREAM_MISSING", "Streams", "no_jetstream", "stream_safe"]

ACK_WAIT = 5.0  # seconds before a fetched, unacked message (lost in flight) is redelivered
CONSUMER_IDLE = 3600.0  # a channel's consumer is removed after this long without readers
#: The first nats-server with discard_new_per_subject: older ones ignore it and
#: silently drop the oldest message of a full channel instead.
OLDEST_SERVER = (2, 9, 2)

_STREAM_IN_USE = 10058  # "stream name already in use with a different configuration"
_NO_JETSTREAM = 10039  # "jetstream not enabled for account"

JETSTREAM_MISSING = (
    "NatsHubLayer keeps normal channels (names without '!': worker queues, and "
    "their group memberships) in NATS JetStream, which this server does not offer. "
    "Start nats-server with -js, or add `jetstream {}` (with a store_dir) to its "
    "config file; groups, rooms and '!' channels work without it."
)


def stream_safe(prefix: str) -> str:
    """``prefix`` as it may appear in a stream or bucket name."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", prefix)


def no_jetstream(error: BaseException) -> bool:
    """True when ``error`` says the server (or account) has no JetStream."""
    return isinstance(error, js_errors.ServiceUnavailableError) and getattr(
        error, "err_code", None
    ) in (None, _NO_JETSTREAM)


class Streams:
    """The streams and consumers under ``prefix``, through the current JetStream context."""

    def __init__(self, prefix: str, expiry: float, storage: str) -> None:
        self.prefix = prefix
        self.name = stream_safe(prefix)
        self.expiry = expiry
        self.storage = js_api.StorageType(storage)
        self.js: JetStreamContext | None = None
        self.server = (0, 0, 0)
        self._streams: set[int] = set()
        self._consumers: set[str] = set()

    def use(self, js: JetStreamContext | None, server: tuple[int, int, int] = (0, 0, 0)) -> None:
        """Work through ``js`` (on a server of that version) from now on, checking
        streams and consumers anew."""
        self.js, self.server = js, server
        self._streams.clear()
        self._consumers.clear()

    def context(self) -> JetStreamContext:
        if self.js is None:
            raise ConnectionError("NATS is not connected")
        return self.js

    def stream(self, capacity: int) -> str:
        return f"{self.name}_q{capacity}"

    def subject(self, channel: str, capacity: int) -> str:
        return f"{self.prefix}.q.{capacity}.{subject_token(channel)}"

    @staticmethod
    def durable(channel: str) -> str:
        return "q" + subject_token(channel)

    def bound(self, channel: str) -> bool:
        """False once the channel's consumer must be checked (made) again."""
        return self.durable(channel) in self._consumers

    def forget(self, channel: str | None = None, capacity: int | None = None) -> None:
        """Check the channel's consumer, or the capacity's stream, again at next use."""
        if channel is not None:
            self._consumers.discard(self.durable(channel))
        if capacity is not None:
            self._streams.discard(capacity)

    async def ensure_stream(self, capacity: int) -> None:
        if capacity in self._streams:
            return
        if (0, 0, 0) < self.server < OLDEST_SERVER:
            raise ImproperlyConfigured(
                "NatsHubLayer keeps normal channels in JetStream streams that need "
                f"nats-server 2.9.2 or newer; this one is {'.'.join(map(str, self.server))}"
            )
        config = js_api.StreamConfig(
            name=self.stream(capacity),
            subjects=[f"{self.prefix}.q.{capacity}.*"],
            retention=js_api.RetentionPolicy.WORK_QUEUE,
            discard=js_api.DiscardPolicy.NEW,
            discard_new_per_subject=True,
            max_msgs_per_subject=capacity,
            max_age=self.expiry,
            storage=self.storage,
        )
        try:
            await self.context().add_stream(config)
        except js_errors.APIError as exc:
            if no_jetstream(exc):
                raise ImproperlyConfigured(JETSTREAM_MISSING) from exc
            if getattr(exc, "err_code", None) != _STREAM_IN_USE:
                raise
            # Made by a node configured with another expiry: use it as it is.
        self._streams.add(capacity)

    async def bind(self, channel: str, capacity: int) -> JetStreamContext.PullSubscription:
        """A new pull subscription on the channel's durable consumer (made if needed)."""
        await self.ensure_stream(capacity)
        js = self.context()
        stream, durable = self.stream(capacity), self.durable(channel)
        if durable not in self._consumers:
            config = js_api.ConsumerConfig(
                durable_name=durable,
                filter_subject=self.subject(channel, capacity),
                deliver_policy=js_api.DeliverPolicy.ALL,
                ack_policy=js_api.AckPolicy.EXPLICIT,
                ack_wait=ACK_WAIT,
                max_deliver=-1,
                inactive_threshold=CONSUMER_IDLE,
            )
            try:
                await js.add_consumer(stream, config)
            except js_errors.BadRequestError:
                # Made already with another configuration (an older version): use it.
                await js.consumer_info(stream, durable)
            self._consumers.add(durable)
        return await js.pull_subscribe_bind(durable=durable, stream=stream)

    async def purge(self) -> None:
        """Empty every stream under the prefix (streams and consumers stay)."""
        js = self.context()
        ours = re.compile(re.escape(self.name) + r"_q\d+")
        offset = 0
        while True:
            try:
                page = await js.streams_info(offset)
            except js_errors.APIError as exc:
                if no_jetstream(exc):
                    return  # no JetStream: no queues
                raise
            for info in page:
                name = info.config.name
                if name is not None and ours.fullmatch(name):
                    await js.purge_stream(name)
            if not page:
                return
            offset += len(page)
