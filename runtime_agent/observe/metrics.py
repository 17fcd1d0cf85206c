"""The agent's Prometheus metrics, in a registry of its own (no process-global state). Served as text on the
control API's ``GET /metrics`` (bearer token, like every control route)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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


@dataclass(frozen=True)
class FunctionCounters:
    invocations: Any
    duration: Any
    throttled: Any
    starts: dict[str, Any]


class Metrics:
    def __init__(self, pools_snapshot: Callable[[], Iterable[dict]], host_usage: Callable[[], dict],
                 gpu_info: Callable[[], dict | None] = lambda: None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.invocations = Counter("fc_invocations", "Invocations", ["function"], registry=self.registry)
        self.errors = Counter("fc_invocation_errors", "Invocations that ended in a function error",
                              ["function", "error_type"], registry=self.registry)
        self.duration = Histogram("fc_invocation_duration_seconds", "Invocation latency inside the agent",
                                  ["function"], buckets=DURATION_BUCKETS, registry=self.registry)
        self.starts = Counter("fc_instance_starts", "How invocations found their instance",
                              ["function", "kind"], registry=self.registry)  # kind: cold, warm, resumed
        self.throttled = Counter("fc_throttled", "Requests refused with 429 ResourceThrottled", ["function"],
                                 registry=self.registry)
        self._children: dict[str, FunctionCounters] = {}
        self.registry.register(_PoolCollector(pools_snapshot))
        self.registry.register(_HostCollector(host_usage))
        self.registry.register(_GpuCollector(gpu_info))

    def of(self, function: str) -> "FunctionCounters":
        """The per-function children, looked up once: ``labels()`` takes a lock and validates every call."""
        counters = self._children.get(function)
        if counters is None:
            counters = self._children[function] = FunctionCounters(
                self.invocations.labels(function), self.duration.labels(function), self.throttled.labels(function),
                {kind: self.starts.labels(function, kind) for kind in ("cold", "warm", "resumed")})
        return counters

    def render(self) -> bytes:
        return generate_latest(self.registry)
