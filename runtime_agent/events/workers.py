"""The workers that run queued tasks through the agent's pools.

Async work cannot starve synchronous traffic:
- a worker claims a task only for a function with no synchronous request waiting for a slot, so every slot that
  frees up while sync requests wait goes to them (the pool wakes its waiters; no worker competes);
- the tasks of one function hold at most ``slots - 1`` of its slots (slots = max_instances x
  instance_concurrency; at least 1), so a function with two or more slots always keeps one for sync requests;
- a worker waits at most ``SLOT_WAIT_S`` for a slot (sync requests wait ``queue_timeout``); when none frees up
  the task is throttled and retried with backoff rather than queued in the pool;
- the number of workers (``async_workers``, default 16) bounds the agent's threads spent on async work.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from ..errors import AgentError, NotFound, Throttled
from .retry import Outcome, RetryPolicy, Step
from .runner import Runner, RunResult, TaskStopped
from .states import TaskStatus
from .taskqueue import TaskQueue
from .taskrows import Task

log = logging.getLogger("fc-agent")

IDLE_WAIT_S = 1.0


class Workers:
    def __init__(self, store: TaskQueue, runner: Runner, *, count: int, policy: RetryPolicy,
                 on_end: Callable[[Task, TaskStatus, dict], None], on_retry: Callable[[Task, bool], None],
                 clock_ms: Callable[[], int]) -> None:
        self._store = store
        self._runner = runner
        self._policy = policy
        self._on_end = on_end  # (task, final status, what the destination event needs)
        self._on_retry = on_retry
        self._clock_ms = clock_ms
        self._count = count
        self._threads: list[threading.Thread] = []
        self._cond = threading.Condition()
        self._in_flight: dict[str, int] = {}
        self._stopping = False

    def start(self) -> None:
        for n in range(self._count):
            thread = threading.Thread(target=self._loop, name=f"task-worker-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def nudge(self, function: str | None = None) -> None:
        """A task of ``function`` was enqueued (or a slot freed up): an idle worker looks again, unless that
        function's tasks already hold every slot they may (a look would find nothing to claim)."""
        with self._cond:
            if function is not None and function in self._in_flight:
                pressure = self._runner.pressure(function).get(function)
                if pressure is not None and self._in_flight[function] >= max(1, pressure.slots - 1):
                    return
            self._cond.notify()

    def in_flight(self) -> dict[str, int]:
        with self._cond:
            return dict(self._in_flight)

    def _busy_functions(self) -> set[str]:
        pressure = self._runner.pressure()
        busy = set()
        for function, p in pressure.items():
            cap = max(1, p.slots - 1)
            if p.sync_waiting > 0 or self._in_flight.get(function, 0) >= cap:
                busy.add(function)
        return busy

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                busy = self._busy_functions()
            try:
                task = self._store.claim(self._clock_ms(), busy)
            except Exception:  # noqa: BLE001 - a worker outlives a failing claim; it looks again later
                log.exception("claiming a task")
                task = None
            if task is None:
                # Nothing due for a function with room: sleep until the next retry is due, a nudge (an enqueue, a
                # task ending) or IDLE_WAIT_S (a sync queue that emptied is noticed then). Tasks of busy functions
                # do not count, or idle workers would poll for them.
                next_ms = self._store.next_due_ms(busy)
                with self._cond:
                    if self._stopping:
                        return
                    wait = IDLE_WAIT_S if next_ms is None else (next_ms - self._clock_ms()) / 1000
                    self._cond.wait(min(IDLE_WAIT_S, max(0.005, wait)))
                continue
            with self._cond:
                self._in_flight[task.function] = self._in_flight.get(task.function, 0) + 1
            try:
                self._work(task)
            except Exception:  # noqa: BLE001 - the task stays in hand: the queue's lease rule recovers it
                log.exception("running task %s of %s", task.task_id, task.function)
                self._store.release(task.id)
            finally:
                with self._cond:
                    self._in_flight[task.function] -= 1
                    if not self._in_flight[task.function]:
                        del self._in_flight[task.function]
                    self._cond.notify()

    def _work(self, task: Task) -> None:
        now = self._clock_ms()
        if now >= task.deadline_ms:
            return self._end(task, TaskStatus.EXPIRED, {"Error": "EventAgeExceeded"},
                             condition="EventAgeExceeded", status_code=200)
        if not self._runner.function_exists(task.function):
            return self._end(task, TaskStatus.INVALID, {"Error": "FunctionNotFound"},
                             condition="FunctionNotFound", status_code=404)

        def on_instance(instance_id: str) -> None:
            if not self._store.mark_running(task.id, instance_id, self._clock_ms()):
                raise TaskStopped()

        result: RunResult | None = None
        error: AgentError | None = None
        try:
            result = self._runner.run_task(task.function, task.payload, request_id=task.request_id,
                                           task_id=task.task_id, qualifier=task.qualifier, on_instance=on_instance)
        except TaskStopped:
            return self._end(task, TaskStatus.STOPPED, {"Reason": "StopAsyncTask"}, condition="Stopped",
                             status_code=200)
        except AgentError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - e.g. a container that would not start because its function
            # was deleted meanwhile: a system error, retried with backoff (then Invalid or Expired), never a task
            # left in hand until the next restart
            log.exception("running task %s of %s", task.task_id, task.function)
            error = AgentError(f"internal error while running the task: {type(exc).__name__}: {exc}")
        if self._store.status_of(task.id) == TaskStatus.STOPPING.value:  # stopped while it ran: result dropped
            return self._end(task, TaskStatus.STOPPED, {"Reason": "StopAsyncTask"}, condition="Stopped",
                             status_code=200, result=result)
        if result is not None:
            error_type = result.headers.get("x-fc-error-type")
            outcome = Outcome.FUNCTION_ERROR if error_type else Outcome.SUCCESS
            instance = result.headers.get("x-fc-instance-id")
            task = _with_invocation(task, instance)
        else:
            outcome = (Outcome.THROTTLED if isinstance(error, Throttled) else
                       Outcome.GONE if isinstance(error, NotFound) else Outcome.SYSTEM_ERROR)
            error_type = error.code  # type: ignore[union-attr]
        decision = self._policy.decide(outcome, function_errors=task.function_errors, max_retries=task.max_retries,
                                       system_retries=task.system_retries, now_ms=self._clock_ms(),
                                       deadline_ms=task.deadline_ms)
        detail = {"Error": error_type} if error_type else {}
        if error is not None:
            detail["Message"] = error.message
        status_code = error.status if error is not None else 200
        if decision.step is Step.RETRY:
            self._store.retry(task.id, not_before_ms=self._clock_ms() + int(decision.delay_s * 1000),
                              charged=decision.charged, detail=detail, now_ms=self._clock_ms())
            self._on_retry(task, decision.charged)
            return
        status = {Step.SUCCEED: TaskStatus.SUCCEEDED, Step.FAIL: TaskStatus.FAILED, Step.EXPIRE: TaskStatus.EXPIRED,
                  Step.INVALID: TaskStatus.INVALID}[decision.step]
        condition = "Success" if status is TaskStatus.SUCCEEDED else (
            "EventAgeExceeded" if status is TaskStatus.EXPIRED and outcome is Outcome.SUCCESS else error_type or "")
        self._end(task, status, detail, condition=condition, status_code=status_code, result=result,
                  charged=outcome is Outcome.FUNCTION_ERROR)

    def _end(self, task: Task, status: TaskStatus, detail: dict, *, condition: str, status_code: int,
             result: RunResult | None = None, charged: bool = False) -> None:
        function_error = ""
        if result is not None and "x-fc-error-type" in result.headers:
            function_error = result.headers["x-fc-error-type"]
        elif detail.get("Message"):
            function_error = detail["Message"]
        self._on_end(task, status, {"detail": detail, "condition": condition, "status_code": status_code,
                                    "function_error": function_error, "charged": charged,
                                    "result": result.body if result is not None else None,
                                    "error": detail.get("Error")})


def _with_invocation(task: Task, instance_id: str | None) -> Task:
    """The task as the store now has it after mark_running (one more invocation, on that instance)."""
    from dataclasses import replace

    return replace(task, invocations=task.invocations + 1, instance_id=instance_id or task.instance_id)
