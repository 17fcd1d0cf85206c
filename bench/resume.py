"""Resume from light hibernation to first response, through the agent, vs. the freezer floor, in one run.

Floor: a twin container (same image, code, runtime and limits) frozen by writing the cgroup freezer directly; a
sample is "write THAWED, then one request". Agent: a function with hibernation on; a sample is one request to its
frozen instance (the agent thaws it). Both are timed from inside the lab host with a kept-alive connection.

    bash scripts/quickstart.sh   # a lab with a running agent
    .venv/bin/python bench/resume.py [--samples 60] [--host lab-1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import _lab_agent

from fc_lab import Lab

PROBE = r'''
import http.client, json, socket, sys, time
mode, host, port, path, freezer, n, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]), float(sys.argv[7])
def state():
    return open(freezer).read().strip()
conn = http.client.HTTPConnection(host, port); conn.connect()
conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
lat, skipped = [], 0
heads = [signed("POST", path, b"{}") for _ in range(n)] if mode == "agent" else []  # signed before the clock
for _ in range(n):
    if mode == "floor":
        open(freezer, "w").write("FROZEN")
        while state() != "FROZEN": time.sleep(0.001)
        time.sleep(pause)
    else:
        deadline = time.time() + 5
        while state() != "FROZEN" and time.time() < deadline: time.sleep(0.01)
        if state() != "FROZEN":
            skipped += 1; continue
    t = time.perf_counter()
    if mode == "floor":
        open(freezer, "w").write("THAWED")
    conn.request("POST", path, body=b"{}", headers=heads.pop() if mode == "agent" else {})
    r = conn.getresponse(); r.read()
    lat.append(time.perf_counter() - t)
    assert r.status == 200
print(json.dumps({"lat": lat, "skipped": skipped}))
'''


def freezer_path(pid: int) -> str:
    line = next(x for x in open(f"/proc/{pid}/cgroup").read().splitlines() if ":freezer:" in x)
    return f"/sys/fs/cgroup/freezer/{line.split(':', 2)[2].lstrip('/')}/freezer.state"


def stats(lat: list[float]) -> str:
    lat = sorted(lat)
    return (f"median {statistics.median(lat) * 1e3:.2f} ms, p99 {lat[max(0, int(len(lat) * 0.99) - 1)] * 1e3:.2f} ms "
            f"(n={len(lat)})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=60)
    ap.add_argument("--host", default="lab-1")
    args = ap.parse_args()
    lab = Lab()
    conn = _lab_agent.connection(lab, args.host)
    address = conn.hosts[0].address
    source = "def handler(event, context):\n    return 'ok'\n"
    with _lab_agent.function(conn, "bench-resume", source, min_instances=1, hibernation=True,
                             hibernation_grace_seconds=0.2, **_lab_agent.OWN_CONTAINER) as path, \
            _lab_agent.bench_key(conn) as key:
        probe = _lab_agent.signer_source(key) + PROBE
        for _ in range(300):
            ready = [i for i in _lab_agent.instances(conn, "bench-resume") if i["container_id"]]
            if ready:
                break
            time.sleep(0.1)
        client = lab.docker_client(args.host)
        inst = client.containers.get(ready[0]["container_id"])
        twin, twin_ip = _lab_agent.start_twin(client, inst)
        try:
            time.sleep(1.0)
            floor, agent = [], []
            for _ in range(2):  # alternate halves so noise hits both alike
                out = lab.run(args.host, ["python3", "-c", probe, "floor", twin_ip, "9000", "/invoke",
                                          freezer_path(twin.attrs["State"]["Pid"]), str(args.samples // 2), "0.3"],
                              capture_output=True, text=True, check=True).stdout
                floor += json.loads(out)["lat"]
                out = lab.run(args.host, ["python3", "-c", probe, "agent", address, "9000", path,
                                          freezer_path(inst.attrs["State"]["Pid"]), str(args.samples // 2), "0"],
                              capture_output=True, text=True, check=True).stdout
                agent += json.loads(out)["lat"]
        finally:
            twin.remove(force=True)
            client.close()
    print(f"floor  (write THAWED + request): {stats(floor)}")
    print(f"agent  (request to a frozen instance): {stats(agent)}")
    print(f"ratio of medians agent/floor: {statistics.median(agent) / statistics.median(floor):.2f}")


if __name__ == "__main__":
    main()
