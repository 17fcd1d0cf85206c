"""Cold start to first response: through a stem cell, through today's path, and the `docker run` floor, in one run on
one lab host, for one runtime; then a burst of first requests to N different functions, both ways.

Floor: `docker run` of the runtime's own image with the same memory limit and no CPU limit running its interpreter
on nothing (`python3 -c pass`, `node -e 0`: create, start, interpreter start, exit), through the Engine API.
Today's path: a request that finds no instance and starts a container for it (each sample first re-deploys the
function with a new environment value, which retires the previous instance). Stem cell: the same, for a function
that takes an idle cell. The agent runs with stem cells on (the benchmark re-installs it so, and restores the
config it found afterwards); today's path is measured on a function with disk_size 1024, which cannot take a cell
(its /tmp size differs) and so starts exactly as every function did before stem cells. Requests are signed and
timed from inside the host.

    bash scripts/quickstart.sh
    .venv/bin/python bench/cold_start.py [--samples 20] [--memory 128] [--runtime python3.11] [--burst 20] [--layer]

``--layer``: two more functions per sample, both using one layer (a module the handler imports from /opt): one
that takes a stem cell (the agent binds the merged layer tree into the cell's /opt at the hand-over) and one of
today's path; reported as ``stem_cell_with_layer`` and ``today_with_layer`` next to the same without.

(`fc-lab images --runtime R` builds a runtime's image; the benchmark loads it on the host.)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time

import _lab_agent

from fc_lab import Lab
from fc_lab._images import RUNTIME_BUILDS
from fc_provider._remote import fleetops as ops

PROBE = r'''
import http.client, json, sys, threading, time
host, paths = sys.argv[1], sys.argv[2:]
heads = [(signed("POST", p, b"{}"), signed("POST", p, b"{}")) for p in paths]  # signed before the clock starts
conns = [http.client.HTTPConnection(host, 9000, timeout=60) for _ in paths]
for c in conns: c.connect()
barrier, out = threading.Barrier(len(paths)), [None] * len(paths)
def one(i):
    barrier.wait()
    out[i] = []
    for head in heads[i]:  # the cold start, then the same request warm: what the agent and runtime cost anyway
        t = time.perf_counter()
        conns[i].request("POST", paths[i], body=b"{}", headers=head)
        r = conns[i].getresponse(); r.read()
        out[i].append(time.perf_counter() - t if r.status == 200 and not r.getheader("x-fc-error-type") else -1)
threads = [threading.Thread(target=one, args=(i,)) for i in range(len(paths))]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(out))
'''
KEEP = ("runtime", "handler", "memory_size", "timeout", "code_checksum", "disk_size", "layers")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(values) * 1e3, 1), "p99_ms": round(pct(values, 0.99) * 1e3, 1),
            "max_ms": round(max(values) * 1e3, 1), "n": len(values)}


class Bench:
    def __init__(self, lab: Lab, conn: ops.FleetConnection, host: str, probe: str) -> None:
        self.lab, self.conn, self.host, self.probe = lab, conn, host, probe

    def api(self):
        return ops.agent_session(self.conn, self.conn.hosts[0])

    def cells(self, runtime: str) -> dict:
        with self.api() as (_ssh, agent):
            return agent.wait_healthy()["stem_cells"]

    def wait_cells(self, runtime: str, count: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while (self.cells(runtime)["runtimes"].get(runtime) or {}).get("idle", 0) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"no {count} idle {runtime} stem cells within {timeout:g}s: {self.cells(runtime)}")
            time.sleep(0.2)

    def redeploy(self, name: str, spec: dict, sample: int) -> None:
        with self.api() as (_ssh, agent):
            agent.put_function(name, {**{k: spec[k] for k in KEEP if k in spec},
                                      "environment_variables": {"SAMPLE": str(sample)}})

    def first_requests(self, paths: list[str], warm: list[float] | None = None) -> list[float]:
        out = self.lab.run(self.host, ["python3", "-c", self.probe, self.conn.hosts[0].address, *paths],
                           capture_output=True, text=True, check=True).stdout
        pairs = json.loads(out)
        if any(v < 0 for pair in pairs for v in pair):
            raise SystemExit(f"a request failed: {pairs}")
        if warm is not None:
            warm.extend(pair[1] for pair in pairs)
        return [pair[0] for pair in pairs]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--memory", type=int, default=128)
    ap.add_argument("--host", default="lab-1")
    ap.add_argument("--runtime", default="python3.11", choices=sorted(RUNTIME_BUILDS))
    ap.add_argument("--burst", type=int, default=20, help="first requests to this many functions at once (0: none)")
    ap.add_argument("--layer", action="store_true", help="also measure functions with a layer, both ways")
    args = ap.parse_args()
    lab = Lab()
    lab.ensure_runtime_images([args.runtime], hosts=[args.host])
    conn = _lab_agent.connection(lab, args.host)
    found = json.loads(lab.run(args.host, ["cat", "/etc/fc-agent/config.json"], capture_output=True, text=True,
                               check=True).stdout)
    original = {k: v for k, v in found.items() if k not in ("host_name", "token", "control_port", "invoke_port")}
    pool = max(2, args.burst)
    ops.install_agent(conn, conn.hosts[0], {**original, "stem_cells": {
        "enabled": True, "min_per_runtime": pool, "max_per_runtime": pool, "runtimes": [args.runtime]}})
    try:
        result = run(lab, conn, args, pool)
    finally:
        ops.install_agent(conn, conn.hosts[0], original)
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=1))


def run(lab: Lab, conn: ops.FleetConnection, args: argparse.Namespace, pool: int) -> dict:
    client = lab.docker_client(args.host)
    node = args.runtime.startswith("nodejs")
    source = "exports.handler = async () => 'ok';\n" if node else "def handler(event, context):\n    return 'ok'\n"
    layered = ("const benchlayer = require('benchlayer');\nexports.handler = async () => benchlayer.WHO;\n" if node
               else "import benchlayer\n\ndef handler(event, context):\n    return benchlayer.WHO\n")
    layer_files = ({"nodejs/node_modules/benchlayer/index.js": "exports.WHO = 'layer';\n"} if node
                   else {"python/benchlayer/__init__.py": "WHO = 'layer'\n"})
    nothing = ["node", "-e", "0"] if node else ["python3", "-c", "pass"]
    common = {"filename": "index.js" if node else "index.py", "runtime": args.runtime, "memory_size": args.memory}
    floor, warm = [], []
    series: dict[str, list[float]] = {"bench-cold": [], "bench-cell": []}
    with contextlib.ExitStack() as stack:
        key = stack.enter_context(_lab_agent.bench_key(conn))
        paths = {"bench-cold": stack.enter_context(_lab_agent.function(conn, "bench-cold", source, disk_size=1024,
                                                                       **common)),
                 "bench-cell": stack.enter_context(_lab_agent.function(conn, "bench-cell", source, **common))}
        if args.layer:
            arn = stack.enter_context(_lab_agent.layer(conn, "bench-layer", layer_files, args.runtime))
            for name, extra in (("bench-cold-layer", {"disk_size": 1024}), ("bench-cell-layer", {})):
                paths[name] = stack.enter_context(_lab_agent.function(conn, name, layered, layers=[arn], **extra,
                                                                      **common))
                series[name] = []
        bench = Bench(lab, conn, args.host, _lab_agent.signer_source(key) + PROBE)
        with bench.api() as (_ssh, api):
            specs = {n: api.get_function(n) for n in paths}
        bench.wait_cells(args.runtime, pool)
        for i in range(args.samples):
            t = time.perf_counter()
            client.containers.run(f"{RUNTIME_BUILDS[args.runtime].image}:latest", nothing, remove=True,
                                  user="65534:65534", mem_limit=f"{args.memory}m")
            floor.append(time.perf_counter() - t)
            for name, into in series.items():
                bench.redeploy(name, specs[name], i)
                time.sleep(0.5)  # let the retired instance go
                bench.wait_cells(args.runtime, pool)  # refilled: no cell starts in the background meanwhile
                into.extend(bench.first_requests([paths[name]], warm if name == "bench-cell" else None))
        hand_over = bench.cells(args.runtime)["hand_over_ms"]
        burst = run_burst(bench, conn, args, source, common, pool) if args.burst else {}
    client.close()
    today, cell = series["bench-cold"], series["bench-cell"]
    f, t, c = statistics.median(floor), statistics.median(today), statistics.median(cell)
    result = {"runtime": args.runtime, "memory_mb": args.memory, "samples": args.samples,
              "floor_docker_run": summary(floor), "today_cold_start": summary(today), "stem_cell": summary(cell),
              "warm_request_after_stem_cell": summary(warm), "today_over_floor": round(t / f, 2),
              "floor_over_stem_cell": round(f / c, 1), "today_over_stem_cell": round(t / c, 1),
              "stem_cell_hand_over_median_ms": hand_over, "burst": burst}
    if args.layer:
        cl, tl = statistics.median(series["bench-cell-layer"]), statistics.median(series["bench-cold-layer"])
        result.update({"stem_cell_with_layer": summary(series["bench-cell-layer"]),
                       "today_with_layer": summary(series["bench-cold-layer"]),
                       "stem_cell_with_layer_over_without": round(cl / c, 2),
                       "floor_over_stem_cell_with_layer": round(f / cl, 1),
                       "today_with_layer_over_stem_cell_with_layer": round(tl / cl, 1)})
    return result


def run_burst(bench: Bench, conn: ops.FleetConnection, args: argparse.Namespace, source: str, common: dict,
              pool: int) -> dict:
    """N functions deployed, none started; then N first requests at once: all from cells, then all today's way."""
    out: dict = {"functions": args.burst}
    for label, extra in (("stem_cells", {}), ("today", {"disk_size": 1024})):
        names = [f"bench-burst-{label.replace('_', '')}-{i}" for i in range(args.burst)]
        contexts = [_lab_agent.function(conn, n, source, **extra, **common) for n in names]
        paths = [ctx.__enter__() for ctx in contexts]
        try:
            bench.wait_cells(args.runtime, pool)
            out[label] = summary(bench.first_requests(paths))
        finally:
            for ctx in contexts:
                ctx.__exit__(None, None, None)
    return out


if __name__ == "__main__":
    main()
