"""Asynchronous invocation on one host: accepted events per second (each durable, fsynced, before its 202), and
enqueue-to-start latency when idle. Floors measured in the same run:
- accept rate (of events queued behind a function whose one slot is held, so only accepting is measured; and
  while the queue runs the events it accepts) vs. the agent's own HTTP ceiling: the same clients sending to an
  unknown function (answered 404 at once, nothing written), and vs. SQLite alone committing one event per fsync
  (what the queue would reach without group commit, before any HTTP);
- enqueue-to-start vs. request-to-start of a synchronous invocation of the same function.

Needs a lab with a running agent (`bash scripts/quickstart.sh`); deploys its own functions. Clients run inside
the lab host's network namespace.

    .venv/bin/python bench/async_invoke.py [--clients 32] [--events 4000] [--latency-samples 200] [--host lab-1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import _lab_agent

from fc_common import acs3
from fc_lab import Lab
from fc_provider._remote import fleetops as ops

ACCEPT = r'''
import http.client, json, sys, threading, time
BODY = b'{"n": 1}'
host, port, path, clients, per_client, expect = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), \
    int(sys.argv[5]), int(sys.argv[6])
start = threading.Barrier(clients + 1)
bad = []
def client():
    conn = http.client.HTTPConnection(host, port)
    # Signed before the clock starts (a nonce each): what is timed is the agent's verification, not the signing.
    heads = [{**signed("POST", path, BODY), "x-fc-invocation-type": "Async"} for _ in range(per_client)]
    start.wait()
    for head in heads:
        conn.request("POST", path, body=BODY, headers=head)
        r = conn.getresponse(); r.read()
        if r.status != expect:
            bad.append(r.status)
threads = [threading.Thread(target=client) for _ in range(clients)]
for t in threads: t.start()
start.wait(); t0 = time.perf_counter()
for t in threads: t.join()
elapsed = time.perf_counter() - t0
print(json.dumps({"per_s": clients * per_client / elapsed, "bad": bad[:5], "bad_count": len(bad)}))
'''

LATENCY = r'''
import http.client, json, sys, time
host, port, fn, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
conn = http.client.HTTPConnection(host, port)
inv = f"/2023-03-30/functions/{fn}/invocations"
out = {"async": [], "sync": []}
for i in range(n):
    t0 = time.time()
    conn.request("POST", inv, body=b"", headers={**signed("POST", inv), "x-fc-invocation-type": "Async"})
    r = conn.getresponse(); r.read()
    assert r.status == 202, r.status
    task = r.getheader("x-fc-async-task-id")
    while True:
        get = f"/2023-03-30/functions/{fn}/async-tasks/{task}"
        conn.request("GET", get, headers=signed("GET", get))
        g = conn.getresponse(); record = json.loads(g.read())
        if record["status"] == "Succeeded":
            break
        time.sleep(0.0005)
    out["async"].append(float(record["returnPayload"]) - t0)
    t0 = time.time()
    conn.request("POST", inv, body=b"", headers=signed("POST", inv))
    r = conn.getresponse(); started = float(r.read())
    out["sync"].append(started - t0)
print(json.dumps(out))
'''

SQLITE_FLOOR = r'''
import json, os, sqlite3, sys, time
path = "/var/lib/fc-agent/bench-floor.db"
for suffix in ("", "-wal", "-shm"):
    try: os.remove(path + suffix)
    except FileNotFoundError: pass
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB)")
n = int(sys.argv[1]); t0 = time.perf_counter()
for i in range(n):
    db.execute("BEGIN IMMEDIATE"); db.execute("INSERT INTO t (payload) VALUES (?)", (b'{"n": 1}',))
    db.execute("COMMIT")
elapsed = time.perf_counter() - t0
db.close()
for suffix in ("", "-wal", "-shm"):
    os.remove(path + suffix) if os.path.exists(path + suffix) else None
print(json.dumps({"per_s": n / elapsed}))
'''

HOLD = "import time\n\ndef handler(event, context):\n    time.sleep(300 if event == b'hold' else 0)\n"
STAMP = "import time\n\ndef handler(event, context):\n    return repr(time.time())\n"


def _post(address: str, port: int, path: str, body: bytes, key) -> str:
    """Submits one async event from this machine (the lab bridge reaches the host), signed; returns its task id."""
    import urllib.request

    headers = acs3.sign("POST", path, {}, {"x-fc-invocation-type": "Async"}, body, key.access_key_id,
                        key.access_key_secret)
    request = urllib.request.Request(f"http://{address}:{port}{path}", data=body, method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers["x-fc-async-task-id"]


def run(lab: Lab, host: str, script: str, *args: object) -> dict:
    out = lab.run(host, ["python3", "-c", script, *map(str, args)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def drained(conn, function: str, timeout: float = 600) -> None:
    """Waits until the function's queue is empty and nothing is in hand: the latency rounds measure an idle queue."""
    deadline = time.monotonic() + timeout
    prefix = (f'fc_async_queue_depth{{function="{function}"}}', f'fc_async_in_hand{{function="{function}"}}')
    while time.monotonic() < deadline:
        with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
            lines = [line for line in agent.metrics().splitlines() if line.startswith(prefix)]
        if all(float(line.split()[-1]) == 0 for line in lines):
            return
        time.sleep(1)
    raise SystemExit(f"the queue of {function} did not drain within {timeout:.0f}s")


