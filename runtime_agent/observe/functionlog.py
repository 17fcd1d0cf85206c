"""A function's log_config: each invocation's log lines are appended as JSON lines to
``<state_dir>/logs/{project}/{logstore}.jsonl``, a local stand-in for FC's SLS project and logstore.

Every invocation writes FC's ``FC Invoke Start RequestId: ...`` and ``FC Invoke End RequestId: ...`` lines around
the lines the function printed (the built-in runtime returns them; a custom runtime's or container's own output
stays in the engine's container log)."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any


class FunctionLogs:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    def path(self, log_config: dict[str, Any]) -> Path:
        # project and logstore are validated at PUT (spec.validate): plain names, no path separators.
        return self.root / log_config["project"] / f"{log_config['logstore']}.jsonl"

    def append(self, log_config: dict[str, Any], *, request_id: str, function: str, qualifier: str,
               instance_id: str, tail_b64: str | None) -> None:
        text = base64.b64decode(tail_b64).decode(errors="replace") if tail_b64 else ""
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        messages = [f"FC Invoke Start RequestId: {request_id}", *text.splitlines(),
                    f"FC Invoke End RequestId: {request_id}"]
        base = {"requestId": request_id, "functionName": function, "qualifier": qualifier,
                "instanceId": instance_id, "time": stamp}
        data = "".join(json.dumps({**base, "message": m}) + "\n" for m in messages)
        target = self.path(log_config)
        with self._lock:  # one writer at a time keeps each invocation's lines together
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("a", encoding="utf-8") as fh:
                fh.write(data)
