"""Health checks of web-function instances (FC's health_check_config): an HTTP GET on the instance's port at a
period, after an initial delay. ``failure_threshold`` consecutive failures mark the instance unhealthy: it stops
receiving requests and is replaced. Checks use their own connection, never an invocation's."""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass
from typing import Any

from .lifecycle import Instance, InstanceState
from .spec import is_web, server_config


@dataclass(frozen=True)
class HealthCheck:
    path: str
    initial_delay: float
    period: float
    timeout: float
    failure_threshold: int

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "HealthCheck | None":
        config = server_config(spec).get("health_check_config") if is_web(spec) else None
        if not config:
            return None
        return cls(config.get("http_get_url") or "/", float(config.get("initial_delay_seconds") or 0),
                   float(config.get("period_seconds") or 3), float(config.get("timeout_seconds") or 1),
                   int(config.get("failure_threshold") or 3))


class HealthMonitor:
    """Per instance: when the next check is due, consecutive failures, and whether a check is running."""

    def __init__(self) -> None:
        self._due: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._running: set[str] = set()
        self._lock = threading.Lock()

    def tend(self, instances: list[Instance], check: HealthCheck, on_unhealthy: "callable[[Instance], None]") -> None:
        now = time.monotonic()
        for inst in instances:
            if inst.state not in (InstanceState.READY, InstanceState.BUSY) or inst.container is None:
                continue  # frozen instances are not probed: they answer once thawed
            with self._lock:
                due = self._due.setdefault(inst.id, now + check.initial_delay)
                if now < due or inst.id in self._running:
                    continue
                self._running.add(inst.id)
                self._due[inst.id] = now + check.period
            threading.Thread(target=self._probe, args=(inst, check, on_unhealthy), daemon=True,
                             name=f"health-{inst.id}").start()

    def _probe(self, inst: Instance, check: HealthCheck, on_unhealthy: "callable[[Instance], None]") -> None:
        healthy = False
        conn = http.client.HTTPConnection(inst.container.address, inst.port, timeout=check.timeout)
        try:
            conn.request("GET", check.path)
            healthy = conn.getresponse().status < 400
        except (OSError, http.client.HTTPException):
            healthy = False
        finally:
            conn.close()
        with self._lock:
            self._running.discard(inst.id)
            self._failures[inst.id] = 0 if healthy else self._failures.get(inst.id, 0) + 1
            failed = self._failures[inst.id] >= check.failure_threshold
            if failed:
                self._failures.pop(inst.id, None)
                self._due.pop(inst.id, None)
        if failed:
            on_unhealthy(inst)
