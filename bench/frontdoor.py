"""The front door's cost: warm invocations through HAProxy on the edge host vs straight to a host's agent (the floor,
measured in the same run), and requests per second through it with the function on 3 hosts.

Needs a 3-host lab (`fc-lab up --hosts 3`); installs the agent where none runs, deploys its own no-op function on
every host and serves a domain on lab-1 with the provider's own edge-host operations; removes both at the end.
The client runs in lab-3's network namespace; the overhead is measured with one function host (lab-2) behind the
front door, so both paths end at the same agent:

    direct:      lab-3 -> lab-2:9000
    front door:  lab-3 -> lab-1:80 (HAProxy) -> lab-2:9000

Rounds alternate the two paths, so load from elsewhere on a shared machine hits both alike.

    .venv/bin/python bench/frontdoor.py [--requests 1000] [--rounds 10] [--clients 8]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from fc_lab import Lab
from fc_lab import _host as lab_host
from fc_provider._model import frontdoor as fd
from fc_provider._model.archive import pack_code
from fc_provider._model.custom_domain import CustomDomainModel
from fc_provider._remote import fleetops as ops
from fc_provider._remote import frontdoor as door
from fc_provider._remote import pool as _pool
from fc_provider._remote.commands import code_archive

DOMAIN, FUNCTION = "bench.example.test", "fdbench"
REPO = Path(__file__).resolve().parent.parent
KEY_ID, KEY_SECRET = "LTAIbench" + secrets.token_hex(6), secrets.token_urlsafe(24)  # this run's, on every host
PATH = f"/2023-03-30/functions/{FUNCTION}/invocations"

# One client process: `n` POSTs on one kept-alive connection, from wall-clock time `at` on (so that concurrent
# clients start together, whatever their interpreter's start-up took); prints its latencies and when it ended.
# Each request is signed (the invoke API verifies every signature, issue 9) with fc_common.acs3 from the repo, on
# both paths alike.
PROBE = r'''
import http.client, json, socket, sys, time
address, port, host, path, n, at = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6])
sys.path.insert(0, sys.argv[7])
from fc_common import acs3
key_id, secret = sys.argv[8], sys.argv[9]
time.sleep(max(0.0, at - time.time()))
conn = http.client.HTTPConnection(address, port)
conn.connect()
conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
lat = []
for _ in range(n):
    t = time.perf_counter()
    headers = acs3.sign("POST", path, {}, {"Host": host}, b"{}", key_id, secret)
    conn.request("POST", path, body=b"{}", headers=headers)
    r = conn.getresponse(); r.read()
    lat.append(time.perf_counter() - t)
    assert r.status == 200, (r.status, r.read())
print(json.dumps({"lat": lat, "end": time.time()}))
'''


def agents(lab: Lab) -> dict[str, ops.FleetConnection]:
    fleet = lab.fleet()
    key = Path(fleet["ssh_private_key_path"]).read_text()
    conns = {}
    for host in fleet["hosts"]:
        conn = ops.FleetConnection.from_dict({"hosts": [{**host, "user": fleet["ssh_user"]}], "private_key": key,
                                              "token": secrets.token_urlsafe(16)})
        info = ops.install_agent(conn, conn.hosts[0], {"idle_timeout_seconds": 300})  # keeps a running agent's token
        conns[host["name"]] = ops.FleetConnection.from_dict({**_as_dict(conn), "token": info["token"]})
        with ops.agent_session(conns[host["name"]], conn.hosts[0]) as (_ssh, agent):
            agent.put_access_key(KEY_ID, KEY_SECRET, {"actions": ["fc:InvokeFunction"], "resources": ["*"]})
    return conns


def _as_dict(conn: ops.FleetConnection) -> dict:
    return {"hosts": [h.__dict__ for h in conn.hosts], "private_key": conn.private_key, "token": conn.token}


def deploy(conns: dict[str, ops.FleetConnection], memory: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "index.py").write_text("def handler(event, context):\n    return event\n")
        package = pack_code(tmp)
    for conn in conns.values():
        with ops.agent_session(conn, conn.hosts[0]) as (ssh, agent):
            ssh.put_bytes(package.data, code_archive(package.checksum))
            agent.put_function(FUNCTION, {"runtime": "python3.11", "handler": "index.handler", "memory_size": memory,
                                          "timeout": 30, "code_checksum": package.checksum})


def serve(lab: Lab, hosts: list[str]) -> str:
    fleet = lab.fleet()
    by_name = {h["name"]: h for h in fleet["hosts"]}
    edge = by_name["lab-1"]
    spec = ops.HostSpec(edge["name"], edge["address"], 22, fleet["ssh_user"], edge["host_public_key"])
    model = CustomDomainModel.model_validate({"domain_name": DOMAIN, "invoke_api": True, "functions": [
        {"function_name": FUNCTION, "hosts": hosts, "timeout": 30}]})
    with _pool.session(spec, Path(fleet["ssh_private_key_path"]).read_text()) as ssh:
        return door.apply(ssh, DOMAIN, fd.fragment(model, by_name, 9000) if hosts else None)


def probes(lab: Lab, target: tuple[str, int], clients: int, n: int) -> tuple[list[float], float]:
    """``clients`` processes in lab-3, each sending ``n`` requests; all latencies, and the seconds from the common
    start to the last client's end."""
    prefix = lab_host.nsenter(lab._spec_by_name("lab-3"))
    at = time.time() + 3.0 + 0.5 * clients  # past every client's start-up on a loaded machine
    argv = [*prefix, "python3", "-c", PROBE, target[0], str(target[1]), DOMAIN, PATH, str(n), str(at), str(REPO),
            KEY_ID, KEY_SECRET]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(clients)]
    outs = [json.loads(p.communicate()[0] or "null") for p in procs]
    if any(p.returncode for p in procs) or time.time() < at:
        raise SystemExit("a probe failed")
    return [x for out in outs for x in out["lat"]], max(out["end"] for out in outs) - at


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1000, help="per round and path, sequential")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=8, help="concurrent client processes for the rps part")
    ap.add_argument("--memory", type=int, default=1024)
    args = ap.parse_args()
    lab = Lab()
    addr = {h["name"]: h["address"] for h in lab.fleet()["hosts"]}
    conns = agents(lab)
    deploy(conns, args.memory)
    direct, front = (addr["lab-2"], 9000), (addr["lab-1"], 80)
    try:
        serve(lab, ["lab-2"])
        probes(lab, direct, 1, 50)  # warm: one instance on lab-2, HAProxy's connections
        probes(lab, front, 1, 50)
        lat = {"direct": [], "front": []}
        ratios = []
        for _ in range(args.rounds):
            d, _w = probes(lab, direct, 1, args.requests)
            f, _w = probes(lab, front, 1, args.requests)
            lat["direct"] += d
            lat["front"] += f
            ratios.append(sum(d) / sum(f))
        med = {k: statistics.median(v) * 1e3 for k, v in lat.items()}
        print(f"sequential, {args.rounds} x {args.requests} requests per path:")
        print(f"  direct to lab-2: median {med['direct']:.3f} ms   front door: median {med['front']:.3f} ms   "
              f"added median {med['front'] - med['direct']:.3f} ms")
        print(f"  throughput ratio front/direct: {sum(lat['direct']) / sum(lat['front']):.2f} "
              f"(median of round pairs {statistics.median(ratios):.2f})")
        per_client = max(args.requests // 4, 50)
        total = args.clients * per_client
        rps: dict[str, list[float]] = {"direct": [], "front1": [], "front3": []}
        probes(lab, direct, args.clients, 20)  # an instance per client on lab-2 before anything is measured
        for _ in range(max(args.rounds // 3, 1)):
            serve(lab, ["lab-2"])
            rps["direct"].append(total / probes(lab, direct, args.clients, per_client)[1])
            rps["front1"].append(total / probes(lab, front, args.clients, per_client)[1])
            serve(lab, ["lab-1", "lab-2", "lab-3"])
            probes(lab, front, args.clients, 60)  # and on the other two hosts
            rps["front3"].append(total / probes(lab, front, args.clients, per_client)[1])
        med = {k: statistics.median(v) for k, v in rps.items()}
        print(f"concurrent, {args.clients} clients x {per_client} requests, median of {len(rps['direct'])} rounds:")
        print(f"  direct to one host {med['direct']:.0f} rps   front door, 1 host {med['front1']:.0f} rps "
              f"(ratio {med['front1'] / med['direct']:.2f})   front door, 3 hosts {med['front3']:.0f} rps "
              f"(ratio to direct {med['front3'] / med['direct']:.2f})")
    finally:
        serve(lab, [])
        for conn in conns.values():
            with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
                agent.delete_function(FUNCTION)
                agent.delete_access_key(KEY_ID)


if __name__ == "__main__":
    main()
