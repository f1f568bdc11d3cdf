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
