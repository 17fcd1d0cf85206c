"""The durable step of accepting an async event, on the local queue and on a JetStream cluster, in the same run:
- local: ``TaskStore.enqueue`` (the agent's SQLite queue: group commit, fsynced before it returns) from
  ``--clients`` threads, on the disk the lab hosts use;
- nats: what a fleet-wide queue's accept would await, from ``--clients`` concurrent accepts: the task's record
  created in an R3 KV bucket (dedupe beyond the window) and its message published to an R3 work-queue stream
  (``Nats-Msg-Id`` = task id), each acknowledged by a majority of the three nats-servers (one per lab host, in
  its namespace; the client reaches them over the lab bridge). Also the publish alone, and both with one of the
  three hosts' servers killed.
The HTTP part of accepting (wire, signature, 202) is the same for both and is measured by bench/async_accept.py.

Needs the 3-host lab (`fc-lab up`) and Debian's nats-server (scripts/setup.sh).

    .venv/bin/python bench/async_nats.py [--clients 32] [--events 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import nats  # noqa: E402
from _nats import Cluster, cluster  # noqa: E402
from nats.js.api import RetentionPolicy, StorageType, StreamConfig  # noqa: E402

from fc_lab import Lab  # noqa: E402
from runtime_agent.events.taskstore import NewTask, TaskStore  # noqa: E402

BODY = b'{"n": 1}'
DAY_MS = 86_400_000


def local_round(store: TaskStore, clients: int, per_client: int) -> float:
    go = threading.Barrier(clients + 1)

    def client() -> None:
        tasks = [NewTask("bench", uuid.uuid4().hex, "LATEST", uuid.uuid4().hex, False, BODY, 3, 1, DAY_MS)
                 for _ in range(per_client)]
        go.wait()
        for task in tasks:
            assert store.enqueue(task)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    go.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return clients * per_client / (time.perf_counter() - t0)


async def _retrying(what, deadline_s: float = 30):
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return await what()
        except (nats.errors.Error, asyncio.TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


async def nats_round(js, kv, clients: int, per_client: int, with_record: bool) -> float:
    async def client() -> None:
        for _ in range(per_client):
            task_id = uuid.uuid4().hex
            if with_record:
                await _retrying(lambda: kv.create(task_id, b'{"status": "Enqueued"}'))
            await _retrying(lambda: js.publish("tasks.bench", BODY, headers={"Nats-Msg-Id": task_id}, timeout=10))

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return clients * per_client / (time.perf_counter() - t0)


async def measure(c: Cluster, store: TaskStore, args: argparse.Namespace) -> dict:
    per_client = max(1, args.events // args.clients)
    nc = await nats.connect(servers=c.servers("lab-1"), user=c.user, password=c.password,
                            max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    js = nc.jetstream()
    await _retrying(lambda: js.add_stream(StreamConfig(
        name="TASKS", subjects=["tasks.>"], retention=RetentionPolicy.WORK_QUEUE, storage=StorageType.FILE,
        num_replicas=3, duplicate_window=120)))
    kv = await _retrying(lambda: js.create_key_value(bucket="task-records", replicas=3, history=1))
    out: dict[str, list[float]] = {"local": [], "nats_record_and_message": [], "nats_message_only": []}
    for _ in range(args.rounds):
        out["local"].append(await asyncio.to_thread(local_round, store, args.clients, per_client))
        out["nats_record_and_message"].append(await nats_round(js, kv, args.clients, per_client, True))
        out["nats_message_only"].append(await nats_round(js, kv, args.clients, per_client, False))
    c.kill("lab-3")
    down = {"local": await asyncio.to_thread(local_round, store, args.clients, per_client),
            "nats_record_and_message": await nats_round(js, kv, args.clients, per_client, True)}
    await nc.close()
    med = {k: statistics.median(v) for k, v in out.items()}
    return {
        "accepted_per_s": {k: round(v) for k, v in med.items()},
        "ratio_nats_to_local": round(med["nats_record_and_message"] / med["local"], 2),
        "ratio_nats_message_only_to_local": round(med["nats_message_only"] / med["local"], 2),
        "one_host_down_per_s": {k: round(v) for k, v in down.items()},
        "ratio_nats_to_local_one_host_down": round(down["nats_record_and_message"] / down["local"], 2),
        "rounds": {k: [round(x) for x in v] for k, v in out.items()},
        "clients": args.clients, "events_per_round": per_client * args.clients,
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--events", type=int, default=3000, help="events per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default="/var/lib/fc-bench", help="where the local queue's file goes")
    args = ap.parse_args()
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=args.dir))
    store = TaskStore(folder / "tasks.db", "bench")
    try:
        with cluster(Lab(), ["lab-1", "lab-2", "lab-3"]) as c:
            result = asyncio.run(measure(c, store, args))
    finally:
        store.close()
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
