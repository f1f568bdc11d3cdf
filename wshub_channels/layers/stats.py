"""What a layer counts: every message it drops or rejects, and the bus's ups and downs.

:class:`LayerStats` holds plain counters that only ever grow; the hub's
metrics and the tests read them. :meth:`LayerStats.record_event` counts and
logs one event a bus or store reports. Counting is not synchronised: a counter
bumped from another thread (a message that expired during a cross-thread
``send``) may, rarely, miss one.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from ..log import Throttle

__all__ = ["LayerStats"]

logger = logging.getLogger("wshub_channels.layers")


@dataclass
class LayerStats:
    """Counters of everything the layer drops or rejects; never decremented."""

    publishes: int = 0  # envelopes handed to the bus (a failed one is also a publish_error)
    full_drops: int = 0  # group_send or remote send skipped a channel at capacity
    expired: int = 0  # messages that expired unread, here or in the broker (when noticed)
    no_channel_drops: int = 0  # direct sends to a local channel that no longer exists
    unknown_version: int = 0  # envelopes from an unknown major version
    bad_envelopes: int = 0  # undecodable bus messages
    publish_errors: int = 0  # publishes the bus failed
    bus_down: int = 0  # times the bus connection was lost
    bus_up: int = 0  # times it was (re)established
    subscriber_dropped: int = 0  # times the broker cut our subscriber off (output buffer)
    slow_consumer: int = 0  # bus messages the client dropped because this node read too slowly
    receive_put_back: int = 0  # messages a cancelled receive had taken and gave back to the broker
    receive_lost: int = 0  # messages the broker handed to a receive that was cancelled, not kept
    holds_recovered: int = 0  # hold lists of dead receivers whose messages went back (Redis)
    ack_timeouts: int = 0  # acks the broker did not confirm in time (NATS; may redeliver)

    def snapshot(self) -> dict[str, int]:
        return asdict(self)

    def record_event(self, event: str, error: BaseException | None, log: Throttle) -> None:
        """Count and log one bus event: "down", "up", "dropped", "slow_consumer",
        "expired", "bad_frame", "put_back", "receive_lost", "hold_recovered" or
        "ack_timeout"."""
        if event == "down":
            self.bus_down += 1
            logger.warning("bus connection lost: %r", error)
        elif event == "up":
            self.bus_up += 1
            logger.info("bus connection established")
        elif event == "dropped":
            self.subscriber_dropped += 1
            logger.error("the broker dropped this node's subscriber: %s", error)
        elif event == "slow_consumer":
            self.slow_consumer += 1
            log.warning("the bus client dropped a message for this slow node: %s", error)
        elif event == "expired":
            self.expired += 1
        elif event == "bad_frame":
            self.bad_envelopes += 1
            log.warning("ignoring a malformed bus frame: %r", error)
        else:
            self._record_receive_event(event, error, log)

    def _record_receive_event(self, event: str, error: BaseException | None, log: Throttle) -> None:
        """Count and log what happened to a message a normal-channel receive was handed."""
        if event == "put_back":
            self.receive_put_back += 1
        elif event == "receive_lost":
            self.receive_lost += 1
            log.warning("a cancelled receive lost a message the bus had handed over: %s", error)
        elif event == "hold_recovered":
            self.holds_recovered += 1
            log.warning("recovered the messages of a receiver that stopped: %s", error)
        elif event == "ack_timeout":
            self.ack_timeouts += 1
            log.warning("the bus did not confirm a receive's ack (it may redeliver): %r", error)
        else:
            logger.warning("unknown bus event %r: %r", event, error)
