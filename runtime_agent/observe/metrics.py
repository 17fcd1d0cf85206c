"""The agent's Prometheus metrics, in a registry of its own (no process-global state). Served as text on the
control API's ``GET /metrics`` (bearer token, like every control route).

The per-function counters every invocation touches (invocations, how it found its instance, its duration,
throttling) are plain numbers under one small lock each, rendered into Prometheus families at scrape time
(``_FunctionCollector``): prometheus_client's Counter.inc and Histogram.observe check and lock on every call, which
was a tenth of the agent's own time on a warm invocation. Rare series (errors by type) stay prometheus_client's."""

from __future__ import annotations

import threading
from bisect import bisect_left
from dataclasses import dataclass
from typing import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class _PoolCollector(Collector):
    """Instances by state, queue depth and seconds per billing state, read from the pools at scrape time."""

    def __init__(self, snapshot: Callable[[], Iterable[dict]]) -> None:
        self._snapshot = snapshot

    def collect(self):
        instances = GaugeMetricFamily("fc_instances", "Instances by function and state", labels=["function", "state"])
        queued = GaugeMetricFamily("fc_queue_depth", "Requests waiting for an instance slot", labels=["function"])
        seconds = GaugeMetricFamily("fc_instance_seconds", "Seconds of live instances per billing state",
                                    labels=["function", "billing_state"])
        for pool in self._snapshot():
            for state, count in pool["states"].items():
                instances.add_metric([pool["function"], state], count)
            queued.add_metric([pool["function"]], pool["waiting"])
            for billing_state, value in pool["seconds"].items():
                seconds.add_metric([pool["function"], billing_state], value)
        yield from (instances, queued, seconds)


class _HostCollector(Collector):
    """The host's capacity and what instances reserve of it now (starting, running and hibernated)."""

    def __init__(self, usage: Callable[[], dict]) -> None:
        self._usage = usage

    def collect(self):
        usage = self._usage()
        for resource, unit in (("cpu", "vCPU"), ("memory_mb", "MB")):
            yield GaugeMetricFamily(f"fc_host_capacity_{resource}", f"Host capacity for instances ({unit})",
                                    value=usage["capacity"][resource])
            yield GaugeMetricFamily(f"fc_host_reserved_{resource}", f"Reserved by live instances ({unit})",
                                    value=usage["in_use"][resource])


class _GpuCollector(Collector):
    """Cards per type, source (``simulated`` says so) and state (leased, free), read from /v1/info's ``gpus``."""

    def __init__(self, gpu_info: Callable[[], dict | None]) -> None:
        self._gpu_info = gpu_info

    def collect(self):
        info = self._gpu_info()
        cards = GaugeMetricFamily("fc_gpu_cards", "GPU cards by type, source and state (simulated cards say so)",
                                  labels=["gpu_type", "source", "state"])
        for gpu_type, counts in ((info or {}).get("types") or {}).items():
            cards.add_metric([gpu_type, info["source"], "leased"], counts["leased"])
            cards.add_metric([gpu_type, info["source"], "free"], counts["total"] - counts["leased"])
        yield cards


class Count:
    """A monotonically increasing count (``inc`` as prometheus_client's Counter)."""

    __slots__ = ("value", "_lock")

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def inc(self, amount: int = 1) -> None:
        with self._lock:
            self.value += amount


class Durations:
    """A histogram over DURATION_BUCKETS (``observe`` as prometheus_client's Histogram)."""

    __slots__ = ("counts", "total", "_lock")

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)  # per bucket, not cumulative; the last is +Inf
        self.total = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        i = bisect_left(DURATION_BUCKETS, seconds)  # the first bound >= seconds: Prometheus's "le"
        with self._lock:
            self.counts[i] += 1
            self.total += seconds

    def snapshot(self) -> tuple[list[tuple[str, int]], float]:
        with self._lock:
            counts, total = list(self.counts), self.total
        cumulative, buckets = 0, []
        for bound, n in zip([*map(floatToGoString, DURATION_BUCKETS), "+Inf"], counts):
            cumulative += n
            buckets.append((bound, cumulative))
        return buckets, total


@dataclass(frozen=True)
class FunctionCounters:
    invocations: Count
    duration: Durations
    throttled: Count
    starts: dict[str, Count]


class _FunctionCollector(Collector):
    """The per-function counters, as the Prometheus families they stand for."""

    def __init__(self, children: dict[str, FunctionCounters]) -> None:
        self._children = children

    def collect(self):
        invocations = CounterMetricFamily("fc_invocations", "Invocations", labels=["function"])
        duration = HistogramMetricFamily("fc_invocation_duration_seconds", "Invocation latency inside the agent",
                                         labels=["function"])
        starts = CounterMetricFamily("fc_instance_starts", "How invocations found their instance",
                                     labels=["function", "kind"])  # kind: cold, warm, resumed
        throttled = CounterMetricFamily("fc_throttled", "Requests refused with 429 ResourceThrottled",
                                        labels=["function"])
        for function, counters in list(self._children.items()):
            invocations.add_metric([function], counters.invocations.value)
            buckets, total = counters.duration.snapshot()
            duration.add_metric([function], buckets, total)
            for kind, count in counters.starts.items():
                starts.add_metric([function, kind], count.value)
            throttled.add_metric([function], counters.throttled.value)
        yield from (invocations, duration, starts, throttled)


class Metrics:
    def __init__(self, pools_snapshot: Callable[[], Iterable[dict]], host_usage: Callable[[], dict],
                 gpu_info: Callable[[], dict | None] = lambda: None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.errors = Counter("fc_invocation_errors", "Invocations that ended in a function error",
                              ["function", "error_type"], registry=self.registry)
        self._children: dict[str, FunctionCounters] = {}
        self._children_lock = threading.Lock()
        self.registry.register(_FunctionCollector(self._children))
        self.registry.register(_PoolCollector(pools_snapshot))
        self.registry.register(_HostCollector(host_usage))
        self.registry.register(_GpuCollector(gpu_info))

    def of(self, function: str) -> FunctionCounters:
        """The function's counters, made on its first invocation."""
        counters = self._children.get(function)
        if counters is None:
            with self._children_lock:  # two first invocations at once must not each make a set
                counters = self._children.get(function)
                if counters is None:
                    counters = self._children[function] = FunctionCounters(
                        Count(), Durations(), Count(), {kind: Count() for kind in ("cold", "warm", "resumed")})
        return counters

    def render(self) -> bytes:
        return generate_latest(self.registry)
