"""What the asynchronous queue asks of the agent that owns the pools: the facade implements ``Runner``. Tasks run
through the same pools, instance limits and host capacity as synchronous requests; nothing here starts a
container itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol


class TaskStopped(Exception):
    """Raised by ``on_instance`` when a stop reached the task before its call was sent: the slot is released
    and the function never sees the event."""


@dataclass(frozen=True)
class RunResult:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class PoolPressure:
    slots: int  # max_instances x instance_concurrency
    sync_waiting: int  # synchronous requests queued for a slot right now


class Runner(Protocol):
    def function_exists(self, name: str) -> bool: ...

    def pressure(self, name: str | None = None) -> dict[str, PoolPressure]:
        """Per function (every function, or just ``name``)."""
        ...

    def run_task(self, name: str, body: bytes, *, request_id: str, task_id: str, qualifier: str,
                 on_instance: Callable[[str], None]) -> RunResult:
        """Invokes like a sync request, but waits only briefly for a slot (Throttled otherwise) and calls
        ``on_instance(instance_id)`` once a slot is held, before the event is sent."""
        ...

    def end_instance(self, name: str, instance_id: str) -> bool:
        """Ends an instance that runs a task being stopped (or interrupted by a restart), when the instance is
        the task's alone (instance_concurrency 1). True if it was ended."""
        ...


@dataclass(frozen=True)
class TaskCall:
    """What turns an invocation into an async task's: a short wait for a slot (then Throttled, retried with
    backoff by the queue), the task id sent to the instance, and a hook called once the slot is held."""

    task_id: str
    on_instance: Callable[[str], None]
    slot_wait: float = 1.0
