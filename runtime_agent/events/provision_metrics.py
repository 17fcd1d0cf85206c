"""The three metrics FC's target tracking reads, measured on this host for one function version's pool (the one a
provision config's qualifier resolves to):

- ProvisionedConcurrencyUtilization: requests in flight / (this host's provisioned instances x instance
  concurrency); above 1 when elastic instances take the overflow;
- CPUUtilization: CPU time its instances used since the last sample / (elapsed x their vCPU limits), from each
  container's cgroup (v2 ``cpu.stat`` usage_usec, v1 ``cpuacct.usage``);
- GPUMemUtilization: GPU memory used / total on the cards its instances lease, from NVML (or nvidia-smi). Simulated
  cards report none: the value is None and the policy says so in current_error.

Besides, the raw counts the fleet's decider needs to weigh hosts (events/provision_fleet.py): ``in_flight``,
``instances`` (live ones) and ``concurrency`` (per instance).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from ..instances.gpu import HostCards
from ..instances.pool import FunctionPool

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cpu_seconds(pid: int) -> float | None:
    """CPU time of the cgroup holding ``pid``, or None when it cannot be read."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if "cpuacct" in controllers.split(","):
                return int((CGROUP_ROOT / "cpuacct" / path.lstrip("/") / "cpuacct.usage").read_text()) / 1e9
        for line in lines:
            if line.startswith("0::"):
                for row in (CGROUP_ROOT / line[3:].lstrip("/") / "cpu.stat").read_text().splitlines():
                    if row.startswith("usage_usec "):
                        return int(row.split()[1]) / 1e6
    except (OSError, ValueError):
        return None
    return None


class ProvisionMetrics:
    def __init__(self, pool: Callable[[str], FunctionPool | None], cards: HostCards,
                 host_target: Callable[[str, str], int]) -> None:
        self._pool = pool  # by pool key
        self._cards = cards
        self._host_target = host_target  # (function, version) -> the instances this host keeps in that pool
        self._cpu: dict[str, tuple[float, float]] = {}  # instance id -> (when, cpu seconds)

    def __call__(self, function: str, version: str, wanted: set[str]) -> dict[str, float | None]:
        pool = self._pool(function if version == "LATEST" else f"{function}:{version}")  # FunctionRecord.pool_key
        if pool is None:
            return {}
        live = [i for i in pool.instances if i.container is not None]
        values: dict[str, float | None] = {"in_flight": sum(i.in_flight for i in live), "instances": len(live),
                                           "concurrency": pool.concurrency}
        if "ProvisionedConcurrencyUtilization" in wanted:
            capacity = max(1, self._host_target(function, version)) * pool.concurrency
            values["ProvisionedConcurrencyUtilization"] = values["in_flight"] / capacity  # type: ignore[operator]
        if "CPUUtilization" in wanted:
            values["CPUUtilization"] = self._cpu_utilization(live, pool.size.cpu)
        if "GPUMemUtilization" in wanted:
            values["GPUMemUtilization"] = self._cards.memory_utilization([i.id for i in live])
        return values

    def _cpu_utilization(self, live: list, cpu_limit: float) -> float | None:
        now, used, elapsed = time.monotonic(), 0.0, 0.0
        for inst in live:
            seconds = cpu_seconds(inst.container.pid) if inst.container.pid else None
            if seconds is None:
                continue
            before = self._cpu.get(inst.id)
            self._cpu[inst.id] = (now, seconds)
            if before is not None and now > before[0]:
                used += seconds - before[1]
                elapsed += (now - before[0]) * cpu_limit
        return used / elapsed if elapsed > 0 else None
