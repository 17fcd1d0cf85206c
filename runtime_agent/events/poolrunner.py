"""The ``Runner`` the facade gives the queue: tasks go through the function pools and the facade's own invoke
path (limits, metrics, logs), with the few differences a task needs (``TaskCall``)."""

from __future__ import annotations

import logging
from typing import Any, Callable

from ..instances.driver import DriverError
from ..instances.pool import FunctionPool
from .runner import PoolPressure, RunResult, TaskCall

log = logging.getLogger("fc-agent")


class PoolRunner:
    def __init__(self, pools: Callable[[], list[FunctionPool]], pool: Callable[[str], FunctionPool | None],
                 invoke: Callable[..., Any]) -> None:
        self._pools = pools
        self._pool = pool  # one function's pool, or None (a dict lookup: this runs on every accepted event)
        self._invoke = invoke

    def function_exists(self, name: str) -> bool:
        return self._pool(name) is not None

    def pressure(self, name: str | None = None) -> dict[str, PoolPressure]:
        pools = self._pools() if name is None else [p for p in (self._pool(name),) if p is not None]
        return {p.function: PoolPressure(p.max_instances * p.concurrency, p.waiting) for p in pools}

    def run_task(self, name: str, body: bytes, *, request_id: str, task_id: str, qualifier: str,
                 on_instance: Callable[[str], None]) -> RunResult:
        # The invoke path resolves the qualifier (LATEST, a version, an alias) as for a request.
        result = self._invoke(name, body, request_id=request_id, log_tail=False, qualifier=qualifier,
                              task=TaskCall(task_id=task_id, on_instance=on_instance))
        return RunResult(result.status, result.headers, result.body)

    def end_instance(self, name: str, instance_id: str) -> bool:
        """Kills the container of an exclusive instance (concurrency 1): its call fails at once and the pool
        recycles it. A shared instance is left to finish its other requests; the task's result is dropped."""
        pool = self._pool(name)
        inst = next((i for i in pool.instances if i.id == instance_id), None) if pool else None
        if inst is None or inst.concurrency != 1:
            return False
        pool.retire(inst)  # no new request enters it; it stops when its call ends
        if inst.container is not None:
            try:
                inst.kill_container()
            except DriverError as exc:
                log.warning("could not end instance %s: %s", instance_id, exc)
                return False
        return True
