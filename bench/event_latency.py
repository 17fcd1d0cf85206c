"""Timer firing jitter (scheduled instant -> handler start) and OSS event latency (put returns -> handler start),
push and listing paths, on one lab host's running agent and a versitygw on the lab bridge. One run.

The floor, in the same run: a signed synchronous invocation of the same warm function through the invoke API
(request sent -> handler start). Timer ticks and object events go through the async queue (as FC invokes them),
so their figures include the enqueue (a SQLite commit) and a worker's pick-up; the ratios say what that costs.

The handler records time.time() when it starts; host and containers share the machine's clock. The timer runs on
one host (rank 0 of a one-host trigger: no peer claims); tests/test_timer_trigger.py reports the 3-host figure.

Needs a lab with a running agent (`bash scripts/quickstart.sh`) and versitygw (scripts/build-versitygw.sh).

    .venv/bin/python bench/event_latency.py [--ticks 30] [--objects 30] [--host lab-1]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import _lab_agent

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _s3 import S3Server  # noqa: E402

from fc_lab import Lab  # noqa: E402
from fc_provider._remote import fleetops as ops  # noqa: E402

HANDLER = '''
import json, time
def handler(event, context):
    print("STARTED " + json.dumps({"at": time.time(), "event": json.loads(event)}))
    return "ok"
'''


def started(conn: ops.FleetConnection) -> list[dict]:
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        logs = agent.logs(function="bench-events")
    return [json.loads(line[len("STARTED "):]) for e in logs for line in e["log"].splitlines()
            if line.startswith("STARTED ")]


def pct(values: list[float]) -> str:
    values = sorted(values)
    return (f"p50 {statistics.median(values) * 1e3:.1f} ms, p99 {values[max(0, int(len(values) * 0.99) - 1)] * 1e3:.1f}"
            f" ms, n={len(values)}")


def wait(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit("timed out")


def floor(conn: ops.FleetConnection, path: str, count: int) -> list[float]:
    """Signed sync invocations (request sent -> handler start) of the warm function: the floor."""
    import http.client

    from fc_common import acs3

    host = conn.hosts[0]
    lat = []
    with _lab_agent.bench_key(conn) as key:
        client = http.client.HTTPConnection(host.address, conn.invoke_port, timeout=30)
        for i in range(count):
            body = json.dumps({"floor": i}).encode()
            headers = acs3.sign("POST", path, {}, {}, body, key.access_key_id, key.access_key_secret)
            sent = time.time()
            client.request("POST", path, body=body, headers=headers)
            resp = client.getresponse()
            resp.read()
            assert resp.status == 200, resp.status
            hit = wait(lambda: [s for s in started(conn) if s["event"] == {"floor": i}])
            lat.append(hit[0]["at"] - sent)
        client.close()
    return lat


def oss_latency(conn: ops.FleetConnection, s3, keys: list[str]) -> list[float]:
    lat = []
    for key in keys:
        s3.put_object(Bucket="bench", Key=key, Body=b"x")
        returned = time.time()
        hit = wait(lambda: [s for s in started(conn) if "events" in s["event"]
                            and s["event"]["events"][0]["oss"]["object"]["key"] == key])
        lat.append(hit[0]["at"] - returned)
    return lat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=30)
    ap.add_argument("--objects", type=int, default=30)
    ap.add_argument("--host", default="lab-1")
    args = ap.parse_args()
    lab = Lab()
    conn = _lab_agent.connection(lab, args.host)
    host = conn.hosts[0]
    peers = [{"name": host.name, "address": host.address, "port": conn.invoke_port}]
    key = secrets.token_hex(16)
    with _lab_agent.function(conn, "bench-events", HANDLER, min_instances=1) as path, \
            tempfile.TemporaryDirectory() as tmp:
        wait(lambda: _lab_agent.instances(conn, "bench-events"), 60)
        base = floor(conn, path, args.ticks)
        print(f"floor, sync invoke API (request sent -> handler start): {pct(base)}")
        with ops.agent_session(conn, host) as (_ssh, agent):
            agent.put_trigger("bench-events", "tick", {"trigger_type": "timer", "peers": peers, "peer_key": key,
                                                       "trigger_config": {"cronExpression": "@every 1s"}})
        begun = time.time()  # the agent's request log may hold an earlier run's lines: this run's only
        time.sleep(args.ticks + 1.5)
        with ops.agent_session(conn, host) as (_ssh, agent):
            agent.delete_trigger("bench-events", "tick")
        jitter = []
        for s in started(conn):
            if "triggerTime" in s["event"] and s["at"] >= begun:
                t = datetime.strptime(s["event"]["triggerTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
                jitter.append(s["at"] - t.timestamp())
        print(f"timer jitter (scheduled -> handler start, 1 host): {pct(jitter)}; "
              f"p50 ratio to the floor {statistics.median(jitter) / statistics.median(base):.2f}")

        server = S3Server(f"{lab.subnet}.1", Path(tmp))
        server.start(webhook=f"http://{host.address}:{conn.invoke_port}/_fc/s3-events/{key}")
        try:
            s3 = server.client()
            s3.create_bucket(Bucket="bench")
            with ops.agent_session(conn, host) as (_ssh, agent):
                agent.put_trigger("bench-events", "objects", {
                    "trigger_type": "oss", "peers": peers, "peer_key": key,
                    "trigger_config": {"events": ["oss:ObjectCreated:*"]},
                    "source": server.source("bench", reconcile_seconds=1)})
            time.sleep(1.5)  # the first listing primes the index
            pushed = oss_latency(conn, s3, [f'push-{key[:6]}-{i}' for i in range(args.objects)])
            print(f"OSS push (put returns -> handler start): {pct(pushed)}; "
                  f"p50 ratio to the floor {statistics.median(pushed) / statistics.median(base):.2f}")
            server.stop()
            server.start()  # no webhook: only the listing (every 1 s) delivers
            s3 = server.client()
            print(f"OSS listing, reconcile_seconds=1 (put returns -> handler start): "
                  f"{pct(oss_latency(conn, s3, [f'listed-{key[:6]}-{i}' for i in range(args.objects)]))}")
        finally:
            with ops.agent_session(conn, host) as (_ssh, agent):
                agent.delete_trigger("bench-events", "objects")
            server.stop()


if __name__ == "__main__":
    main()
