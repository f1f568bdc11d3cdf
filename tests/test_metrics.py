"""Metrics: the collectors and their loading."""

from __future__ import annotations

import pytest

from wshub_channels.metrics import DebugMetrics, MetricsCollector, NoopMetrics, load_metrics

pytestmark = pytest.mark.unit


def test_debug_metrics_snapshot() -> None:
    """DebugMetrics counts calls and reports a snapshot; both collectors fit the protocol."""
    metrics = DebugMetrics()
    metrics.increment_connections()
    metrics.increment_connections()
    metrics.decrement_connections()
    metrics.increment_messages_sent(5)
    metrics.record_message_size(10)
    metrics.record_message_size(30)
    metrics.increment_errors("rate_limit_exceeded")
    stats = metrics.stats()
    assert stats["connections_total"] == 2 and stats["connections_active"] == 1
    assert stats["messages_sent"] == 5 and stats["message_bytes_count"] == 2
    assert stats["sums"]["message_bytes"] == 40 and stats["max"]["message_bytes"] == 30
    assert stats["errors"] == {"rate_limit_exceeded": 1}
    assert isinstance(metrics, MetricsCollector) and isinstance(NoopMetrics(), MetricsCollector)
    metrics.reset()
    assert metrics.stats()["errors"] == {}


def test_load_metrics_takes_a_dotted_path_or_nothing() -> None:
    """No path gives NoopMetrics; a class path is instantiated."""
    assert isinstance(load_metrics(None), NoopMetrics)
    loaded = load_metrics("wshub_channels.metrics.DebugMetrics")
    assert isinstance(loaded, DebugMetrics) and loaded is not load_metrics(
        "wshub_channels.metrics.DebugMetrics"
    )


class OldCollector:
    """A user's collector written before the optional methods existed."""

    def __init__(self) -> None:
        self.dropped = 0

    def increment_messages_dropped(self) -> None:
        self.dropped += 1

    def report(self) -> str:
        return "mine"


def test_a_collector_without_the_optional_methods_gets_their_defaults() -> None:
    """load_metrics fills in what an older collector lacks; its own methods still run."""
    found = load_metrics("tests.test_metrics.OldCollector")
    found.increment_messages_dropped_for("drop_oldest")  # defaults to the older method
    found.increment_handshakes_refused("HubDraining")
    found.record_bytes_sent(10)
    assert found.sample_interval is None
    assert found.inner.dropped == 1 and found.report() == "mine"  # type: ignore[attr-defined]
    assert isinstance(load_metrics("wshub_channels.metrics.DebugMetrics"), DebugMetrics)


class SamplingCollector(OldCollector):
    """An older collector that samples, but lacks the other optional methods."""

    sample_interval = 2.0

    def observe_hub(self, sample: object) -> None:
        pass


def test_a_completed_collector_keeps_its_sample_interval() -> None:
    found = load_metrics("tests.test_metrics.SamplingCollector")
    assert found.sample_interval == 2.0


def test_only_collectors_that_count_bytes_make_senders_measure() -> None:
    from wshub_channels.metrics import counts_bytes

    assert not counts_bytes(NoopMetrics())
    assert not counts_bytes(load_metrics("tests.test_metrics.OldCollector"))
    assert counts_bytes(DebugMetrics())
