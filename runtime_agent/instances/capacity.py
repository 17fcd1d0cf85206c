"""Per-host capacity: every instance reserves its CPU and memory from the moment it is created until it
has stopped (starting and frozen instances count), and no reservation is granted past the host's capacity.

``Capacity`` is the ledger; ``HostRoom`` is what the pools ask of the host, including who is evicted when a start
does not fit."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from fc_common.sizing import Size

from .lifecycle import Instance, InstanceState

if TYPE_CHECKING:
    from .gpu import HostCards
    from .pool import FunctionPool

log = logging.getLogger("fc-agent")

ROOM_HOLD = 10.0  # seconds after a pool was short of room during which nothing optional (a stem cell) takes room


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


class HostRoom:
    """The pools' view of the host (``pool.Host``): a reservation per instance, room made by evicting idle
    instances of other functions, waiters woken when a reservation returns, and the usage report of /v1/info."""

    def __init__(self, capacity: Capacity, pools: Callable[[], list[FunctionPool]], host_name: str,
                 cards: "HostCards | None" = None) -> None:
        self.capacity = capacity
        self._pools = pools
        self._host_name = host_name
        self.cards = cards  # GPU cards are reserved like cpu and memory: whole cards per instance
        # Asked before any instance is evicted (stem cells): (runtime of the pool that needs room, fits) -> evicted
        self.reclaimers: list[Callable[[str | None, Callable[[], bool]], bool]] = []
        self._short_at = float("-inf")  # when a pool last needed room made

    def reserve(self, pool: FunctionPool, inst: Instance) -> bool:
        if not self.capacity.try_reserve(inst.id, pool.size):
            return False
        if pool.gpus is not None and (self.cards is None or self.cards.lease(inst.id, pool.function, pool.gpus)
                                      is None):
            self.capacity.release(inst.id)
            return False
        return True

    def _fits(self, pool: FunctionPool) -> bool:
        cards_ok = pool.gpus is None or (self.cards is not None and self.cards.free(pool.gpus.unit,
                                                                                    pool.function)
                                         >= pool.gpus.cards)
        return cards_ok and self.capacity.fits(pool.size)

    def removed(self, inst: Instance) -> None:
        released = self.capacity.release(inst.id)
        if self.cards is not None and self.cards.release(inst.id):
            released = True
        if released:
            self.wake_all()

    def wake_all(self) -> None:
        for pool in self._pools():  # waiters of any function may fit now
            pool.wake()

    def needs_room(self) -> bool:
        """Whether a request waits, or a pool was short of room within ROOM_HOLD seconds: stem cells are not
        refilled meanwhile, or they would take the room just made for a function's instance."""
        return time.monotonic() - self._short_at < ROOM_HOLD or any(pool.waiting for pool in self._pools())

    def make_room(self, pool: FunctionPool) -> bool:
        """Evicts idle instances of other functions beyond their min_instances, least recently used first
        (OpenWhisk's container pool does the same), until ``pool``'s instance fits. True if any went. Idle stem
        cells go first (``reclaimers``): they hold room no function uses yet."""
        self._short_at = time.monotonic()
        evicted = False
        if pool.gpus is None:  # cells hold no cards
            for reclaim in self.reclaimers:
                evicted = reclaim(pool.record.spec.get("runtime"), lambda: self._fits(pool)) or evicted
            if evicted and self._fits(pool):
                return True
        candidates: list[tuple[float, FunctionPool, Instance]] = []
        # Short of cards only: evicting instances that hold none of that type would free nothing it needs.
        cards_only = pool.gpus is not None and self.capacity.fits(pool.size)
        for other in self._pools():
            if other is pool or (cards_only and (other.gpus is None or other.gpus.unit != pool.gpus.unit)):
                continue
            live = [i for i in other.instances if i.state not in (InstanceState.DRAINING, InstanceState.STOPPED)]
            idle = sorted((i for i in live if i.state in (InstanceState.READY, InstanceState.FROZEN)
                           and not i.in_flight), key=lambda i: i.last_used)
            spare = len(live) - int(other.record.spec.get("min_instances") or 0)
            candidates += [(i.last_used, other, i) for i in idle[:max(0, spare)]]
        for _, other, inst in sorted(candidates, key=lambda c: c[0]):
            if self._fits(pool):
                break
            if other.evict(inst):
                log.info("evicted idle instance %s to make room for %s", inst.id, pool.function)
                evicted = True
        return evicted

    def full_message(self, pool: FunctionPool) -> str:
        return (f"Reserved resource exhausted: function {pool.function} cannot start an instance on host "
                f"{self._host_name} within {pool.queue_timeout:g}s: {self._shortage(pool)}")

    def _shortage(self, pool: FunctionPool) -> str:
        if pool.gpus is not None and self.cards is not None and self.capacity.fits(pool.size):
            return self.cards.describe_shortage(pool.gpus, pool.function)
        return self.capacity.describe(pool.size)

    def committed_cards(self) -> dict[str, int]:
        """Cards per unit (type, or MIG type and size) that functions' min_instances promise (max(min_instances, 1) instances each)."""
        committed: dict[str, int] = {}
        for pool in self._pools():
            if pool.gpus is not None:
                n = max(int(pool.record.spec.get("min_instances") or 0), 1) * pool.gpus.cards
                committed[pool.gpus.unit] = committed.get(pool.gpus.unit, 0) + n
        return committed

    def usage(self) -> dict[str, dict[str, float | int]]:
        """Contract B: the host's capacity, what its functions commit (max(min_instances, 1) instances each) and
        what its instances reserve now."""
        committed_cpu, committed_memory = 0.0, 0
        for pool in self._pools():
            # LATEST commits one instance at least; a published version only what it keeps (min_instances).
            n = max(int(pool.record.spec.get("min_instances") or 0), 0 if pool.record.version else 1)
            committed_cpu += n * pool.size.cpu
            committed_memory += n * pool.size.memory_mb
        return {"capacity": self.capacity.total.to_json(),
                "committed": {"cpu": round(committed_cpu, 4), "memory_mb": committed_memory},
                "in_use": self.capacity.in_use().to_json()}
