"""Warm invocation through an alias vs. LATEST and vs. the version it names, one run on one lab host.

Deploys a no-op function, publishes versions 1 and 2 of it and two aliases: `stable` (version 1) and `canary`
(version 1, 50 % to version 2, so every call draws). Each path is measured from inside the lab host's network
namespace on one kept-alive connection, in alternating rounds so noise hits all alike. LATEST and each version run
on their own instances (one pool per version), so `?qualifier=1` against `?qualifier=stable` isolates what the
resolution adds (same instance); LATEST against `stable` is what a user sees. On a loaded shared machine those
medians move by more than the resolution costs, so the run also times the resolution itself in process (query
parsing plus QualifierResolver.resolve, the only code an alias adds to the warm path) against LATEST's.

    bash scripts/quickstart.sh
    .venv/bin/python bench/alias_warm.py [--requests 4000] [--rounds 20] [--host lab-1]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import _lab_agent
from warm_invoke import measure, summary

from fc_lab import Lab
from fc_provider._remote import fleetops as ops
from runtime_agent.api.invoke import _qualifier
from runtime_agent.state.versions import QualifierResolver, Versions


def resolution_cost(n: int = 200_000) -> dict[str, float]:
    """Median microseconds per call, over 20 batches, of what the invoke path does with a query string."""
    with tempfile.TemporaryDirectory() as tmp:
        versions = Versions(Path(tmp) / "agent.db")
        for _ in range(2):
            versions.publish("f", {"runtime": "python3.11"}, "0" * 64, "")
        versions.put_alias("f", "stable", {"version_id": "1"})
        versions.put_alias("f", "canary", {"version_id": "1", "additional_version_weight": {"2": 0.5}})
        resolver = QualifierResolver(versions, random.Random(1))
        cost: dict[str, float] = {}
        for name, query in (("LATEST", ""), ("version 1", "qualifier=1"), ("alias stable", "qualifier=stable"),
                            ("alias canary", "qualifier=canary")):
            batches = []
            for _ in range(20):
                t = time.perf_counter()
                for _ in range(n // 20):
                    resolver.resolve("f", _qualifier(query))
                batches.append((time.perf_counter() - t) / (n // 20) * 1e6)
            cost[name] = statistics.median(batches)
        versions.close()
    return cost


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
    cost = resolution_cost()
    print("in process, per invocation: " + ", ".join(f"{k} {v:.2f} us" for k, v in cost.items()))
    print(f"added by an alias: {(cost['alias stable'] - cost['LATEST']) / 1000:.4f} ms, by a canary alias: "
          f"{(cost['alias canary'] - cost['LATEST']) / 1000:.4f} ms (bound: 0.05 ms)")


if __name__ == "__main__":
    main()
