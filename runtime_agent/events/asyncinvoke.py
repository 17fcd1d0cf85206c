"""Asynchronous invocation, the object the facade wires in: accepts events (``enqueue``, also the entry point for
triggers that invoke asynchronously), owns the queue, its workers and the destination outbox, keeps the
AsyncInvokeConfig of each function and qualifier, and answers the task API (get, list, stop).

An accepted event is durable before ``enqueue`` returns (the 202). What is refused at once, in FC's shape: an
unknown function (404), a payload over 128 KB (400), a task id that breaks FC's rule or is given for a function
without task mode (400), a task id already used for that function (409).
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fc_common import asyncrules as rules

from ..errors import BadRequest, Conflict, NotFound
from .destinations import Outbox, destination_event
from .metrics import AsyncMetrics
from .retry import RetryPolicy
from .runner import Runner
from .states import TERMINAL, TaskStatus
from .taskqueue import TaskQueue
from .taskrows import NewTask, Task
from .taskstore import TaskStore
from .workers import Workers

log = logging.getLogger("fc-agent")

RETENTION_MS = 7 * 24 * 3600 * 1000  # FC keeps a task's status queryable for 7 days
PURGE_EVERY_S = 600.0
LATEST = "LATEST"


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class AsyncConfig:
    max_async_retry_attempts: int = rules.DEFAULT_RETRY_ATTEMPTS
    max_async_event_age_in_seconds: int = rules.DEFAULT_EVENT_AGE
    async_task: bool = False
    on_success: str | None = None
    on_failure: str | None = None

    @classmethod
    def of(cls, raw: dict[str, Any]) -> "AsyncConfig":
        destinations = raw.get("destination_config") or {}
        return cls(int(raw.get("max_async_retry_attempts", rules.DEFAULT_RETRY_ATTEMPTS)),
                   int(raw.get("max_async_event_age_in_seconds", rules.DEFAULT_EVENT_AGE)),
                   bool(raw.get("async_task", False)),
                   (destinations.get("on_success") or {}).get("destination"),
                   (destinations.get("on_failure") or {}).get("destination"))


class AsyncInvoker:
    def __init__(self, database: Path, runner: Runner, *, workers: int, registry: Any,
                 clock_ms: Callable[[], int] = _now_ms,
                 queue: Callable[[Path, str], TaskQueue] = TaskStore) -> None:
        """``queue(database, boot_id)`` makes the backend (taskqueue.py); the per-host SQLite store by default."""
        self.boot_id = uuid.uuid4().hex
        self.store: TaskQueue = queue(database, self.boot_id)
        self._runner = runner
        self._clock_ms = clock_ms
        self._configs: dict[tuple[str, str], AsyncConfig] = {}
        self.metrics = AsyncMetrics(registry, lambda: self.store.stats(self._clock_ms()),
                                    lambda: self.store.accept_commits)
        self.outbox = Outbox(self.store, self._deliver_to_function, self.metrics.deliveries_result, clock_ms)
        self.workers = Workers(self.store, runner, count=workers, policy=RetryPolicy(), on_end=self._end,
                               on_retry=self.metrics.retried, clock_ms=clock_ms)
        self.store.attach(ready=self.workers.nudge, end_instance=runner.end_instance)
        self._last_purge = 0.0

    def start(self) -> None:
        """Recovers what an earlier boot left in hand, then starts the workers and the outbox."""
        for task in self.store.recover(self._clock_ms()):
            log.info("task %s of %s was running when the agent stopped: retrying it", task.task_id, task.function)
            self.metrics.retried(task, False)
            if task.instance_id:
                self._runner.end_instance(task.function, task.instance_id)  # it may still run the old call
        self.workers.start()
        self.outbox.start()

    def close(self) -> None:
        self.workers.stop()
        self.outbox.stop()
        self.store.close()

    # configs -----------------------------------------------------------------------------------------------------
    def config(self, function: str, qualifier: str = LATEST) -> AsyncConfig:
        key = (function, qualifier)
        config = self._configs.get(key)
        if config is None:
            stored = self.store.get_config(function, qualifier)
            config = self._configs[key] = AsyncConfig.of(stored[0]) if stored else AsyncConfig()
        return config

    def put_config(self, function: str, qualifier: str, raw: dict[str, Any]) -> dict[str, Any]:
        if not self._runner.function_exists(function):
            raise NotFound(f"function {function} does not exist on this host")
        problems = rules.config_problems(raw)
        for key, target in (raw.get("destination_config") or {}).items() if not problems else ():
            name = rules.destination_function((target or {}).get("destination") or "")
            if name == function:
                problems.append((f"destination_config.{key}.destination",
                                 f"function {name} cannot be its own destination (each event would beget another)"))
            elif name is not None and not self._runner.function_exists(name):
                problems.append((f"destination_config.{key}.destination",
                                 f"function {name} does not exist on this host; deploy it (to the same hosts) first"))
        if problems:
            raise BadRequest("; ".join(f"{field}: {rule}" for field, rule in problems))
        self.store.put_config(function, qualifier, raw, self._clock_ms())
        self._configs.pop((function, qualifier), None)
        return self.get_config(function, qualifier)

    def get_config(self, function: str, qualifier: str) -> dict[str, Any]:
        stored = self.store.get_config(function, qualifier)
        if stored is None:
            raise NotFound(f"no async invoke config for function {function} qualifier {qualifier}",
                           code="AsyncConfigNotFound")
        raw, created, modified = stored
        config = AsyncConfig.of(raw)
        destinations = {k: {"destination": v} for k, v in (("onSuccess", config.on_success),
                                                             ("onFailure", config.on_failure)) if v}
        return {"functionArn": rules.function_arn(function), "qualifier": qualifier, "asyncTask": config.async_task,
                "maxAsyncRetryAttempts": config.max_async_retry_attempts,
                "maxAsyncEventAgeInSeconds": config.max_async_event_age_in_seconds,
                "destinationConfig": destinations, "createdTime": _iso(created), "lastModifiedTime": _iso(modified)}

    def delete_config(self, function: str, qualifier: str) -> None:
        self._configs.pop((function, qualifier), None)
        if not self.store.delete_config(function, qualifier):
            raise NotFound(f"no async invoke config for function {function} qualifier {qualifier}",
                           code="AsyncConfigNotFound")

    # accepting ---------------------------------------------------------------------------------------------------
    def enqueue(self, function: str, payload: bytes, *, request_id: str, task_id: str | None = None,
                qualifier: str = LATEST, check_size: bool = True) -> str:
        """Makes the event durable and returns its task id; the one entry point for async work (the invoke API,
        timer and storage triggers, function destinations). Raises FC's errors for what it refuses."""
        if not self._runner.function_exists(function):
            raise NotFound(f"function {function} does not exist")
        if check_size and len(payload) > rules.MAX_ASYNC_PAYLOAD:
            raise BadRequest(f"payload of {len(payload)} bytes exceeds the 128 KB limit of an asynchronous "
                             f"invocation", code="InvalidArgument")
        config = self.config(function, qualifier)
        if task_id is not None:
            problem = rules.task_id_problem(task_id)
            if problem:
                raise BadRequest(problem)
            if not config.async_task:
                raise BadRequest(f"x-fc-async-task-id is given but function {function} (qualifier {qualifier}) "
                                 f"has no task mode: set async_task in its AsyncInvokeConfig")
        now = self._clock_ms()
        task = NewTask(function, task_id or request_id, qualifier, request_id, config.async_task, payload,
                       config.max_async_retry_attempts, now, now + config.max_async_event_age_in_seconds * 1000)
        if not self.store.enqueue(task):
            raise Conflict(f"async task {task.task_id} of function {function} already exists; task ids are "
                           f"unique per function", code="TaskAlreadyExists")
        self.metrics.accepted_one(function)
        self.workers.nudge(function)
        return task.task_id

    def _deliver_to_function(self, function: str, event: bytes) -> None:
        self.enqueue(function, event, request_id=_request_id(), check_size=False)

    # ending --------------------------------------------------------------------------------------------------------
    def _end(self, task: Task, status: TaskStatus, info: dict[str, Any]) -> None:
        now = self._clock_ms()
        config = self.config(task.function, task.qualifier)
        target = config.on_success if status is TaskStatus.SUCCEEDED else (
            config.on_failure if status in (TaskStatus.FAILED, TaskStatus.EXPIRED, TaskStatus.INVALID) else None)
        delivery = None
        if target:
            delivery = (target, destination_event(
                task, function_arn=rules.function_arn(task.function), condition=info["condition"],
                status_code=info["status_code"], function_error=info["function_error"], response=info["result"],
                now_ms=now))
        error = info["error"] if status is not TaskStatus.SUCCEEDED else None
        if self.store.finish(task.id, status, now_ms=now, detail=info["detail"] or None, result=info["result"],
                             error=error, delivery=delivery, charged=info["charged"]):
            self.metrics.ended(task.function, status)
            if delivery:
                self.outbox.nudge()
        self._maybe_purge()

    def _maybe_purge(self) -> None:
        if time.monotonic() - self._last_purge < PURGE_EVERY_S:
            return
        self._last_purge = time.monotonic()
        removed = self.store.purge(self._clock_ms() - RETENTION_MS)
        if removed:
            log.info("forgot %d async tasks that ended more than 7 days ago", removed)

    # the task API --------------------------------------------------------------------------------------------------
    def get_task(self, function: str, task_id: str, *, include_payload: bool = True) -> dict[str, Any]:
        task = self.store.get(function, task_id)
        if task is None:
            raise NotFound(f"async task {task_id} of function {function} does not exist", code="AsyncTaskNotFound")
        return self._task_json(task, include_payload=include_payload)

    def list_tasks(self, function: str, *, prefix: str | None = None, status: str | None = None,
                   begin_ms: int | None = None, end_ms: int | None = None, descending: bool = False,
                   limit: int = 20, next_token: str | None = None, include_payload: bool = False,
                   qualifier: str | None = None) -> dict[str, Any]:
        after = _decode_token(next_token) if next_token else None
        tasks = self.store.list(function, prefix=prefix, status=status, begin_ms=begin_ms, end_ms=end_ms,
                                descending=descending, limit=limit + 1, after=after, qualifier=qualifier)
        token = None
        if len(tasks) > limit:
            tasks = tasks[:limit]
            token = _encode_token(tasks[-1])
        out: dict[str, Any] = {"tasks": [self._task_json(t, include_payload=include_payload) for t in tasks]}
        if token:
            out["nextToken"] = token
        return out

    def stop_task(self, function: str, task_id: str) -> str:
        outcome = self.store.request_stop(function, task_id, self._clock_ms())
        if outcome is None:
            raise NotFound(f"async task {task_id} of function {function} does not exist", code="AsyncTaskNotFound")
        task, status = outcome
        if TaskStatus(task.status) in TERMINAL:
            raise BadRequest(f"async task {task_id} of function {function} has already ended ({task.status}); "
                             f"only a task that has not ended can be stopped", code="InvalidArgument")
        if status == TaskStatus.STOPPED.value:
            self.metrics.ended(function, TaskStatus.STOPPED)
        if status == TaskStatus.STOPPING.value and task.status == TaskStatus.RUNNING.value and task.instance_id:
            self._runner.end_instance(function, task.instance_id)
        return status

    def _task_json(self, task: Task, *, include_payload: bool) -> dict[str, Any]:
        end = task.end_ms
        out: dict[str, Any] = {
            "taskId": task.task_id, "status": task.status, "functionArn": rules.function_arn(task.function),
            "qualifier": task.qualifier, "requestId": task.request_id, "startedTime": task.enqueued_ms,
            "alreadyRetriedTimes": max(0, task.invocations - 1), "events": self.store.events(task.id),
        }
        if end is not None:
            out["endTime"] = end
            out["durationMs"] = end - task.enqueued_ms
        if task.instance_id:
            out["instanceId"] = task.instance_id
        if task.destination_status:
            out["destinationStatus"] = task.destination_status
        if task.error:
            out["taskErrorMessage"] = task.error
        if include_payload:
            out["taskPayload"] = task.payload.decode(errors="replace")
            if task.result is not None:
                out["returnPayload"] = task.result[:1024 * 1024].decode(errors="replace")
        return out


def _encode_token(task: Task) -> str:
    return base64.urlsafe_b64encode(json.dumps([task.enqueued_ms, task.id]).encode()).decode()


def _decode_token(token: str) -> tuple[int, int | str]:
    try:
        ms, handle = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(ms), handle if isinstance(handle, str) else int(handle)  # the backend's Task.id: int or str
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"nextToken {token[:64]!r} is not a token this API returned") from exc


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def _request_id() -> str:
    return str(uuid.uuid4())
