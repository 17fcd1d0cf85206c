"""What the asynchronous invoker, its workers and its outbox ask of the queue that holds tasks: the one interface
a backend implements. ``TaskStore`` (per-host SQLite, the default) and ``NatsQueue`` (natsqueue.py, a JetStream
cluster shared by the fleet; docs/architecture.md, "A fleet-wide queue") implement the same methods with the same
promises, so ``AsyncInvoker``, ``Workers`` and ``Outbox`` never branch on the backend; ``backend`` picks one from
the agent config's ``task_queue``.

Promises every backend keeps:
- ``enqueue`` returns only once the task and its Enqueued event are durable (the 202 follows); False for a
  (function, task_id) that already exists;
- ``claim`` leases a due task to exactly one worker; a lease held by a process that is gone is given back by
  ``recover`` (Dequeued: again Enqueued; Running: Retrying, not charged; Stopping: Stopped);
- ``finish`` ends a task once (False if it had already ended) and queues its destination event in the same
  atomic step, so a task's end and its delivery are never split by a crash;
- ``Task.id`` is the backend's handle of a task (``TaskRef``: SQLite's row id, JetStream's record key), passed
  back to the transitions;
- ``release`` is called when a worker gave up on a task it holds after an unexpected error: the task stays in
  hand until the backend's lease rule recovers it (SQLite: the next boot; JetStream: the lease runs out);
- ``attach`` hands the backend two callbacks: ``ready(function)`` when a task of that function can be claimed
  (a backend whose tasks arrive from elsewhere nudges the workers), ``end_instance(function, instance_id)`` when a
  task running here was stopped from another host or its lease was lost (SQLite's store needs neither).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Union, runtime_checkable

from .states import TaskStatus
from .taskrows import Delivery, NewTask, Task

TaskRef = Union[int, str]


@runtime_checkable
class TaskQueue(Protocol):
    accept_commits: int  # durable writes of accepted events (accepted / this = events per write)

    # accepting
    def enqueue(self, task: NewTask) -> bool: ...

    # working
    def claim(self, now_ms: int, busy_functions: Iterable[str] = ()) -> Task | None: ...
    def next_due_ms(self, busy_functions: Iterable[str] = ()) -> int | None: ...
    def mark_running(self, task: TaskRef, instance_id: str, now_ms: int) -> bool: ...
    def retry(self, task: TaskRef, *, not_before_ms: int, charged: bool, detail: dict, now_ms: int) -> bool: ...
    def finish(self, task: TaskRef, status: TaskStatus, *, now_ms: int, detail: dict | None = None,
               result: bytes | None = None, error: str | None = None,
               delivery: tuple[str, bytes] | None = None, charged: bool = False) -> bool: ...
    def request_stop(self, function: str, task_id: str, now_ms: int) -> tuple[Task, str] | None: ...
    def status_of(self, task: TaskRef) -> str | None: ...
    def recover(self, now_ms: int) -> list[Task]: ...
    def release(self, task: TaskRef) -> None: ...

    # the destination outbox
    def due_deliveries(self, now_ms: int, limit: int = 50) -> list[Delivery]: ...
    def next_delivery_ms(self) -> int | None: ...
    def delivery_done(self, delivery: Delivery, status: str, *, error: str | None = None,
                      next_ms: int | None = None) -> None: ...

    # the task API and metrics
    def get(self, function: str, task_id: str) -> Task | None: ...
    def events(self, task: TaskRef) -> list[dict[str, Any]]: ...
    def list(self, function: str, *, prefix: str | None, status: str | None, begin_ms: int | None,
             end_ms: int | None, descending: bool, limit: int, after: tuple[int, TaskRef] | None,
             qualifier: str | None = None) -> list[Task]: ...
    def stats(self, now_ms: int) -> dict[str, dict[str, float]]: ...
    def purge(self, before_ms: int) -> int: ...

    # AsyncInvokeConfig per function and qualifier
    def put_config(self, function: str, qualifier: str, config: dict, now_ms: int) -> tuple[int, int]: ...
    def get_config(self, function: str, qualifier: str) -> tuple[dict, int, int] | None: ...
    def delete_config(self, function: str, qualifier: str) -> bool: ...

    def attach(self, *, ready: Callable[[str], None], end_instance: Callable[[str, str], Any]) -> None: ...
    def close(self) -> None: ...


def backend(task_queue: Any, *, host: str, functions: Callable[[], Iterable[str]]) -> Callable[[Path, str], TaskQueue]:
    """The queue factory for ``AsyncInvoker`` from the agent config's ``task_queue``: "local" (or absent): the
    per-host SQLite store; {"nats": {...}}: the fleet's JetStream cluster (natsbus.NatsSettings). ValueError
    naming the field for anything else."""
    if task_queue in (None, "local"):
        from .taskstore import TaskStore

        return TaskStore
    if isinstance(task_queue, dict) and set(task_queue) == {"nats"}:
        from .natsqueue import NatsSettings, factory  # nats-py is imported only by agents that use it

        return factory(NatsSettings.from_config(task_queue["nats"]), host, functions)
    raise ValueError(f"task_queue: {str(task_queue)[:80]!r} is neither \"local\" nor {{\"nats\": {{...}}}}")
