"""Per-host capacity (contract B): every instance reserves its CPU and memory from the moment it is created until it
has stopped (starting and frozen instances count), and no reservation is granted past the host's capacity.

The ledger only counts; who is evicted when a start does not fit is the agent's decision (``service``)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from .spec import Size


def detected_memory_mb(meminfo: Path = Path("/proc/meminfo")) -> int:
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise ValueError(f"{meminfo} has no MemTotal line")


@dataclass(frozen=True)
class Totals:
    cpu: float
    memory_mb: int

    def to_json(self) -> dict[str, float | int]:
        return {"cpu": round(self.cpu, 4), "memory_mb": self.memory_mb}


class Capacity:
    # Sizes are multiples of 0.05 vCPU; a small tolerance keeps float sums from refusing an exact fit.
    _EPSILON = 1e-6

    def __init__(self, cpu: float | None, memory_mb: int | None) -> None:
        self.total = Totals(float(cpu if cpu is not None else os.cpu_count() or 1),
                            int(memory_mb if memory_mb is not None else detected_memory_mb()))
        self._reserved: dict[str, Size] = {}
        self._lock = threading.Lock()

    def in_use(self) -> Totals:
        with self._lock:
            sizes = list(self._reserved.values())
        return Totals(sum(s.cpu for s in sizes), sum(s.memory_mb for s in sizes))

    def fits(self, size: Size) -> bool:
        used = self.in_use()
        return (used.cpu + size.cpu <= self.total.cpu + self._EPSILON
                and used.memory_mb + size.memory_mb <= self.total.memory_mb)

    def try_reserve(self, instance_id: str, size: Size) -> bool:
        with self._lock:
            cpu = sum(s.cpu for s in self._reserved.values()) + size.cpu
            memory = sum(s.memory_mb for s in self._reserved.values()) + size.memory_mb
            if cpu > self.total.cpu + self._EPSILON or memory > self.total.memory_mb:
                return False
            self._reserved[instance_id] = size
            return True

    def force_reserve(self, instance_id: str, size: Size) -> None:
        """For instances re-adopted after a restart: they run already, whatever the capacity now says."""
        with self._lock:
            self._reserved[instance_id] = size

    def release(self, instance_id: str) -> bool:
        with self._lock:
            return self._reserved.pop(instance_id, None) is not None

    def describe(self, size: Size) -> str:
        used = self.in_use()
        return (f"host capacity exhausted: an instance needs {size.cpu:g} vCPU and {size.memory_mb} MB; the host "
                f"has {self.total.cpu:g} vCPU and {self.total.memory_mb} MB, of which {used.cpu:g} vCPU and "
                f"{used.memory_mb} MB are reserved by running, starting and hibernated instances")
