"""What signing costs the agent on the warm path, one run: the same web function (a pass-through server) through the
signed invoke API and through an anonymous HTTP trigger, every request built as bytes before the clock starts and
sent on a raw socket, so the client's signing and header handling (which grow with the signed headers) are not timed.
Before signing, the invoke API was 0.025 ms slower than the trigger on this function (bench/http_trigger.py).

    .venv/bin/python bench/signing_ab.py        (needs the quickstart lab: bash scripts/quickstart.sh)
"""
import json
import statistics

import _lab_agent
import http_trigger as ht

from fc_lab import Lab

PROBE = r'''
import socket, sys, time, json
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
reqs = [bytes.fromhex(x) for x in sys.stdin.read().split()]
s = socket.create_connection((host, port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
buf = b""
def one(data):
    global buf
    s.sendall(data)
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode("latin-1")
            length = next(int(h.split(":", 1)[1]) for h in head.split("\r\n") if h.lower().startswith("content-length"))
            if len(buf) >= end + 4 + length:
                status = head.split(" ")[1]; buf = buf[end + 4 + length:]; return status
        buf += s.recv(65536)
lat = []
for r in reqs:
    t = time.perf_counter(); st = one(r); lat.append(time.perf_counter() - t)
    assert st == "200", st
print(json.dumps(lat))
'''

def main():
    lab = Lab(); conn = _lab_agent.connection(lab, "lab-1")
    address = {h["name"]: h for h in lab.fleet()["hosts"]}["lab-1"]["address"]
    name = "raw-web"
    label = ht.deploy(conn, name, ht.WEB, runtime="custom.debian12", instance_concurrency=4,
                      custom_runtime_config={"command": ["python3", "index.py"]})
    try:
        with _lab_agent.bench_key(conn) as key:
            ns = {}
            exec(_lab_agent.signer_source(key), ns)
            path = f"/2023-03-30/functions/{name}/invocations"
            def invoke_reqs(n):
                out = []
                for _ in range(n):
                    h = ns["signed"]("POST", path, b"{}")
                    head = (f"POST {path} HTTP/1.1\r\nHost: {address}:9000\r\ncontent-length: 2\r\n"
                            + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n")
                    out.append((head.encode() + b"{}").hex())
                return out
            def trig_reqs(n):
                head = f"POST /hello HTTP/1.1\r\nHost: {label}.fc.local\r\ncontent-length: 2\r\n\r\n"
                return [(head.encode() + b"{}").hex()] * n
            def run(reqs):
                out = lab.run("lab-1", ["python3", "-c", PROBE, address, "9000", str(len(reqs))], input=" ".join(reqs),
                              capture_output=True, text=True, check=True).stdout
                return json.loads(out)
            run(invoke_reqs(5)); run(trig_reqs(5))
            inv, trg = [], []
            for _ in range(20):
                inv += run(invoke_reqs(150)); trg += run(trig_reqs(150))
            a, b = statistics.median(inv) * 1e3, statistics.median(trg) * 1e3
            print(f"invoke API (signed) median {a:.3f} ms; HTTP trigger (anonymous) median {b:.3f} ms; "
                  f"the invoke API's added median {a - b:.3f} ms")
    finally:
        with _lab_agent.ops.agent_session(conn, conn.hosts[0]) as (_s, agent):
            agent.delete_function(name)

if __name__ == "__main__":
    main()
