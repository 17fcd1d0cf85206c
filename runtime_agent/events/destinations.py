"""Destinations of asynchronous invocations: FC's destination event, and the outbox that delivers it.

The event is written into the ``deliveries`` table in the same transaction that ends the task, so it survives a
crash; ``Outbox`` delivers each one at least once: to a function of this host (as a new asynchronous event of
that function, delivered once it is durable in the queue), or by POST to an http(s) webhook (delivered on a 2xx).
A failed delivery is tried again after 1 s, 2 s, 4 s ... (at most 5 minutes apart), 10 times in all; the task's
``destinationStatus`` is then Succeeded or Failed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Callable

from fc_common.asyncrules import destination_function

from ..errors import AgentError
from .taskqueue import TaskQueue
from .taskrows import Delivery, Task

log = logging.getLogger("fc-agent")

MAX_DELIVERY_ATTEMPTS = 10
WEBHOOK_TIMEOUT_S = 10.0


def destination_event(task: Task, *, function_arn: str, condition: str, status_code: int, function_error: str,
                      response: bytes | None, now_ms: int) -> bytes:
    """FC's event: timestamp (ms), requestContext, the request payload and the response, both as strings."""
    return json.dumps({
        "timestamp": now_ms,
        "requestContext": {"requestId": task.request_id, "functionArn": function_arn, "condition": condition,
                           "approximateInvokeCount": task.invocations},
        "requestPayload": task.payload.decode(errors="replace"),
        "responseContext": {"statusCode": status_code, "functionError": function_error},
        "responsePayload": (response or b"").decode(errors="replace"),
    }).encode()


class Outbox:
    def __init__(self, store: TaskQueue, enqueue_to_function: Callable[[str, bytes], None],
                 on_result: Callable[[str], None], clock_ms: Callable[[], int]) -> None:
        self._store = store
        self._enqueue_to_function = enqueue_to_function  # raises AgentError when the function cannot take it
        self._on_result = on_result
        self._clock_ms = clock_ms
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="task-outbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=5)

    def nudge(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                for delivery in self._store.due_deliveries(self._clock_ms()):
                    if self._stopping.is_set():
                        return
                    self._deliver(delivery)
                next_ms = self._store.next_delivery_ms()
            except Exception:  # noqa: BLE001 - the outbox must outlive one bad row; it retries later
                log.exception("destination outbox")
                next_ms = self._clock_ms() + 1000
            wait = 5.0 if next_ms is None else max(0.0, min(5.0, (next_ms - self._clock_ms()) / 1000))
            self._wake.wait(wait)
            self._wake.clear()

    def _deliver(self, delivery: Delivery) -> None:
        try:
            target = destination_function(delivery.destination)
            if target is not None:
                self._enqueue_to_function(target, delivery.body)
            else:
                self._post(delivery.destination, delivery.body)
        except (AgentError, OSError, urllib.error.URLError, ValueError) as exc:
            error = getattr(exc, "message", None) or str(exc)
            if delivery.attempts + 1 >= MAX_DELIVERY_ATTEMPTS:
                log.warning("destination %s: giving up after %d attempts: %s", delivery.destination,
                            delivery.attempts + 1, error)
                self._store.delivery_done(delivery, "Failed", error=error)
                self._on_result("failed")
            else:
                delay_ms = min(1000 * 2 ** delivery.attempts, 300_000)
                self._store.delivery_done(delivery, "Pending", error=error, next_ms=self._clock_ms() + delay_ms)
                self._on_result("retried")
            return
        self._store.delivery_done(delivery, "Succeeded")
        self._on_result("delivered")

    @staticmethod
    def _post(url: str, body: bytes) -> None:
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:
            if not 200 <= response.status < 300:
                raise ValueError(f"webhook answered {response.status}")


def now_ms() -> int:
    return int(time.time() * 1000)
