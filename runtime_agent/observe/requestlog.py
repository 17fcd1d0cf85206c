"""The last lines each invocation wrote (the runtime's 4 KB tail), kept in memory by request id for
``GET /v1/logs``. Bounded: the oldest entries go first. Lost when the agent restarts; the container's own log stays
with the engine."""

from __future__ import annotations

import base64
import time
from collections import deque
from typing import Any

# (request id, function, instance id, time, base64 tail or None)
_Entry = tuple[str, str, str, float, "str | None"]


class RequestLog:
    def __init__(self, capacity: int = 10_000) -> None:
        # A bounded deque: appending is atomic and drops the oldest entry by itself, so the invocation path takes
        # no lock. Reading (rare) scans it, newest first.
        self._entries: deque[_Entry] = deque(maxlen=capacity)

    def record(self, request_id: str, function: str, instance_id: str, tail_b64: str | None) -> None:
        # Decoded and formatted when read: recording is on every invocation's path, reading is rare.
        self._entries.append((request_id, function, instance_id, time.time(), tail_b64))

    def find(self, *, function: str | None = None, request_id: str | None = None,
             limit: int = 100) -> list[dict[str, Any]]:
        matches: list[_Entry] = []
        for entry in reversed(self._entries.copy()):  # a copy: appends go on while we read
            if (request_id is None or entry[0] == request_id) and (function is None or entry[1] == function):
                matches.append(entry)
                if request_id is not None or len(matches) >= limit:
                    break
        return [_readable(e) for e in matches]


def _readable(entry: _Entry) -> dict[str, Any]:
    request_id, function, instance_id, at, tail = entry
    return {"request_id": request_id, "function_name": function, "instance_id": instance_id,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
            "log": base64.b64decode(tail).decode(errors="replace") if tail else ""}
