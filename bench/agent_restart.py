"""Time for a killed agent to serve again: `kill -9` of the agent, then signed invocations (a new connection each
try) until one is answered 200, timed from inside the lab host. The supervisor (runtime_agent.supervisor)
restarts the agent on a regular lab host, systemd (the Fleet's fc-agent.service) on lab-systemd; the agent
re-adopts its warm instance, so the answer needs no cold start. With several hosts, each host's median is also
given as a ratio to the first host's, measured in the same run.

    bash scripts/quickstart.sh   # a lab with a running agent
    .venv/bin/python bench/agent_restart.py [--kills 5] [--host lab-1 [--host lab-systemd]]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import _lab_agent

from fc_lab import Lab

PROBE = r'''
import http.client, json, os, sys, time
host, path, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
def ok():
    try:
        conn = http.client.HTTPConnection(host, 9000, timeout=10)
        conn.request("POST", path, body=b"{}", headers=signed("POST", path, b"{}"))
        return conn.getresponse().status == 200
    except OSError:
        return False
assert ok()
t = time.perf_counter()
os.kill(pid, 9)
tries = 0
while not ok():
    tries += 1
    time.sleep(0.01)
print(json.dumps({"seconds": time.perf_counter() - t, "failed_tries": tries}))
'''


def kills(lab: Lab, host: str, count: int) -> list[float]:
    conn = _lab_agent.connection(lab, host)
    noop = "def handler(event, context):\n    return 'ok'\n"
    samples = []
    with _lab_agent.function(conn, "bench-restart", noop) as path, _lab_agent.bench_key(conn) as key:
        probe = _lab_agent.signer_source(key) + PROBE
        for _ in range(count):
            pid = lab.run(host, ["cat", "/var/lib/fc-agent/agent.pid"], capture_output=True, text=True,
                          check=True).stdout.strip()
            out = lab.run(host, ["python3", "-c", probe, conn.hosts[0].address, path, pid],
                          capture_output=True, text=True, check=True).stdout
            samples.append(json.loads(out)["seconds"])
            # Past the supervisor's 5 s "stable run" (every kill gets the first restart delay) and far from
            # systemd's start limit (5 starts in 10 s).
            time.sleep(6)
    return samples


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--host", action="append", help="a lab host (repeatable; default lab-1; lab-systemd: systemd)")
    args = ap.parse_args()
    lab = Lab()
    medians: dict[str, float] = {}
    for host in args.host or ["lab-1"]:
        seconds = kills(lab, host, args.kills)
        medians[host] = statistics.median(seconds)
        first = next(iter(medians.values()))
        print(json.dumps({"host": host, "median_s": round(medians[host], 3), "min_s": round(min(seconds), 3),
                          "max_s": round(max(seconds), 3), "kills": args.kills,
                          "samples_s": [round(s, 3) for s in seconds],
                          "ratio_to_first_host": round(medians[host] / first, 2)}), flush=True)


if __name__ == "__main__":
    main()
