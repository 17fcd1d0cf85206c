"""What signing adds to a warm invocation, one run, same path, same agent process: the lab host's agent release with
a switch added to a copy of its code, so that verification is skipped while a flag file exists (as before issue 9)
and done as released otherwise; rounds alternate between signed requests with the flag absent and unsigned requests
with it present. Both variants pay the switch's one stat(); only ``Authenticator.verify`` and ``authorize`` (and the
signed request's seven header lines) differ between them, so the difference of the medians is what signing costs.

Every request is built as bytes before the clock starts and sent on a raw, kept-alive socket from inside the host, so
the client's signing and header handling are not timed; the signed request carries the header lines the official SDK
sends, the unsigned one none of them. The agent's CPU per request is read from /proc for each round too (far less
stretched than latency by other work on the machine).

The switch is added once (the agent restarts under its supervisor and re-adopts the warm instance) and removed when
the run ends (one more restart), so the host is left running its release as installed.

    bash scripts/quickstart.sh
    .venv/bin/python bench/signing_ab.py [--requests 500] [--rounds 60] [--host lab-1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import _lab_agent

from fc_lab import Lab

PROBE = r'''
import json, socket, sys, time
host, port, warm = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
reqs = [bytes.fromhex(x) for x in sys.stdin.read().split()]
s = socket.create_connection((host, port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
        chunk = s.recv(65536)
        if not chunk: raise SystemExit("the agent closed the connection")
        buf += chunk
lat = []
for i, r in enumerate(reqs):
    t = time.perf_counter(); st = one(r); dt = time.perf_counter() - t
    assert st == "200", st
    if i >= warm: lat.append(dt)
print(json.dumps(lat))
'''

# Appended to runtime_agent/api/auth.py in the host's release while the benchmark runs.
FLAG = "/var/lib/fc-agent/bench-signing-unsigned"
SWITCH_PATCH = f'''
# bench/signing_ab.py: verification skipped while {FLAG} exists (removed when the benchmark ends)
import os as _bench_os
_bench_verify, _bench_authorize = Authenticator.verify, Authenticator.authorize
def _bench_switched_verify(self, method, target, headers, body):
    if _bench_os.path.exists({FLAG!r}):
        return None
    return _bench_verify(self, method, target, headers, body)
def _bench_switched_authorize(key, action, resource):
    if key is not None:
        _bench_authorize(key, action, resource)
Authenticator.verify = _bench_switched_verify
Authenticator.authorize = staticmethod(_bench_switched_authorize)
'''

NOOP = "def handler(event, context):\n    return 'ok'\n"


def process_seconds(pid: int) -> float:
    """utime + stime of a process (the lab's hosts share the machine's PID namespace)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class VerificationSwitch:
    """Adds the switch to the host's agent release (api/auth.py) and restarts the agent; ``unsigned(True)`` makes
    it skip verification from the next request on; ``remove()`` restores the release and restarts the agent."""

    def __init__(self, lab: Lab, host: str) -> None:
        self.lab, self.host = lab, host
        release = self._sh("readlink -f /opt/fc-agent/current").strip()
        self.auth_file = f"{release}/runtime_agent/api/auth.py"
        self.backup = f"{self.auth_file}.signing-ab"

    def _sh(self, script: str) -> str:
        return self.lab.run(self.host, ["sh", "-c", script], capture_output=True, text=True, check=True).stdout

    def add(self) -> None:
        self._sh(f"rm -f {FLAG}; [ -f {self.backup} ] || cp -p {self.auth_file} {self.backup}; "
                 f"cat {self.backup} > {self.auth_file}; cat >> {self.auth_file} <<'EOF'\n{SWITCH_PATCH}EOF")
        self._restart()

    def unsigned(self, on: bool) -> None:
        self._sh(f"touch {FLAG}" if on else f"rm -f {FLAG}")

    def remove(self) -> None:
        self._sh(f"rm -f {FLAG}; if [ -f {self.backup} ]; then cat {self.backup} > {self.auth_file} && "
                 f"rm -f {self.backup}; fi")
        self._restart()

    def agent_pid(self) -> int:
        return int(self._sh("cat /var/lib/fc-agent/agent.pid"))

    def _restart(self) -> None:
        """Kills the agent, waits until its successor listens, then until its start (reconcile, stem cells
        re-adopted) is over: its CPU idle for half a second, at most 15 s."""
        self._sh("kill -9 $(cat /var/lib/fc-agent/agent.pid); sleep 0.3; for i in $(seq 300); do "
                 "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 7701), 1)' 2>/dev/null "
                 "&& exit 0; sleep 0.1; done; exit 1")
        pid, deadline = self.agent_pid(), time.monotonic() + 15
        before = process_seconds(pid)
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = process_seconds(pid)
            if now - before <= 0.01:
                return
            before = now


