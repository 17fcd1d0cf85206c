"""The instance pool of one function: hands out instance slots, starts instances on demand, drains old ones.

Invariants: never more than ``max_instances`` instances (counting those still starting); never an instance the
host's capacity cannot hold (a reservation is taken before the instance exists); never more than
``instance_concurrency`` requests inside one instance; a request that finds no slot waits on the pool's condition
until one frees up or its queue timeout passes (then ResourceThrottled).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Protocol

from fc_common.gpu import GpuNeed
from fc_common.sizing import Size

from ..errors import AgentError, InstanceStartError, Throttled
from ..state.store import FunctionRecord
from .lifecycle import InitializerFailed, Instance, InstanceState


class Host(Protocol):
    """What a pool asks of its host: capacity for one more instance, room made by evicting idle instances of
    other functions, and word that an instance is gone (its reservation returns)."""

    def reserve(self, pool: "FunctionPool", inst: Instance) -> bool: ...

    def make_room(self, pool: "FunctionPool") -> bool: ...

    def removed(self, inst: Instance) -> None: ...

    def full_message(self, pool: "FunctionPool") -> str: ...


@dataclass
class _StartingSlots:
    """The slots a starting instance offers to requests other than its starter, and how many are still free."""

    offered: int
    left: int = field(init=False)

    def __post_init__(self) -> None:
        self.left = self.offered


def _for_claimant(exc: BaseException) -> BaseException:
    """A fresh copy of a start failure for each request that waited on that start."""
    if isinstance(exc, InitializerFailed):
        return InitializerFailed(exc.body)
    if isinstance(exc, AgentError):
        return type(exc)(exc.message, code=exc.code)
    return InstanceStartError(f"the instance this request waited for failed to start: {exc}")


class FunctionPool:
    def __init__(
        self,
        *,
        record: FunctionRecord,
        generation: str,
        concurrency: int,
        max_instances: int,
        queue_timeout: float,
        new_instance: Callable[[str], Instance],
        start_instance: Callable[[Instance, bool], None],
        host: Host,
    ) -> None:
        self.record = record
        self.function = record.name
        self.key = record.pool_key  # the agent's key of this pool: one per function version
        self.size = Size.of(record.spec)
        self.gpus = GpuNeed.of(record.spec)  # whole cards per instance, or None
        self.generation = generation
        self.concurrency = concurrency
        self.max_instances = max_instances
        self.queue_timeout = queue_timeout
        self._new_instance = new_instance
        self._start_instance = start_instance
        self._host = host
        self._instances: list[Instance] = []
        self._cond = threading.Condition()
        self.waiting = 0
        # Slots of instances still starting that no request has claimed yet: a request that finds no free slot
        # waits for one of these rather than starting another instance (concurrent cold starts share starts).
        self._unclaimed_starting: dict[str, _StartingSlots] = {}
        # A start that fails reaches the requests that claimed its slots: instance id -> [error, claimants left].
        self._failed_starts: dict[str, list] = {}

    @property
    def instances(self) -> list[Instance]:
        with self._cond:
            return list(self._instances)

    def add_adopted(self, instance: Instance) -> None:
        with self._cond:
            self._instances.append(instance)

    def acquire(self, wait: float | None = None) -> tuple[Instance, str]:
        """Returns an instance with a reserved slot, and how it was found: "warm", "resumed" (thawed from light
        hibernation) or "cold" (this request started it). Waits at most ``wait`` seconds for a slot (default:
        the pool's queue timeout)."""
        deadline = time.monotonic() + (self.queue_timeout if wait is None else wait)
        claimed: str | None = None
        host_full = False
        with self._cond:
            while True:
                # Warm instances first; a frozen one is thawed only when no warm slot is free.
                frozen = []
                for inst in self._instances:
                    if inst.state is InstanceState.FROZEN:
                        frozen.append(inst)
                    elif inst.try_acquire():
                        return inst, "warm"
                for inst in frozen:
                    if inst.try_acquire():
                        return inst, "resumed"
                if claimed is not None and claimed in self._failed_starts:
                    raise self._failure_for_claimant(claimed)
                if claimed not in self._unclaimed_starting:
                    claimed = next((iid for iid, slots in self._unclaimed_starting.items() if slots.left > 0), None)
                    if claimed is not None:
                        self._unclaimed_starting[claimed].left -= 1
                    elif len(self._instances) < self.max_instances:
                        inst = self._new_instance(f"{self.function}-{uuid.uuid4().hex[:12]}")
                        if self._host.reserve(self, inst):
                            self._instances.append(inst)
                            self._unclaimed_starting[inst.id] = _StartingSlots(self.concurrency - 1)
                            break
                        if not host_full:  # once per wait: evict idle instances elsewhere, outside our lock
                            host_full = True
                            self._cond.release()
                            try:
                                made_room = self._host.make_room(self)
                            finally:
                                self._cond.acquire()
                            if made_room:
                                continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Throttled(self._host.full_message(self) if host_full else (
                        f"Reserved resource exhausted: function {self.function} has reached max_instances "
                        f"({self.max_instances}) and no instance freed up within {self.queue_timeout:g}s"))
                self.waiting += 1
                try:
                    self._cond.wait(remaining)
                finally:
                    self.waiting -= 1
                host_full = False
        try:
            self._start_instance(inst, True)  # reserves this request's slot as the instance becomes ready
        except BaseException as exc:
            self._forget(inst, failure=exc)
            raise
        with self._cond:
            self._unclaimed_starting.pop(inst.id, None)
            self._cond.notify_all()  # waiters may use the new instance's other slots
        return inst, "cold"

    def release(self, inst: Instance, *, recycle: bool = False) -> None:
        inst.release()
        if recycle or inst.state is InstanceState.DRAINING:
            self._retire(inst)
        with self._cond:
            self._cond.notify()

    def _forget(self, inst: Instance, failure: BaseException | None = None) -> None:
        with self._cond:
            slots = self._unclaimed_starting.pop(inst.id, None)
            claimants = slots.offered - slots.left if slots is not None else 0
            if failure is not None and claimants > 0:
                self._failed_starts[inst.id] = [failure, claimants]
            if inst in self._instances:
                self._instances.remove(inst)
            self._cond.notify_all()
        self._host.removed(inst)

    def _failure_for_claimant(self, instance_id: str) -> BaseException:
        entry = self._failed_starts[instance_id]
        entry[1] -= 1
        if entry[1] <= 0:
            del self._failed_starts[instance_id]
        return _for_claimant(entry[0])

    def wake(self) -> None:
        """Capacity freed up on the host: waiters try again."""
        with self._cond:
            self._cond.notify_all()

    def retire(self, inst: Instance) -> None:
        """Takes the instance out of service: it stops now if idle, else when its last request finishes."""
        self._retire(inst)
        with self._cond:
            self._cond.notify_all()

    def _retire(self, inst: Instance) -> None:
        inst.begin_drain()
        if inst.in_flight == 0:
            inst.stop()
            self._forget(inst)

    def reap_idle(self, idle_timeout: float, keep: int = 0) -> int:
        """Stops instances idle longer than ``idle_timeout``, keeping ``keep`` of them. Returns how many stopped."""
        now = time.monotonic()
        live = (InstanceState.READY, InstanceState.BUSY, InstanceState.FROZEN)
        with self._cond:
            idle = [i for i in self._instances
                    if i.state in (InstanceState.READY, InstanceState.FROZEN) and now - i.last_used > idle_timeout]
            ready = [i for i in self._instances if i.state in live]
            victims = idle[: max(0, len(ready) - keep)]
        for inst in victims:
            if inst.begin_drain():
                inst.stop()
                self._forget(inst)
        return len(victims)

    def evict(self, inst: Instance) -> bool:
        """Stops ``inst`` if it is idle now (never one with a request in flight). True if it stopped."""
        if not inst.begin_drain(only_if_idle=True):
            return False
        inst.stop()
        self._forget(inst)
        return True

    def hibernate_idle(self, grace: float) -> int:
        return sum(1 for inst in self.instances if inst.hibernate(grace))

    def prewarm(self, target: int) -> tuple[list[Instance], bool]:
        """Adds instances until ``target`` exist (counting starting ones); the caller starts the returned ones.
        The flag tells whether the host's capacity fell short."""
        with self._cond:
            live = [i for i in self._instances if i.state not in (InstanceState.DRAINING, InstanceState.STOPPED)]
            new: list[Instance] = []
            short = False
            for _ in range(min(target, self.max_instances) - len(live)):
                inst = self._new_instance(f"{self.function}-{uuid.uuid4().hex[:12]}")
                if not self._host.reserve(self, inst):
                    short = True  # the caller may make room; the next reaper pass tries again
                    break
                new.append(inst)
                # Requests arriving meanwhile claim its slots instead of starting instances of their own.
                self._unclaimed_starting[inst.id] = _StartingSlots(self.concurrency)
            self._instances.extend(new)
        return new, short

    def start_prewarmed(self, inst: Instance) -> None:
        try:
            self._start_instance(inst, False)
        except Exception as exc:  # noqa: BLE001 - a failed pre-warm is retried by the next reaper pass
            self._forget(inst, failure=exc)  # requests that claimed its slots get the cause
            raise
        with self._cond:
            self._unclaimed_starting.pop(inst.id, None)
            self._cond.notify_all()

    def shutdown(self) -> None:
        """Drains every instance: idle ones stop now, busy ones when their requests finish."""
        for inst in self.instances:
            if inst.begin_drain():
                inst.stop()
                self._forget(inst)
