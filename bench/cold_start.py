"""Cold start to first response through the agent vs. the floor, in one run on one lab host, for one runtime.

Floor: `docker run` of the runtime's own image with the same memory limit and no CPU limit running its interpreter
on nothing (`python3 -c pass`, `node -e 0`: create, start, interpreter start, exit), through the Engine API.
(Instances start with a 1-vCPU boost and drop to their own limit once they answer.) Agent: a request that finds no instance (each sample first re-deploys the
function with a new environment value, which retires the previous instance), timed from inside the host.

    bash scripts/quickstart.sh
    .venv/bin/python bench/cold_start.py [--samples 10] [--memory 128] [--runtime nodejs20]

(`fc-lab images --runtime R` builds a runtime's image; the benchmark loads it on the host.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import _lab_agent

from fc_lab import Lab
from fc_lab._images import RUNTIME_BUILDS
from fc_provider._remote import fleetops as ops

PROBE = r'''
import http.client, sys, time
conn = http.client.HTTPConnection(sys.argv[1], 9000, timeout=60)
t = time.perf_counter()
conn.request("POST", sys.argv[2], body=b"{}", headers=signed("POST", sys.argv[2], b"{}"))
r = conn.getresponse(); r.read()
print(time.perf_counter() - t if r.status == 200 else -1)
'''


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--memory", type=int, default=128)
    ap.add_argument("--host", default="lab-1")
    ap.add_argument("--runtime", default="python3.11", choices=sorted(RUNTIME_BUILDS))
    args = ap.parse_args()
    lab = Lab()
    lab.ensure_runtime_images([args.runtime], hosts=[args.host])
    conn = _lab_agent.connection(lab, args.host)
    client = lab.docker_client(args.host)
    floor, agent = [], []
    node = args.runtime.startswith("nodejs")
    source = "exports.handler = async () => 'ok';\n" if node else "def handler(event, context):\n    return 'ok'\n"
    nothing = ["node", "-e", "0"] if node else ["python3", "-c", "pass"]
    with _lab_agent.function(conn, "bench-cold", source, filename="index.js" if node else "index.py",
                             runtime=args.runtime, memory_size=args.memory) as path, \
            _lab_agent.bench_key(conn) as key:
        probe = _lab_agent.signer_source(key) + PROBE
        with ops.agent_session(conn, conn.hosts[0]) as (_ssh, api):
            spec = api.get_function("bench-cold")
        for i in range(args.samples):
            t = time.perf_counter()
            client.containers.run(f"{RUNTIME_BUILDS[args.runtime].image}:latest", nothing, remove=True,
                                  user="65534:65534", mem_limit=f"{args.memory}m")
            floor.append(time.perf_counter() - t)
            with ops.agent_session(conn, conn.hosts[0]) as (_ssh, api):
                api.put_function("bench-cold", {
                    **{k: spec[k] for k in ("runtime", "handler", "memory_size", "timeout", "code_checksum")},
                    "environment_variables": {"SAMPLE": str(i)}})
            time.sleep(0.5)  # let the retired instance go
            out = lab.run(args.host, ["python3", "-c", probe, conn.hosts[0].address, path],
                          capture_output=True, text=True, check=True).stdout
            agent.append(float(out))
    client.close()
    f, a = statistics.median(floor), statistics.median(agent)
    print(json.dumps({"runtime": args.runtime, "floor_median_s": round(f, 3), "agent_median_s": round(a, 3),
                      "ratio": round(a / f, 2), "memory_mb": args.memory, "samples": args.samples}))


if __name__ == "__main__":
    main()
