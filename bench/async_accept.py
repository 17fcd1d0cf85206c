"""The async accept path alone, on this machine without the lab: the agent's own invoke server (``InvokeServer``:
wire, signature verification, routing) in front of the real ``AsyncInvoker`` and its SQLite queue (group commit,
fsynced before each 202), with no containers behind it (no worker runs an event). Clients run in another process
and send pre-signed requests over raw kept-alive sockets, so the client's cost stays small and off the server.

Floors in the same run, alternating rounds:
- ``http_ceiling``: the same requests to an unknown function (verified, answered 404, nothing written);
- ``sqlite_alone``: one fsynced SQLite commit per event in the same folder (what the queue reaches without group
  commit, before any HTTP).

For a profile of the server side alone: ``py-spy record --gil -- .venv/bin/python bench/async_accept.py`` (the
clients are another process).

    .venv/bin/python bench/async_accept.py [--clients 32] [--events 6000] [--rounds 3] [--dir /var/lib/fc-bench]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry  # noqa: E402

from fc_common import acs3  # noqa: E402
from runtime_agent.api.invoke import InvokeServer  # noqa: E402
from runtime_agent.events.asyncinvoke import AsyncInvoker  # noqa: E402
from runtime_agent.events.runner import PoolPressure  # noqa: E402
from runtime_agent.state.keys import KeyStore  # noqa: E402

KEY_ID, SECRET = "LTAIbenchaccept01", "s" * 30
BODY = b'{"n": 1}'


class _NoContainers:
    """The queue's Runner with one function and no instance: events wait (nothing claims them)."""

    def function_exists(self, name: str) -> bool:
        return name == "bench-held"

    def pressure(self, name: str | None = None) -> dict[str, PoolPressure]:
        return {"bench-held": PoolPressure(1, 0)}

    def run_task(self, *args, **kwargs):  # never called: no worker runs
        raise AssertionError("no worker runs in this benchmark")

    def end_instance(self, name: str, instance_id: str) -> bool:
        return False


class _Agent(SimpleNamespace):
    def enqueue_async(self, name, payload, *, qualifier="LATEST", task_id=None, request_id=None):
        task = self.async_invoker.enqueue(name, payload, request_id=request_id, task_id=task_id, qualifier=qualifier)
        return request_id, task


def serve(folder: Path) -> tuple[InvokeServer, AsyncInvoker]:
    keys = KeyStore(folder / "keys")
    keys.put(KEY_ID, {"secret": SECRET, "policy": {"actions": ["fc:*"], "resources": ["*"]}})
    invoker = AsyncInvoker(folder / "tasks.db", _NoContainers(), workers=0, registry=CollectorRegistry())
    invoker.start()
    config = SimpleNamespace(head_timeout_seconds=10.0, keepalive_timeout_seconds=60.0, max_connections=10000,
                             host_name="bench")
    agent = _Agent(config=config, keys=keys, async_invoker=invoker, triggers=SimpleNamespace(by_label={}))
    server = InvokeServer(("127.0.0.1", 0), agent)  # type: ignore[arg-type]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, invoker


def _requests(function: str, n: int) -> list[bytes]:
    path = f"/2023-03-30/functions/{function}/invocations"
    out = []
    for _ in range(n):
        headers = acs3.sign("POST", path, {}, {"x-fc-invocation-type": "Async", "host": "127.0.0.1",
                                                "content-length": str(len(BODY))}, BODY, KEY_ID, SECRET)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        out.append(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + BODY)
    return out


def _client(port: int, requests: list[bytes], expect: bytes, ready, go, results) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ready.release()
    go.wait()
    bad = 0
    buf = b""
    for request in requests:
        sock.sendall(request)
        while True:  # every answer here has a body of known length; read up to its end
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                head = buf[:end]
                length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
                if len(buf) >= end + 4 + length:
                    break
            buf += sock.recv(65536)
        bad += not head.startswith(b"HTTP/1.1 " + expect)
        buf = buf[end + 4 + length:]
    sock.close()
    results.put(bad)


def _round(port: int, function: str, expect: bytes, clients: int, per_client: int) -> float:
    """Requests per second of ``clients`` threads (one client process), each sending ``per_client`` in turn."""
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    ready, go = ctx.Semaphore(0), ctx.Event()

    def client_process() -> None:
        threads = [threading.Thread(target=_client, args=(port, _requests(function, per_client), expect, ready, go,
                                                          results)) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    proc = ctx.Process(target=client_process)
    proc.start()
    for _ in range(clients):
        ready.acquire()
    t0 = time.perf_counter()
    go.set()
    bad = sum(results.get() for _ in range(clients))
    elapsed = time.perf_counter() - t0
    proc.join()
    if bad:
        raise SystemExit(f"{bad} answers were not {expect.decode()}")
    return clients * per_client / elapsed


def sqlite_alone(folder: Path, n: int) -> float:
    import sqlite3

    path = folder / "floor.db"
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB)")
    t0 = time.perf_counter()
    for _ in range(n):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (payload) VALUES (?)", (BODY,))
        db.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    db.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--events", type=int, default=6000, help="events per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default="/var/lib/fc-bench", help="a folder on the disk the agent's state uses")
    args = ap.parse_args()
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=args.dir))
    server, invoker = serve(folder)
    port = server.server_address[1]
    per_client = max(1, args.events // args.clients)
    accepted, ceiling = [], []
    for _ in range(args.rounds):
        accepted.append(_round(port, "bench-held", b"202", args.clients, per_client))
        ceiling.append(_round(port, "bench-none", b"404", args.clients, per_client))
    floor = sqlite_alone(folder, 1000)
    total = sum(1 for _ in invoker.store.list("bench-held", prefix=None, status=None, begin_ms=None, end_ms=None,
                                              descending=False, limit=10 ** 9, after=None))
    commits = invoker.store.accept_commits
    server.shutdown()
    invoker.close()
    acc, ceil = statistics.median(accepted), statistics.median(ceiling)
    print(json.dumps({
        "accepted_per_s": round(acc), "http_ceiling_per_s": round(ceil), "ratio_to_ceiling": round(acc / ceil, 2),
        "sqlite_one_commit_per_event_per_s": round(floor), "ratio_to_sqlite_alone": round(acc / floor, 2),
        "events_per_group_commit": round(total / max(commits, 1), 1), "events_stored": total,
        "rounds": {"accepted": [round(x) for x in accepted], "ceiling": [round(x) for x in ceiling]},
        "clients": args.clients, "events_per_round": per_client * args.clients,
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }, indent=2))
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
