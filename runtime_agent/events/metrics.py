"""Prometheus metrics of the asynchronous queue, registered in the agent's own registry (served on ``/metrics``):
queue depth, tasks in hand and the oldest waiting event's age (read from SQLite at scrape time), and counters of
accepted events, retries, ended tasks by status (expirations among them) and destination deliveries."""

from __future__ import annotations

from typing import Any, Callable

from prometheus_client import Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .states import TaskStatus


class _QueueCollector(Collector):
    def __init__(self, stats: Callable[[], dict[str, dict[str, float]]], commits: Callable[[], int]) -> None:
        self._stats = stats
        self._commits = commits

    def collect(self):
        depth = GaugeMetricFamily("fc_async_queue_depth", "Async events waiting to run (Enqueued, Retrying)",
                                  labels=["function"])
        in_hand = GaugeMetricFamily("fc_async_in_hand", "Async events claimed by a worker (Dequeued, Running, "
                                    "Stopping)", labels=["function"])
        oldest = GaugeMetricFamily("fc_async_oldest_event_age_seconds", "Age of the oldest waiting async event",
                                   labels=["function"])
        for function, entry in self._stats().items():
            depth.add_metric([function], entry["waiting"])
            in_hand.add_metric([function], entry["in_hand"])
            oldest.add_metric([function], entry["oldest_age_s"])
        yield from (depth, in_hand, oldest)
        yield CounterMetricFamily("fc_async_accept_commits", "Group commits of accepted events (accepted / commits "
                                  "= events per fsync)", value=self._commits())


class AsyncMetrics:
    def __init__(self, registry: Any, stats: Callable[[], dict[str, dict[str, float]]],
                 commits: Callable[[], int]) -> None:
        self.accepted = Counter("fc_async_accepted", "Async events accepted (durable before their 202)",
                                ["function"], registry=registry)
        self.retries = Counter("fc_async_retries", "Async retries by kind (function_error, system)",
                               ["function", "kind"], registry=registry)
        self.ended_total = Counter("fc_async_ended", "Async events that ended, by final status (Expired counts "
                                   "expirations)", ["function", "status"], registry=registry)
        self.deliveries = Counter("fc_async_destination_deliveries", "Destination deliveries by result "
                                  "(delivered, retried, failed)", ["result"], registry=registry)
        registry.register(_QueueCollector(stats, commits))
        self._accepted: dict[str, Any] = {}

    def accepted_one(self, function: str) -> None:
        """Counts an accepted event; the child is looked up once (``labels()`` locks and validates each call)."""
        child = self._accepted.get(function)
        if child is None:
            child = self._accepted[function] = self.accepted.labels(function)
        child.inc()

    def retried(self, task: Any, charged: bool) -> None:
        self.retries.labels(task.function, "function_error" if charged else "system").inc()

    def ended(self, function: str, status: TaskStatus) -> None:
        self.ended_total.labels(function, status.value).inc()

    def deliveries_result(self, result: str) -> None:
        self.deliveries.labels(result).inc()
