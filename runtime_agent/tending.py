"""The reaper: every ``REAPER_PERIOD`` it tends each function's pool. It keeps min_instances (and provisioned and
GPU-resident instances) started, hibernates the idle instances of functions that ask for it, replaces instances
that fail their health check, and removes instances idle past their timeout (scale to zero).

Composed by the facade (``service.Agent``), which hands it what it reads: the pools, the provision scalers and the
host's cards and room."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from .config import AgentConfig
from .events.provision import ProvisionScalers
from .instances.capacity import HostRoom
from .instances.gpu import HostCards
from .instances.health import HealthCheck, HealthMonitor
from .instances.lifecycle import Instance
from .instances.pool import FunctionPool

log = logging.getLogger("fc-agent")

REAPER_PERIOD = 0.25
DEFAULT_HIBERNATION_GRACE = 2.0
ROOM_RETRY = 2.0  # seconds between evictions for one function's min_instances


class PoolTender:
    def __init__(self, config: AgentConfig, pools: Callable[[], list[FunctionPool]],
                 current_pool: Callable[[str], FunctionPool | None], provision: ProvisionScalers, cards: HostCards,
                 room: HostRoom) -> None:
        self._config = config
        self._pools = pools
        self._current_pool = current_pool  # by key: a pool deleted or replaced since a snapshot is not tended
        self._provision = provision
        self._cards = cards
        self._room = room
        self._health = HealthMonitor()
        self._making_room: dict[str, float] = {}  # pool key -> when room was last made for its min_instances
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def _loop(self) -> None:
        while not self._stopping.wait(REAPER_PERIOD):
            self._provision.tick()
            for pool in self._pools():
                if self._current_pool(pool.key) is not pool:
                    continue  # deleted or replaced since the snapshot: never pre-warm a retired pool
                try:
                    self.tend(pool)
                except Exception:  # noqa: BLE001 - the reaper must survive one bad container
                    log.exception("reaper: %s", pool.function)

    def tend(self, pool: FunctionPool) -> None:
        spec = pool.record.spec
        provisioned = self._provision.pool_target(pool.function, pool.record.version)  # configs resolving here
        keep = max(int(spec.get("min_instances") or 0), provisioned,
                   self._cards.resident_instances(pool.function, pool.gpus))  # a GPU pool's resident instances
        if spec.get("hibernation"):
            pool.hibernate_idle(float(spec.get("hibernation_grace_seconds") or DEFAULT_HIBERNATION_GRACE))
        check = HealthCheck.from_spec(spec)
        if check is not None:
            self._health.tend(pool.instances, check, lambda inst: _replace_unhealthy(pool, inst))
        idle_timeout = float(spec.get("idle_timeout_seconds") or self._config.idle_timeout_seconds)
        pool.reap_idle(idle_timeout, keep)
        new, short = pool.prewarm(keep)
        for inst in new:
            threading.Thread(target=_prewarm_one, args=(pool, inst), name=f"prewarm-{inst.id}", daemon=True).start()
        # min_instances are a commitment: evict for them (at most every few seconds per function).
        if short and time.monotonic() - self._making_room.get(pool.key, -ROOM_RETRY) >= ROOM_RETRY:
            self._making_room[pool.key] = time.monotonic()
            threading.Thread(target=self._room_for_min_instances, args=(pool,), name=f"room-{pool.function}",
                             daemon=True).start()

    def _room_for_min_instances(self, pool: FunctionPool) -> None:
        try:
            self._room.make_room(pool)
        except Exception:  # noqa: BLE001 - logged; the next reaper pass tries again
            log.exception("making room for %s", pool.function)
        finally:
            self._making_room[pool.key] = time.monotonic()


def _replace_unhealthy(pool: FunctionPool, inst: Instance) -> None:
    log.warning("instance %s failed its health check; replacing it", inst.id)
    pool.retire(inst)


def _prewarm_one(pool: FunctionPool, inst: Instance) -> None:
    try:
        pool.start_prewarmed(inst)
    except Exception as exc:  # noqa: BLE001 - logged; the next pass tries again
        log.warning("pre-warming %s failed: %s", inst.id, exc)
