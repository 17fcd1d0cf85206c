"""Shared fixtures. Everything is real: the lab runs on this machine, nothing is mocked.

Env: FC_LAB_DIR picks the main lab's state folder (default /var/lib/fc-lab; a pytest-xdist worker after the first
gets its own, see _own_lab_per_worker);
FC_LAB_KEEP=1 leaves the main lab running after the session (it is idempotent to bring up again).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The editable install was made while the package folders had no __init__.py, so its finder maps them
# as namespace packages and pytest (which does not put the project root on sys.path) imports an empty
# namespace. Putting the root first makes the real packages win; `pip install -e .` again also fixes it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _own_lab_per_worker() -> None:
    """Under pytest-xdist (``FC_TEST_WORKERS=2 scripts/test.sh``: two processes, a test file at a time each) every
    worker after the first gets a lab, a Pulumi state and a subnet of its own, set here before anything reads them.
    The suite waits (on Pulumi, engines, SSH, ticks) more than it computes: on this 2-core machine about half the
    CPU was idle in a serial run."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    if index == 0:
        return
    # derived from the first worker's settings, so that two runs on separate labs stay apart in their workers too
    env = os.environ
    a, b, c = (env.get("FC_LAB_SUBNET") or "10.213.0").split(".")
    state = Path(f"{env.get('FC_STATE_DIR') or '/var/lib/fc-provider'}-w{index}")
    env.update(FC_LAB_DIR=f"{env.get('FC_LAB_DIR') or '/var/lib/fc-lab'}-w{index}",
               FC_LAB_PREFIX=f"{(env.get('FC_LAB_PREFIX') or 'fclab')[:7]}w{index}",
               FC_LAB_SUBNET=f"{a}.{b}.{(int(c) + 20 * index) % 256}",  # test_lab.py's second lab takes c + 1
               FC_STATE_DIR=str(state), PULUMI_BACKEND_URL=f"file://{state}/pulumi-state",
               PULUMI_HOME=str(state / "pulumi-home"))
    for folder in (state / "pulumi-state", state / "pulumi-home"):
        folder.mkdir(parents=True, exist_ok=True)


_own_lab_per_worker()

from fc_common.runtimes import DEFAULT_RUNTIME_IMAGES  # noqa: E402
from fc_lab import Lab  # noqa: E402

OWN_IMAGE_RUNTIMES = sorted(r for r, ref in DEFAULT_RUNTIME_IMAGES.items()
                            if ref == f"fc-runtime/{r}:latest" and r != "python3.11")


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The main lab with 3 hosts (prefix fclab, subnet 10.213.0; a second xdist worker's: fclabw1, 10.213.20)."""
    main_lab = Lab()
    main_lab.up(3)
    # Every built-in runtime's own image on every host, loaded straight into each engine (python3.11 comes with
    # `up`): otherwise the suite's first Fleet ships the other four, about 590 MB, over SFTP to each host, which
    # took most of a minute and more of test_ci_flow. Shipping stays tested: test_images and test_ci_flow remove
    # an image from a host first.
    main_lab.ensure_runtime_images(OWN_IMAGE_RUNTIMES)
    reset_agents(main_lab)
    yield main_lab
    if os.environ.get("FC_LAB_KEEP") != "1":
        main_lab.down()


@pytest.fixture(scope="session")
def fleet_file(lab: Lab) -> Path:
    """Path of the main lab's fleet.json."""
    return lab.fleet_path


# --- fixtures for fc_provider / runtime_agent tests go below this line -------------------------

@pytest.fixture(scope="session")
def lab_fleet(lab: Lab) -> dict:
    """The main lab's fleet file, parsed."""
    return lab.fleet()


def host_snapshot(lab: Lab) -> dict[str, dict[str, object]]:
    """What a deployment can change on each host: the agent's folders and the host's containers."""
    snap: dict[str, dict[str, object]] = {}
    for host in lab.fleet()["hosts"]:
        listing = lab.run(host["name"], ["sh", "-c", "find /opt/fc-agent /etc/fc-agent /var/lib/fc-agent "
                                         "-maxdepth 3 | sort"], capture_output=True, text=True, check=True)
        client = lab.docker_client(host["name"])
        try:
            containers = sorted(c.name for c in client.containers.list(all=True))
        finally:
            client.close()
        snap[host["name"]] = {"files": listing.stdout.split(), "containers": containers}
    return snap


CLEAN_AGENT_DIRS = ["/etc/fc-agent", "/opt/fc-agent", "/var/lib/fc-agent"]


def reset_agents(lab: Lab) -> None:
    """Every test run starts from hosts without an agent, whatever an earlier run or a quickstart left there."""
    for host in lab.fleet()["hosts"]:
        name = host["name"]
        for pidfile in ("supervisor.pid", "agent.pid"):  # the supervisor first, or it starts the agent again
            pid = lab.run(name, ["cat", f"/var/lib/fc-agent/{pidfile}"], capture_output=True, text=True).stdout.strip()
            if pid.isdigit():
                try:  # lab hosts share the PID namespace: kill only what is really an agent or its supervisor
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    cmdline = b""
                if b"runtime_agent" in cmdline:
                    os.kill(int(pid), 9)
        _stop_front_door(lab, name)
        client = lab.docker_client(name)
        try:
            for container in client.containers.list(all=True, filters={"label": "fc.agent"}):
                container.remove(force=True)
        finally:
            client.close()
        lab.run(name, ["sh", "-c", "rm -rf /etc/fc-agent/* /opt/fc-agent/* /var/lib/fc-agent/*"], check=True)


def _stop_front_door(lab: Lab, host: str) -> None:
    """A CustomDomain's HAProxy left by an interrupted run would keep the host's ports 80/443 (its pidfile is about
    to be wiped with the agent's state)."""
    pid = lab.run(host, ["cat", "/var/lib/fc-agent/frontdoor/haproxy.pid"], capture_output=True,
                  text=True).stdout.strip()
    if pid.isdigit():
        try:
            if b"haproxy" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(int(pid), 15)  # the master stops its workers
        except OSError:
            pass
