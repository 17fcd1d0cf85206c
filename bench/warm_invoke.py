"""Warm invocation: through the agent vs. the same runtime container called directly (the floor), one run.

Every agent request is signed (a throwaway access key, signed before its timing starts); the twin needs none.
Needs a lab with a running agent (`bash scripts/quickstart.sh`); deploys its own no-op function. Every path is measured
from inside the lab host's network namespace with one kept-alive connection, in alternating rounds, so noise hits all
alike. Two floors: the twin at its bridge address (the strict one), and the twin through a port published on the
host's loopback (docker-proxy; the floor issue 3 quotes, "1.0 ms median").

    .venv/bin/python bench/warm_invoke.py [--requests 2000] [--rounds 20] [--host lab-1] [--memory 1024]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import _lab_agent

from fc_lab import Lab

PROBE = r'''
import http.client, json, sys, time
host, port, path, n, sign_them = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
conn = http.client.HTTPConnection(host, port)
conn.connect()
import socket; conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
# Signed before the clock starts: what is timed is the agent's verification, not the client's signing.
heads = [signed("POST", path, b"{}") if sign_them else {} for _ in range(n)]
lat = []
for i in range(n):
    t = time.perf_counter()
    conn.request("POST", path, body=b"{}", headers=heads[i])
    r = conn.getresponse(); r.read()
    lat.append(time.perf_counter() - t)
    assert r.status == 200, r.status
print(json.dumps(lat))
'''


def measure(lab: Lab, host: str, address: str, port: int, path: str, n: int, signer: str = "") -> list[float]:
    """Latencies of ``n`` requests on one kept-alive connection; signed when ``signer`` (signer_source) is given."""
    out = lab.run(host, ["python3", "-c", signer + PROBE, address, str(port), path, str(n), "1" if signer else "0"],
                  capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def summary(lat: list[float]) -> dict[str, float]:
    lat = sorted(lat)
    return {"median_ms": statistics.median(lat) * 1e3, "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1e3,
            "throughput_rps": len(lat) / sum(lat)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--host", default="lab-1")
    ap.add_argument("--rounds", type=int, default=20,
                    help="alternating agent/direct rounds; each pair also gives a throughput ratio (the median of "
                         "those is robust against a burst of load from elsewhere on a shared machine)")
    ap.add_argument("--memory", type=int, default=1024,
                    help="memory_size of the benchmark's no-op function (cpu defaults to memory/2048)")
    args = ap.parse_args()
    lab = Lab()
    conn = _lab_agent.connection(lab, args.host)
    noop = "def handler(event, context):\n    return 'ok'\n"
    with _lab_agent.function(conn, "bench-warm", noop, memory_size=args.memory,
                             **_lab_agent.OWN_CONTAINER) as _, _lab_agent.bench_key(conn) as key:
        args.function = "bench-warm"
        args.signer = _lab_agent.signer_source(key)
        run(lab, args)


def run(lab: Lab, args: argparse.Namespace) -> None:
    fleet = {h["name"]: h for h in lab.fleet()["hosts"]}
    address = fleet[args.host]["address"]
    agent_path = f"/2023-03-30/functions/{args.function}/invocations"
    measure(lab, args.host, address, 9000, agent_path, 5, args.signer)  # makes sure an instance is warm

    client = lab.docker_client(args.host)
    (instance,) = [c for c in client.containers.list() if c.labels.get("fc.function") == args.function][:1]
    # (labelled: started in a container of its own, OWN_CONTAINER)
    # The floor: the same container's twin. Same CPU limits: a 128 MB function gets 1/16 vCPU, and CFS
    # throttling is part of its latency.
    twin, twin_ip = _lab_agent.start_twin(client, instance)
    try:
        for _ in range(100):
            try:
                measure(lab, args.host, twin_ip, 9000, "/invoke", 1)
                break
            except Exception:  # noqa: BLE001 - still starting
                time.sleep(0.05)
        published_port = _lab_agent.published_port(twin)
        agent, direct, published, paired = [], [], [], []
        for _ in range(args.rounds):
            a_round = measure(lab, args.host, address, 9000, agent_path, args.requests // args.rounds, args.signer)
            d_round = measure(lab, args.host, twin_ip, 9000, "/invoke", args.requests // args.rounds)
            p_round = measure(lab, args.host, "127.0.0.1", published_port, "/invoke", args.requests // args.rounds)
            agent += a_round
            direct += d_round
            published += p_round
            paired.append(sum(d_round) / sum(a_round))
    finally:
        twin.remove(force=True)
        client.close()
    a, d, pub = summary(agent), summary(direct), summary(published)
    print(f"{'path':<11}{'median ms':>12}{'p99 ms':>10}{'req/s':>10}")
    for name, s in (("agent", a), ("direct", d), ("published", pub)):
        print(f"{name:<11}{s['median_ms']:>12.3f}{s['p99_ms']:>10.3f}{s['throughput_rps']:>10.0f}")
    print(f"added median latency: {a['median_ms'] - d['median_ms']:.3f} ms; "
          f"throughput ratio agent/direct: {a['throughput_rps'] / d['throughput_rps']:.2f} over the whole run, "
          f"{statistics.median(paired):.2f} median of {args.rounds} back-to-back round pairs")
    print(f"against the issue's floor (the twin through its port published on loopback, i.e. docker-proxy): "
          f"throughput ratio {a['throughput_rps'] / pub['throughput_rps']:.2f}")


if __name__ == "__main__":
    main()
