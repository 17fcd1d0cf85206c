"""The agent's own CPU per signed warm invocation, against the instance's own CPU per invocation (the floor: the
runtime's HTTP server parses and answers the same request), one run. CPU time, not latency: other work on a shared
machine stretches latencies far more than it stretches the CPU a request costs, so this tells code changes apart
when warm_invoke's ratios cannot.

The agent: utime + stime of its process (/proc/PID/stat). The instance: its container's cpuacct.usage (cgroup v1)
or cpu.stat usage_usec (v2). Needs a lab with a running agent (`bash scripts/quickstart.sh`).

    .venv/bin/python bench/agent_cpu.py [--requests 3000] [--rounds 5] [--host lab-1]
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import _lab_agent
import warm_invoke

from fc_lab import Lab


def process_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def container_seconds(pid: int) -> float:
    """CPU seconds of the cgroup that holds ``pid`` (a container's main process)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            for root in ("/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/cpu,cpuacct"):
                usage = Path(root + path) / "cpuacct.usage"
                if usage.exists():
                    return int(usage.read_text()) / 1e9
        if controllers == "":  # cgroup v2
            for entry in (Path("/sys/fs/cgroup" + path) / "cpu.stat").read_text().splitlines():
                if entry.startswith("usage_usec"):
                    return int(entry.split()[1]) / 1e6
    raise SystemExit(f"no CPU accounting found for pid {pid}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--host", default="lab-1")
    args = ap.parse_args()
    lab = Lab()
    conn = _lab_agent.connection(lab, args.host)
    noop = "def handler(event, context):\n    return 'ok'\n"
    address = conn.hosts[0].address
    with _lab_agent.function(conn, "bench-cpu", noop, memory_size=1024) as path, \
            _lab_agent.bench_key(conn) as key:
        signer = _lab_agent.signer_source(key)
        warm_invoke.measure(lab, args.host, address, 9000, path, 50, signer)  # an instance, warm
        agent_pid = int(lab.run(args.host, ["cat", "/var/lib/fc-agent/agent.pid"], capture_output=True,
                                text=True, check=True).stdout)
        (instance,) = [i for i in _lab_agent.instances(conn, "bench-cpu") if i["container_id"]][:1]
        client = lab.docker_client(args.host)
        try:
            instance_pid = client.containers.get(instance["container_id"]).attrs["State"]["Pid"]
        finally:
            client.close()
        agent_ms, instance_ms = [], []
        for _ in range(args.rounds):
            a0, i0 = process_seconds(agent_pid), container_seconds(instance_pid)
            warm_invoke.measure(lab, args.host, address, 9000, path, args.requests, signer)
            a1, i1 = process_seconds(agent_pid), container_seconds(instance_pid)
            agent_ms.append((a1 - a0) / args.requests * 1e3)
            instance_ms.append((i1 - i0) / args.requests * 1e3)
    a, i = statistics.median(agent_ms), statistics.median(instance_ms)
    print(f"CPU per signed warm invocation, median of {args.rounds} rounds of {args.requests}: agent {a:.4f} ms, "
          f"instance {i:.4f} ms; agent / instance {a / i:.2f} (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
