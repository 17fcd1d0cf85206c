"""Warm invocation through an alias vs. LATEST and vs. the version it names, one run on one lab host.

Deploys a no-op function, publishes versions 1 and 2 of it and two aliases: `stable` (version 1) and `canary`
(version 1, 50 % to version 2, so every call draws). Each path is measured from inside the lab host's network
namespace on one kept-alive connection, in alternating rounds so noise hits all alike. LATEST and each version run
on their own instances (one pool per version), so `?qualifier=1` against `?qualifier=stable` isolates what the
resolution adds (same instance); LATEST against `stable` is what a user sees.

    bash scripts/quickstart.sh
    .venv/bin/python bench/alias_warm.py [--requests 4000] [--rounds 20] [--host lab-1]
"""

from __future__ import annotations

import argparse
import statistics

import _lab_agent
from warm_invoke import measure, summary

from fc_lab import Lab
from fc_provider._remote import fleetops as ops


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--host", default="lab-1")
    ap.add_argument("--memory", type=int, default=1024)
    args = ap.parse_args()
    lab = Lab()
    conn = _lab_agent.connection(lab, args.host)
    address = next(h for h in lab.fleet()["hosts"] if h["name"] == args.host)["address"]
    noop = "def handler(event, context):\n    return 'ok'\n"
    with _lab_agent.function(conn, "bench-alias", noop, memory_size=args.memory) as path:
        with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
            agent.publish_version("bench-alias", "one")
            agent.publish_version("bench-alias", "two")
            agent.put_alias("bench-alias", "stable", {"version_id": "1"})
            agent.put_alias("bench-alias", "canary", {"version_id": "1", "additional_version_weight": {"2": 0.5}})
        paths = {"LATEST": path, "version 1": f"{path}?qualifier=1", "alias stable": f"{path}?qualifier=stable",
                 "alias canary": f"{path}?qualifier=canary"}
        for p in paths.values():
            measure(lab, args.host, address, 9000, p, 5)  # warm every pool
        samples: dict[str, list[float]] = {k: [] for k in paths}
        for _ in range(args.rounds):
            for name, p in paths.items():
                samples[name] += measure(lab, args.host, address, 9000, p, args.requests // args.rounds)
    results = {k: summary(v) for k, v in samples.items()}
    print(f"{'path':<14}{'median ms':>12}{'p99 ms':>10}{'req/s':>10}")
    for name, s in results.items():
        print(f"{name:<14}{s['median_ms']:>12.3f}{s['p99_ms']:>10.3f}{s['throughput_rps']:>10.0f}")
    base = results["LATEST"]["median_ms"]
    same = results["version 1"]["median_ms"]
    for name in ("alias stable", "alias canary"):
        print(f"{name}: added median vs LATEST {results[name]['median_ms'] - base:+.4f} ms, vs version 1 (same "
              f"instance) {results[name]['median_ms'] - same:+.4f} ms")
    print(f"rounds: {args.rounds}, requests per path: {statistics.mean(len(v) for v in samples.values()):.0f}")


if __name__ == "__main__":
    main()