def events_per_commit(conn) -> float:
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        lines = agent.metrics().splitlines()
    accepted = sum(float(x.split()[-1]) for x in lines if x.startswith("fc_async_accepted_total{"))
    commits = sum(float(x.split()[-1]) for x in lines if x.startswith("fc_async_accept_commits_total"))
    return accepted / max(commits, 1)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="lab-1")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--events", type=int, default=4000, help="accepted events per accept round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating accept/ceiling rounds")
    ap.add_argument("--latency-samples", type=int, default=200)
    args = ap.parse_args()
    lab = Lab()
    conn = _lab_agent.connection(lab, args.host)
    address, port = conn.hosts[0].address, conn.invoke_port
    per_client = max(1, args.events // args.clients)
    accepted, running, ceiling = [], [], []
    with _lab_agent.function(conn, "bench-held", HOLD, max_instances=1, timeout=600) as held, \
            _lab_agent.function(conn, "bench-async", STAMP, max_instances=4) as path, \
            _lab_agent.bench_key(conn) as key:
        signer = _lab_agent.signer_source(key)
        # One event holds bench-held's only slot, so the queue never claims the others: accepting alone.
        hold = _post(address, port, held, b"hold", key)
        for _ in range(args.rounds):
            a = run(lab, args.host, signer + ACCEPT, address, port, held, args.clients, per_client, 202)
            assert a["bad_count"] == 0, a
            accepted.append(a["per_s"])
            r = run(lab, args.host, signer + ACCEPT, address, port, path, args.clients, per_client, 202)
            assert r["bad_count"] == 0, r
            running.append(r["per_s"])
            c = run(lab, args.host, signer + ACCEPT, address, port, "/2023-03-30/functions/bench-none/invocations",
                    args.clients, per_client, 404)
            ceiling.append(c["per_s"])
            print(f"round: accepted {a['per_s']:.0f}/s, while running {r['per_s']:.0f}/s, ceiling {c['per_s']:.0f}/s, "
                  f"load {os.getloadavg()[0]:.1f}", file=sys.stderr)
        sqlite = run(lab, args.host, SQLITE_FLOOR, 2000)["per_s"]
        print("draining the queues", file=sys.stderr)
        batch = events_per_commit(conn)
        with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
            agent.stop_task("bench-held", hold)
            agent.delete_function("bench-held")  # its queued events end Invalid instead of running
        drained(conn, "bench-held")
        drained(conn, "bench-async")
        print("latency", file=sys.stderr)
        lat = run(lab, args.host, signer + LATENCY, address, port, "bench-async", args.latency_samples)
    acc, ceil = statistics.median(accepted), statistics.median(ceiling)
    print(json.dumps({
        "accepted_per_s": round(acc), "http_ceiling_per_s": round(ceil), "ratio_to_ceiling": round(acc / ceil, 2),
        "accepted_while_running_per_s": round(statistics.median(running)),
        "events_per_group_commit": round(batch, 1),
        "sqlite_one_commit_per_event_per_s": round(sqlite), "ratio_to_sqlite_alone": round(acc / sqlite, 2),
        "enqueue_to_start_ms": {"p50": round(pct(lat["async"], 0.5), 2), "p99": round(pct(lat["async"], 0.99), 2)},
        "sync_request_to_start_ms": {"p50": round(pct(lat["sync"], 0.5), 2), "p99": round(pct(lat["sync"], 0.99), 2)},
        "clients": args.clients, "events_per_round": per_client * args.clients, "rounds": args.rounds,
        # Each round's accept and ceiling follow each other, so their ratio is robust against load from elsewhere
        "round_ratios_to_ceiling": [round(a / c, 2) for a, c in zip(accepted, ceiling)],
        "rounds_accepted_per_s": [round(a) for a in accepted], "rounds_ceiling_per_s": [round(c) for c in ceiling],
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }, indent=2))


if __name__ == "__main__":
    main()
