"""The two task-queue backends in the same run, on the same machine: the local SQLite queue (``TaskStore``, the
default) and the fleet-wide JetStream queue (``NatsQueue``) on a 3-member cluster of the project's nats-server
v2.15.2 (one per lab host, in its namespace, ``sync_interval: always``, R3), as the agent uses them:
- accepted events/s: ``--clients`` threads calling the backend's ``enqueue`` (what ``AsyncInvoker.enqueue`` awaits
  before the 202: SQLite's group commit, fsynced; JetStream's KV create + stream publish, each acknowledged by a
  majority that fsynced it), also with one of the three nats-servers killed;
- enqueue-to-start p50/p99 when idle: ``AsyncInvoker`` with 4 workers on each backend and a runner that only
  records when the task reached it (no container: the queue's part alone), one event at a time.
The HTTP part of accepting (wire, signature, 202) is the same for both and is measured by bench/async_accept.py.

Needs the 3-host lab (`fc-lab up`) and the nats-server build (scripts/setup.sh).

    .venv/bin/python bench/async_nats.py [--clients 32] [--events 3000] [--rounds 3] [--latency-samples 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _nats import Cluster, cluster  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from fc_lab import Lab  # noqa: E402
from runtime_agent.events.asyncinvoke import AsyncInvoker  # noqa: E402
from runtime_agent.events.natsqueue import NatsQueue, NatsSettings  # noqa: E402
from runtime_agent.events.runner import PoolPressure, RunResult  # noqa: E402
from runtime_agent.events.taskstore import NewTask, TaskStore  # noqa: E402

BODY = b'{"n": 1}'
DAY_MS = 86_400_000


def accept_round(enqueue: Callable[[NewTask], bool], clients: int, per_client: int, function: str) -> float:
    go = threading.Barrier(clients + 1)
    now = int(time.time() * 1000)

    def client() -> None:
        tasks = [NewTask(function, "t" + uuid.uuid4().hex, "LATEST", uuid.uuid4().hex, False, BODY, 3, now,
                         now + DAY_MS) for _ in range(per_client)]
        go.wait()
        for task in tasks:
            assert enqueue(task)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    go.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return clients * per_client / (time.perf_counter() - t0)


class RecordingRunner:
    """The queue's side of the facade, without containers: notes when each task reached it."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.cond = threading.Condition()

    def function_exists(self, name: str) -> bool:
        return True

    def pressure(self, name: str | None = None) -> dict[str, PoolPressure]:
        return {"bench": PoolPressure(8, 0)}

    def run_task(self, name: str, body: bytes, *, request_id: str, task_id: str, qualifier: str,
                 on_instance: Callable[[str], None]) -> RunResult:
        on_instance("bench-instance")
        with self.cond:
            self.started[task_id] = time.perf_counter()
            self.cond.notify_all()
        return RunResult(200, {}, b"ok")

    def end_instance(self, name: str, instance_id: str) -> bool:
        return False


def latency(queue: Callable[[Path, str], Any], folder: Path, samples: int) -> dict[str, float]:
    runner = RecordingRunner()
    invoker = AsyncInvoker(folder / "latency.db", runner, workers=4, registry=CollectorRegistry(), queue=queue)
    invoker.start()
    try:
        gaps = []
        for n in range(samples + 5):
            t0 = time.perf_counter()
            task_id = invoker.enqueue("bench", BODY, request_id=uuid.uuid4().hex)
            with runner.cond:
                runner.cond.wait_for(lambda: task_id in runner.started, timeout=30)
            if n >= 5:  # the first few warm the consumers
                gaps.append((runner.started[task_id] - t0) * 1000)
            time.sleep(0.02)  # idle between events
        gaps.sort()
        return {"p50_ms": round(statistics.median(gaps), 2), "p99_ms": round(gaps[int(len(gaps) * 0.99) - 1], 2)}
    finally:
        invoker.close()


def measure(c: Cluster, folder: Path, args: argparse.Namespace) -> dict:
    per_client = max(1, args.events // args.clients)
    settings = NatsSettings.from_config(c.settings()["nats"])
    store = TaskStore(folder / "tasks.db", "bench")
    nats_accept = NatsQueue(settings, "bench-accept", "bench", lambda: [])
    try:
        nats_accept.bus.call(lambda: _noop(), timeout=60)  # connected, streams and buckets declared
        out: dict[str, list[float]] = {"local": [], "nats": []}
        for _ in range(args.rounds):
            out["local"].append(accept_round(store.enqueue, args.clients, per_client, "bench-accept"))
            out["nats"].append(accept_round(nats_accept.enqueue, args.clients, per_client, "bench-accept"))
        lat = {"local": latency(TaskStore, folder, args.latency_samples),
               "nats": latency(lambda _db, boot: NatsQueue(settings, boot, "bench", lambda: ["bench"]), folder,
                               args.latency_samples)}
        c.kill("lab-3")
        time.sleep(5)  # the streams' leaders on lab-3 are re-elected
        down = {"local": accept_round(store.enqueue, args.clients, per_client, "bench-accept"),
                "nats": accept_round(nats_accept.enqueue, args.clients, per_client, "bench-accept")}
    finally:
        nats_accept.close()
        store.close()
    med = {k: statistics.median(v) for k, v in out.items()}
    return {
        "accepted_per_s": {k: round(v) for k, v in med.items()},
        "ratio_nats_to_local": round(med["nats"] / med["local"], 2),
        "rounds": {k: [round(x) for x in v] for k, v in out.items()},
        "one_host_down_per_s": {k: round(v) for k, v in down.items()},
        "ratio_nats_to_local_one_host_down": round(down["nats"] / down["local"], 2),
        "enqueue_to_start_idle": lat,
        "ratio_nats_to_local_p50": round(lat["nats"]["p50_ms"] / lat["local"]["p50_ms"], 2),
        "clients": args.clients, "events_per_round": per_client * args.clients,
        "latency_samples": args.latency_samples, "load_average": [round(x, 1) for x in os.getloadavg()],
    }


async def _noop() -> None:
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--events", type=int, default=3000, help="events per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency-samples", type=int, default=200)
    ap.add_argument("--dir", default="/var/lib/fc-bench", help="where the local queue's file goes")
    args = ap.parse_args()
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=args.dir))
    load_before = [round(x, 1) for x in os.getloadavg()]
    try:
        with cluster(Lab(), ["lab-1", "lab-2", "lab-3"]) as c:
            result = measure(c, folder, args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({**result, "load_average_before": load_before}, indent=2))


if __name__ == "__main__":
    main()
