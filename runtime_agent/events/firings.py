"""Timer ticks and object events become asynchronous invocations, as FC invokes a function asynchronously for
timer and OSS triggers: each firing is put in the agent's durable async queue (``AsyncInvoker.enqueue``), so it
gets FC's retry policy, event age, the function's async config destinations and a task record.

The enqueue is the delivery: the timer's claim (events/timer.py) and the OSS index (events/oss.py) decide once,
across the fleet, that a tick or an object event is delivered; it is then durable on the host that decided.

Nobody watches a trigger's invocation (a tick or an object event has no caller), so a queued firing the function
fails is logged at warning, naming the trigger, on each attempt; so is a firing the queue refuses."""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from typing import Any, Callable, Mapping

from ..errors import AgentError
from ..state.triggers import TriggerRecord

log = logging.getLogger("fc-agent")

REMEMBERED = 10_000  # the request ids of recent firings, to name the trigger when one fails


def log_failed_invocation(trigger_type: str, trigger_id: str, function: str, request_id: str,
                          headers: Mapping[str, str], body: bytes) -> bool:
    """True (and a warning naming the trigger and the function's error) when the function failed."""
    error_type = headers.get("x-fc-error-type")
    if not error_type:
        return False
    try:
        answer = json.loads(body)
        message = f"{answer.get('errorType', '')}: {answer.get('errorMessage', '')}"
    except (ValueError, AttributeError):
        message = body[:300].decode(errors="replace")
    log.warning("%s trigger %s: invocation %s of function %s failed (%s): %s", trigger_type, trigger_id, request_id,
                function, error_type, message[:500])
    return True


class TriggerFirings:
    def __init__(self, enqueue: Callable[..., str], new_request_id: Callable[[], str]) -> None:
        self._enqueue = enqueue  # AsyncInvoker.enqueue(function, payload, request_id=, qualifier=, check_size=)
        self._new_request_id = new_request_id
        self._recent: OrderedDict[str, TriggerRecord] = OrderedDict()
        self._lock = threading.Lock()

    def timer(self, trigger: TriggerRecord, event: bytes) -> str | None:
        """A tick this host won; the payload may be 128 KB itself, so the event's envelope is not held to the
        async payload limit."""
        return self._put(trigger, event)

    def oss(self, trigger: TriggerRecord, event: dict[str, Any]) -> str | None:
        return self._put(trigger, json.dumps(event).encode())

    def _put(self, trigger: TriggerRecord, payload: bytes) -> str | None:
        """The task id, or None (logged) when the queue refused the firing: the function is gone, say."""
        request_id = self._new_request_id()
        with self._lock:
            self._recent[request_id] = trigger
            while len(self._recent) > REMEMBERED:
                self._recent.popitem(last=False)
        try:
            return self._enqueue(trigger.function, payload, request_id=request_id,
                                 qualifier=trigger.spec.get("qualifier") or "LATEST", check_size=False)
        except AgentError as exc:
            log.warning("%s trigger %s: the firing was not queued for function %s: %s", trigger.type, trigger.id,
                        trigger.function, exc.message)
            return None

    def watched(self, invoke: Callable[..., Any]) -> Callable[..., Any]:
        """``invoke`` (the queue's way to the pools), logging the failures of trigger firings."""
        def call(name: str, body: bytes, **kwargs: Any) -> Any:
            result = invoke(name, body, **kwargs)
            trigger = self._recent.get(kwargs.get("request_id", ""))
            if trigger is not None:
                log_failed_invocation(trigger.type, trigger.id, name, kwargs["request_id"], result.headers,
                                      result.body)
            return result
        return call
