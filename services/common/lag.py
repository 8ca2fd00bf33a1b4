"""Consumer lag of a faust worker, as a Prometheus gauge read at scrape time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


def lag_by_partition(
    end_offsets: dict[Any, int], committed: dict[Any, int], read: dict[Any, int]
) -> dict[tuple[str, int], int]:
    """Records not yet committed per (topic, partition): end offset minus the committed offset
    (the read offset where nothing was committed yet), never below zero."""
    lags = {}
    for tp, end in end_offsets.items():
        done = committed.get(tp, read.get(tp))
        if done is None:
            done = 0
        lags[(str(tp.topic), int(tp.partition))] = max(0, int(end) - int(done))
    return lags


class ConsumerLagCollector(Collector):
    """``triage_consumer_lag_records{topic, partition}`` of the partitions this worker reads."""

    def __init__(self, app: Any) -> None:
        self._monitor = app.monitor  # attaches faust's monitor, which tracks the offsets

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "triage_consumer_lag_records",
            "Records on the partitions this worker reads that it has not committed yet.",
            labels=["topic", "partition"],
        )
        monitor = self._monitor
        lags = lag_by_partition(
            dict(monitor.tp_end_offsets or {}),
            dict(monitor.tp_committed_offsets or {}),
            dict(monitor.tp_read_offsets or {}),
        )
        for (topic, partition), lag in sorted(lags.items()):
            gauge.add_metric([topic, str(partition)], lag)
        yield gauge

    def describe(self) -> Iterable[Metric]:
        return []
