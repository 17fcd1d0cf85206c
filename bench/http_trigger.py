"""HTTP trigger warm path vs the invoke API on the same function, one run.

Both paths end at the same warm instance of one web function (custom runtime, a keep-alive server answering every
request with "ok"): the invoke API as ``POST /2023-03-30/functions/{name}/invocations`` (the agent posts /invoke to
the instance), the trigger as ``POST /hello`` with the trigger's host name (the agent passes the request through).
Also an event function (built-in runtime) both ways: the trigger adds FC's HTTP event and reads the answer back.
Measured from inside the lab host's network namespace, one kept-alive connection each, in alternating rounds.

The invoke API verifies every request's signature (issue 9; requests are signed before the clock starts) and the
trigger is anonymous, so the web function's pair also shows, in one run, what verification adds to the warm path.

Needs a lab with a running agent (`bash scripts/quickstart.sh`).

    .venv/bin/python bench/http_trigger.py [--requests 4000] [--rounds 20] [--host lab-1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import _lab_agent

from fc_common.triggers import url_label
from fc_lab import Lab
from fc_provider._model.archive import pack_code
from fc_provider._remote import fleetops as ops
from fc_provider._remote.commands import code_archive

PROBE = r'''
import http.client, json, socket, sys, time
host, port, path, host_header, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
sign_them = sys.argv[6] == "1"
conn = http.client.HTTPConnection(host, port)
conn.connect()
conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
# Signed before the clock starts: what is timed is the agent's verification, not the client's signing.
heads = [{"Host": host_header, **(signed("POST", path, b"{}") if sign_them else {})} for _ in range(n)]
lat = []
for i in range(n):
    t = time.perf_counter()
    conn.request("POST", path, body=b"{}", headers=heads[i])
    r = conn.getresponse(); r.read()
    lat.append(time.perf_counter() - t)
    assert r.status == 200, (r.status, path)
print(json.dumps(lat))
'''

WEB = r'''
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    do_GET = do_POST  # the agent's readiness probe is a GET /

ThreadingHTTPServer(("0.0.0.0", int(os.environ["FC_SERVER_PORT"])), H).serve_forever()
'''
EVENT = "def handler(event, context):\n    return {'statusCode': 200, 'body': 'ok'}\n"


def measure(lab: Lab, host: str, address: str, path: str, host_header: str, n: int, signer: str = "") -> list[float]:
    """Latencies of ``n`` requests on one kept-alive connection; signed when ``signer`` (signer_source) is given."""
    out = lab.run(host, ["python3", "-c", signer + PROBE, address, "9000", path, host_header, str(n),
                         "1" if signer else "0"],
                  capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def deploy(conn: ops.FleetConnection, name: str, source: str, **spec: object) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "index.py").write_text(source)
        package = pack_code(tmp)
    with ops.agent_session(conn, conn.hosts[0]) as (ssh, agent):
        ssh.put_bytes(package.data, code_archive(package.checksum))
        agent.put_function(name, {"handler": "index.handler", "memory_size": 1024, "timeout": 30, **spec,
                                  "code_checksum": package.checksum})
        agent.put_trigger(name, "bench", {"trigger_type": "http",
                                          "trigger_config": {"authType": "anonymous", "methods": ["POST"]}})
    return url_label(name, "bench")


def compare(lab: Lab, args: argparse.Namespace, address: str, name: str, label: str) -> dict[str, float]:
    invoke_path = f"/2023-03-30/functions/{name}/invocations"
    direct_host = f"{address}:9000"
    trigger_host = f"{label}.fc.local"
    measure(lab, args.host, address, invoke_path, direct_host, 5, args.signer)  # warm
    invoke, trigger, paired = [], [], []
    per_round = args.requests // args.rounds
    for _ in range(args.rounds):
        i_round = measure(lab, args.host, address, invoke_path, direct_host, per_round, args.signer)
        t_round = measure(lab, args.host, address, "/hello", trigger_host, per_round)
        invoke += i_round
        trigger += t_round
        paired.append(statistics.median(t_round) - statistics.median(i_round))
    return {"invoke_median_ms": statistics.median(invoke) * 1e3, "trigger_median_ms": statistics.median(trigger) * 1e3,
            "invoke_p99_ms": sorted(invoke)[int(len(invoke) * 0.99) - 1] * 1e3,
            "trigger_p99_ms": sorted(trigger)[int(len(trigger) * 0.99) - 1] * 1e3,
            "added_median_ms": (statistics.median(trigger) - statistics.median(invoke)) * 1e3,
            "added_median_of_round_pairs_ms": statistics.median(paired) * 1e3,
            "ratio_trigger_over_invoke": statistics.median(trigger) / statistics.median(invoke)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--host", default="lab-1")
    args = ap.parse_args()
    lab = Lab()
    conn = _lab_agent.connection(lab, args.host)
    address = {h["name"]: h for h in lab.fleet()["hosts"]}[args.host]["address"]
    functions = {"bench-http-web": (WEB, {"runtime": "custom.debian12", "instance_concurrency": 4,
                                          "custom_runtime_config": {"command": ["python3", "index.py"]}}),
                 "bench-http-event": (EVENT, {"runtime": "python3.11"})}
    try:
        with _lab_agent.bench_key(conn) as key:
            args.signer = _lab_agent.signer_source(key)
            for name, (source, spec) in functions.items():
                label = deploy(conn, name, source, **spec)
                result = compare(lab, args, address, name, label)
                print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in result.items()))
    finally:
        with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
            for name in functions:
                agent.delete_function(name)


if __name__ == "__main__":
    main()
