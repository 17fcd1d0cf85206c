"""Steady signed load on one invoke URL while something is done to the host (a kill -9 of its agent), with the
outcome of every request by second: what the self-healing tests count."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from _agent import post

CLEAN_ERRORS = ("refused", "disconnected")  # what a client may see while the agent is down; a timeout is a hang


@dataclass
class LoadResult:
    outcomes: list[tuple[float, str]]  # (seconds since the load started, "200" or an error kind)
    action_at: float  # when the action ran, on the same clock
    hung: int  # clients still running long after the load ended

    def per_second(self) -> dict[tuple[int, str], int]:
        counts = Counter((int(t), "ok" if o == "200" else o) for t, o in self.outcomes)
        return dict(sorted(counts.items()))

    def unclean(self) -> list[tuple[float, str]]:
        return [(t, o) for t, o in self.outcomes if o != "200" and o not in CLEAN_ERRORS]

    def first_success_after_action(self) -> float | None:
        """Seconds from the action to the first request that succeeded after the first failure it caused."""
        failures = [t for t, o in self.outcomes if t >= self.action_at and o != "200"]
        if not failures:
            return None
        after = [t for t, o in self.outcomes if t > min(failures) and o == "200"]
        return min(after) - self.action_at if after else None


def invoke_once(url: str) -> str:
    try:
        return str(post(url, b"x")[0])
    except http.client.RemoteDisconnected:
        return "disconnected"
    except OSError as exc:  # refused or reset while the agent was down
        return "timeout" if "timed out" in str(exc) else "refused"


def steady_load(url: str, *, clients: int, seconds: float, act_at: float, action: Callable[[], None]) -> LoadResult:
    """``clients`` threads invoke ``url`` back to back for ``seconds``; ``action`` runs ``act_at`` seconds in."""
    outcomes: list[tuple[float, str]] = []
    lock = threading.Lock()
    start = time.monotonic()

    def client() -> None:
        while time.monotonic() - start < seconds:
            sent = time.monotonic() - start
            outcome = invoke_once(url)
            with lock:
                outcomes.append((sent, outcome))
            if outcome != "200":
                time.sleep(0.05)  # no busy loop against a closed port

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(act_at)
    action_at = time.monotonic() - start
    action()
    for t in threads:
        t.join(timeout=seconds + 60)
    return LoadResult(sorted(outcomes), action_at, sum(t.is_alive() for t in threads))