@contextmanager
def verification_switch(lab: Lab, host: str) -> Iterator[VerificationSwitch]:
    switch = VerificationSwitch(lab, host)
    try:
        switch.add()
        yield switch
    finally:
        switch.remove()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=500, help="measured requests per round and variant")
    ap.add_argument("--warm", type=int, default=100, help="requests sent first in every round, not measured")
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--host", default="lab-1")
    args = ap.parse_args()
    lab = Lab()
    conn = _lab_agent.connection(lab, args.host)
    address = conn.hosts[0].address
    with _lab_agent.function(conn, "bench-signing", NOOP, memory_size=1024) as path, \
            _lab_agent.bench_key(conn) as key, verification_switch(lab, args.host) as switch:
        ns: dict = {}
        exec(_lab_agent.signer_source(key), ns)
        total = args.warm + args.requests
        pid = switch.agent_pid()

        def request(headers: dict[str, str]) -> str:
            head = (f"POST {path} HTTP/1.1\r\nHost: {address}:9000\r\ncontent-length: 2\r\n"
                    + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n")
            return (head.encode() + b"{}").hex()

        def run(unsigned: bool, cpu: list[float]) -> list[float]:
            reqs = [request({} if unsigned else ns["signed"]("POST", path, b"{}")) for _ in range(total)]
            switch.unsigned(unsigned)
            before = process_seconds(pid)
            out = lab.run(args.host, ["python3", "-c", PROBE, address, "9000", str(args.warm)],
                          input=" ".join(reqs), capture_output=True, text=True, check=True).stdout
            cpu.append((process_seconds(pid) - before) / total * 1e6)
            return json.loads(out)

        signed_all: list[float] = []
        unsigned_all: list[float] = []
        pairs, signed_cpu, unsigned_cpu = [], [], []
        for i in range(args.rounds):
            # A B, then B A: a drift of the machine's speed during the run falls on both variants alike.
            if i % 2 == 0:
                signed = run(False, signed_cpu)
                unsigned = run(True, unsigned_cpu)
            else:
                unsigned = run(True, unsigned_cpu)
                signed = run(False, signed_cpu)
            signed_all += signed
            unsigned_all += unsigned
            pairs.append((statistics.median(signed) - statistics.median(unsigned)) * 1e6)
    a, b = statistics.median(signed_all) * 1e3, statistics.median(unsigned_all) * 1e3
    load = open("/proc/loadavg").read().split()[:3]
    print(json.dumps({"signed_median_ms": round(a, 4), "unsigned_median_ms": round(b, 4),
                      "added_median_us": round((a - b) * 1e3, 1),
                      "median_of_round_differences_us": round(statistics.median(pairs), 1),
                                            "signed_per_unsigned": round(a / b, 3),
                      "agent_cpu_us_per_request": {"signed": round(statistics.median(signed_cpu), 1),
                                                   "unsigned": round(statistics.median(unsigned_cpu), 1),
                                                   "median_of_round_differences": round(statistics.median(
                                                       [a - b for a, b in zip(signed_cpu, unsigned_cpu)]), 1)},
                      "requests": args.requests, "rounds": args.rounds, "load_average": load}))


if __name__ == "__main__":
    main()
