"""The invocation path: one synchronous invocation on the instance pool of the version a qualifier resolves to,
from acquiring an instance to FC's answer headers and error shapes (timeouts, crashed instances, initializer
failures), with its metrics and logs; and the one entry point of asynchronous invocations.

Used by the invoke API, HTTP triggers and the async queue's workers; composed by the facade (``service.Agent``)."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Callable

from .errors import NotFound, Throttled
from .events import http_replay
from .events.asyncinvoke import AsyncInvoker
from .events.runner import TaskCall
from .instances import spec as specs
from .instances.lifecycle import InitializerFailed, InstanceBroken, InvocationTimeout
from .instances.pool import FunctionPool
from .observe.functionlog import FunctionLogs
from .observe.metrics import Metrics
from .observe.requestlog import RequestLog
from .state.store import FunctionRecord
from .state.versions import LATEST, QualifierResolver


@dataclass(slots=True)
class InvokeResult:
    status: int
    headers: dict[str, str]
    body: bytes


class Invocations:
    def __init__(self, host_name: str, pool: Callable[[str], FunctionPool | None], qualifiers: QualifierResolver,
                 metrics: Metrics, request_log: RequestLog, function_logs: FunctionLogs,
                 async_invoker: Callable[[], AsyncInvoker], replay_key: str = "") -> None:
        self._host_name = host_name
        self._pool = pool  # by pool key: a function's name for LATEST, "name:version" for a published version
        self._qualifiers = qualifiers
        self._metrics = metrics
        self._request_log = request_log
        self._function_logs = function_logs
        self._async_invoker = async_invoker  # built after this object: its workers invoke through it
        self._replay_key = replay_key  # seals the HTTP requests web functions' triggers queue (events/http_replay)

    def invoke(self, name: str, body: bytes, *, request_id: str, log_tail: bool, qualifier: str | None = None,
               task: TaskCall | None = None) -> InvokeResult:
        """Runs one invocation on the version ``qualifier`` resolves to (LATEST, a version id, an alias); ``task``:
        an asynchronous task's hooks (events/runner.py) when the queue runs it."""
        if self._pool(name) is None:
            raise NotFound(f"function {name} does not exist on host {self._host_name}")
        version = self._qualifiers.resolve(name, qualifier)
        pool = self._pool(name if version == LATEST else f"{name}:{version}")
        if pool is None:
            raise NotFound(f"version {version} of function {name} does not exist on host {self._host_name}",
                           code="VersionNotFound")
        record = pool.record
        timeout = float(record.spec.get("timeout", 3))
        base = {"x-fc-request-id": request_id, "x-fc-invocation-service-version": version}
        if record.code_checksum:  # a container function has no code
            base["x-fc-code-checksum"] = record.code_checksum
        started = time.perf_counter()
        counters = self._metrics.of(name)
        counters.invocations.inc()
        try:
            result = self._invoke(pool, record, body, request_id, log_tail, timeout, base, qualifier or LATEST,
                                  task)
        except Throttled:
            counters.throttled.inc()
            raise
        counters.duration.observe(time.perf_counter() - started)
        if "x-fc-error-type" in result.headers:
            self._metrics.errors.labels(name, result.headers["x-fc-error-type"]).inc()
        return result

    def _invoke(self, pool: FunctionPool, record: FunctionRecord, body: bytes, request_id: str, log_tail: bool,
                timeout: float, base: dict[str, str], qualifier: str, task: TaskCall | None) -> InvokeResult:
        try:
            inst, kind = pool.acquire(task.slot_wait if task else None)
        except InitializerFailed as exc:  # FC reports it like a function error: 200 with the error JSON
            return InvokeResult(200, {**base, "x-fc-error-type": "UnhandledInvocationError"}, exc.body)
        self._metrics.of(record.name).starts[kind].inc()
        call_headers = {"x-fc-request-id": request_id}
        if task is not None:
            try:
                task.on_instance(inst.id)
            except BaseException:
                pool.release(inst)
                raise
            call_headers["x-fc-async-task-id"] = task.task_id
        recycle = False
        headers = {**base, "x-fc-instance-id": inst.id}
        try:
            # The runtime learns the qualifier asked for (an alias, say); its pool's version is in FC_QUALIFIER.
            kept = http_replay.unseal(self._replay_key, body) if task and specs.is_web(record.spec) else None
            if kept is not None:  # an HTTP trigger's request, queued asynchronously: replayed as it came
                head = kept.head[:-2] + f"x-fc-async-task-id: {task.task_id}\r\n\r\n".encode()  # type: ignore
                reply = inst.call(kept.target, kept.body, {}, timeout, method=kept.method, head=head)
            else:
                reply = inst.call("/invoke", body, {**call_headers, "x-fc-qualifier": qualifier}, timeout)
        except InvocationTimeout:
            recycle = True
            return InvokeResult(200, {**headers, "x-fc-error-type": "UnhandledInvocationError"}, json.dumps({
                "errorMessage": f"Function timed out after {timeout:g} seconds",
                "errorType": "FunctionTimeoutError", "stackTrace": [],
            }).encode())
        except InstanceBroken as exc:
            recycle = True
            return InvokeResult(200, {**headers, "x-fc-error-type": "UnhandledInvocationError"}, json.dumps({
                "errorMessage": f"Process exited unexpectedly before completing request: {exc}",
                "errorType": "ProcessExitedError", "stackTrace": [],
            }).encode())
        finally:
            pool.release(inst, recycle=recycle)
        if "x-fc-error-type" in reply.headers:
            headers["x-fc-error-type"] = reply.headers["x-fc-error-type"]
        elif reply.status >= 500:  # a custom runtime's server reports its failure by status, as FC reads it
            headers["x-fc-error-type"] = "UnhandledInvocationError"
        self._request_log.record(request_id, record.name, inst.id, reply.headers.get("x-fc-log-result"))
        if record.spec.get("log_config"):
            self._function_logs.append(record.spec["log_config"], request_id=request_id, function=record.name,
                                      qualifier=record.qualifier, instance_id=inst.id,
                                      tail_b64=reply.headers.get("x-fc-log-result"))
        if log_tail and "x-fc-log-result" in reply.headers:
            headers["x-fc-log-result"] = reply.headers["x-fc-log-result"]
        return InvokeResult(200, headers, reply.body)

    def enqueue_async(self, name: str, payload: bytes, *, qualifier: str = "LATEST", task_id: str | None = None,
                      request_id: str | None = None) -> tuple[str, str]:
        """An asynchronous invocation, durable when this returns: (request id, task id). The one entry point for
        async work (the invoke API, timer and storage triggers); raises FC's errors for what is refused."""
        request_id = request_id or new_request_id()
        task = self._async_invoker().enqueue(name, payload, request_id=request_id, task_id=task_id,
                                             qualifier=qualifier)
        return request_id, task


def new_request_id() -> str:
    """UUID-shaped, as FC's. Not secret (it is returned to the caller), so random's generator suffices: uuid4's
    os.urandom syscall cost more than any other step of a warm invocation."""
    h = f"{random.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"
