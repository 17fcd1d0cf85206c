"""The last lines each invocation wrote (the runtime's 4 KB tail), kept in memory by request id for
``GET /v1/logs``. Bounded: the oldest entries go first. Lost when the agent restarts; the container's own log stays
with the engine."""

from __future__ import annotations

import base64
import threading
import time
from collections import OrderedDict
from typing import Any


class RequestLog:
    def __init__(self, capacity: int = 10_000) -> None:
        self._entries: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def record(self, request_id: str, function: str, instance_id: str, tail_b64: str | None) -> None:
        # Decoded and formatted when read: recording is on every invocation's path, reading is rare.
        entry = {"request_id": request_id, "function_name": function, "instance_id": instance_id,
                 "time": time.time(), "log": tail_b64}
        with self._lock:
            self._entries[request_id] = entry
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def find(self, *, function: str | None = None, request_id: str | None = None,
             limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            if request_id is not None:
                entry = self._entries.get(request_id)
                matches = [entry] if entry and (function is None or entry["function_name"] == function) else []
            else:
                matches = [e for e in reversed(self._entries.values())
                           if function is None or e["function_name"] == function][:limit]
        return [_readable(e) for e in matches]


def _readable(entry: dict[str, Any]) -> dict[str, Any]:
    return {**entry, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry["time"])),
            "log": base64.b64decode(entry["log"]).decode(errors="replace") if entry["log"] else ""}
