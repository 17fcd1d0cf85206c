"""Fleet operations with the real Pulumi CLI on the lab fleet: two stacks share one fleet (the deploy lock, one
agent per host), an unreachable host, SSH connection reuse, and the health-gated agent roll.

The tests of this module run in order and share two stacks, alpha and beta, on the same three hosts."""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest
from _agent import grant_lab
from _pulumi import Stack
from conftest import CLEAN_AGENT_DIRS, host_snapshot, reset_agents
from test_deploy import invoke, write_code

from fc_lab import Lab
from fc_provider._errors import FleetOperationError
from fc_provider._model.validation import FleetModel, check
from fc_provider._remote import fleetops as ops
from fc_provider._remote import lock as _lock
from fc_provider.fleet import FleetProvider, _settings

PROGRAM = Path(__file__).resolve().parent / "fleet_program"
HANDLER = "def handler(event, context):\n    return '{tag}:' + event.decode()\n"
SSH_BLOCK = ["INPUT", "-p", "tcp", "--dport", "22", "-j", "REJECT", "--reject-with", "tcp-reset"]


def make_stack(root: Path, name: str, fleet_file: Path, *, count: int, lock_timeout: float = 120) -> Stack:
    write_code(root / name / "code", HANDLER.format(tag=f"{name}-v1"))
    stack = Stack(root / name, name, program=PROGRAM)
    stack.config(fleetFile=str(fleet_file), prefix=name, codeDir=str(root / name / "code"), count=str(count),
                 lockTimeout=str(lock_timeout))
    return stack


def up(stack: Stack, **config: str) -> subprocess.CompletedProcess[str]:
    """`pulumi up`; ``config`` is saved to the stack's config first, in the same CLI call."""
    settings = [arg for key, value in config.items() for arg in ("--config", f"{key}={value}")]
    return stack.run("up", "--yes", "--skip-preview", *settings, check=False)


def destroy(stack: Stack) -> str:
    out = stack.destroy()
    stack.destroyed = True  # type: ignore[attr-defined]  # the fixture has nothing left to destroy
    return out


def concurrently(*runs: tuple[Stack, dict[str, str]]) -> list[subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(len(runs)) as pool:
        return list(pool.map(lambda run: up(run[0], **run[1]), runs))


def url(host: dict, function: str) -> str:
    return f"http://{host['address']}:9000/2023-03-30/functions/{function}/invocations"


def host_file(lab: Lab, host: str, path: str) -> str:
    return lab.run(host, ["cat", path], capture_output=True, text=True).stdout


def agent_pids(lab: Lab, fleet: dict) -> dict[str, str]:
    return {h["name"]: host_file(lab, h["name"], "/var/lib/fc-agent/agent.pid").strip() for h in fleet["hosts"]}


def ssh_logins(lab: Lab, fleet: dict) -> dict[str, int]:
    """Accepted SSH logins so far, per host, from each lab host's own sshd log: counted by the server."""
    return {h["name"]: (lab.state_dir / "hosts" / h["name"] / "sshd.log").read_text().count("Accepted publickey")
            for h in fleet["hosts"]}


def rejected_packets(lab: Lab, host: str) -> int:
    """Packets the SSH_BLOCK rule rejected on ``host``: connection attempts (a reset answers each SYN at once)."""
    listing = lab.run(host, ["iptables", "-L", "INPUT", "-v", "-x", "-n"], capture_output=True, text=True,
                      check=True).stdout
    return sum(int(line.split()[0]) for line in listing.splitlines() if "REJECT" in line and "dpt:22" in line)


def lock_held(lab: Lab, host: str) -> bool:
    return lab.run(host, ["test", "-d", "/var/lib/fc-agent/deploy.lock"]).returncode == 0


def agent_function(lab: Lab, fleet: dict, host: str, name: str) -> dict | None:
    conn = connection(fleet)
    with ops.agent_session(conn, conn.host(host)) as (_ssh, agent):
        return agent.get_function(name)


def connection(fleet: dict) -> ops.FleetConnection:
    return ops.FleetConnection.from_dict({"hosts": fleet["hosts"], "token": "",
                                          "private_key": Path(fleet["ssh_private_key_path"]).read_text()})


@pytest.fixture(scope="module")
def stacks(lab: Lab, fleet_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Stack]]:
    reset_agents(lab)
    root = tmp_path_factory.mktemp("fleetops")
    made = {"alpha": make_stack(root, "alpha", fleet_file, count=6),
            "beta": make_stack(root, "beta", fleet_file, count=2, lock_timeout=0)}
    yield made
    for stack in made.values():
        if not getattr(stack, "destroyed", False):
            stack.run("destroy", "--yes", check=False)


def test_two_stacks_deploy_at_once_and_share_one_agent_per_host(stacks: dict[str, Stack], lab: Lab,
                                                                 lab_fleet: dict) -> None:
    results = concurrently((stacks["alpha"], {}), (stacks["beta"], {"lockTimeout": "120"}))
    assert [r.returncode for r in results] == [0, 0], [r.stdout + r.stderr for r in results]
    grant_lab(lab)  # the test key, for invoking (these programs declare no fc.AccessKey)
    pids = agent_pids(lab, lab_fleet)
    tokens = {json.loads(host_file(lab, h["name"], "/etc/fc-agent/config.json"))["token"] for h in lab_fleet["hosts"]}
    assert len(tokens) == 1, "the second Fleet installed its own agent with its own token"
    for host in lab_fleet["hosts"]:
        assert invoke(url(host, "alpha-0"), b"x")[2] == b"alpha-v1:x"
        assert invoke(url(host, "beta-1"), b"y")[2] == b"beta-v1:y"
        registrations = lab.run(host["name"], ["ls", "/etc/fc-agent/fleets"], capture_output=True, text=True)
        assert len(registrations.stdout.split()) == 2
    # A second up of each stack finds the agent as it wants it: nothing restarts, nothing changes (both at once,
    # as the first ones: each `pulumi up` is mostly the CLI's own start-up and waiting).
    for again in concurrently((stacks["alpha"], {}), (stacks["beta"], {})):
        assert again.returncode == 0, again.stdout + again.stderr
        assert "updated" not in again.stdout.split("Resources:")[1], again.stdout
    assert agent_pids(lab, lab_fleet) == pids


def wait_for_holder(lab: Lab, host: str, stack: str) -> dict:
    for _ in range(600):  # bounded: 5 minutes at most
        found = host_file(lab, host, "/var/lib/fc-agent/deploy.lock/holder.json")
        if found and json.loads(found).get("stack") == stack:
            return json.loads(found)
        time.sleep(0.5)
    raise AssertionError(f"{stack} never took the deploy lock of {host}")


def test_a_stack_holding_the_lock_makes_the_other_stack_fail_naming_it_and_both_converge(
        stacks: dict[str, Stack], lab: Lab, lab_fleet: dict) -> None:
    alpha, beta = stacks["alpha"], stacks["beta"]
    for name in ("alpha", "beta"):
        write_code(alpha.workdir.parent / name / "code", HANDLER.format(tag=f"{name}-v2"))
    conn = connection(lab_fleet)
    first, last = conn.hosts[0], conn.hosts[-1]
    # An operator's maintenance holds the last host: alpha's deploys take the first hosts (hosts are locked in
    # order) and wait there, holding them, which makes the two stacks' `pulumi up` collide for certain.
    with ThreadPoolExecutor(1) as pool:
        with _lock.fleet_lock(conn.private_key, [last], operation="maintenance", stack="ops/holder"):
            waiting = pool.submit(up, alpha)
            wait_for_holder(lab, first.name, "fc-test/alpha")
            failed = up(beta, lockTimeout="0")
            assert not waiting.done(), waiting.result().stdout
        waited = waiting.result()
    assert failed.returncode != 0
    message = failed.stdout + failed.stderr
    assert f"host {first.name}: deploy lock held by stack fc-test/alpha (" in message, message
    assert "for deploy of function alpha-" in message and " since 20" in message, message
    assert "gave up after waiting 0s" in message and "break the lock" in message, message
    assert waited.returncode == 0, waited.stdout + waited.stderr
    for host in lab_fleet["hosts"]:
        assert invoke(url(host, "alpha-3"), b"z")[2] == b"alpha-v2:z"
        assert invoke(url(host, "beta-0"), b"z")[2] == b"beta-v1:z"  # nothing half-deployed
        assert not lock_held(lab, host["name"])
    # Re-running the stack that failed converges, and so does the other one (no change left).
    assert up(beta).returncode == 0
    for host in lab_fleet["hosts"]:
        assert invoke(url(host, "beta-0"), b"z")[2] == b"beta-v2:z"
    assert "updated" not in alpha.up().split("Resources:")[1]


def test_a_stale_lock_is_reported_and_broken(stacks: dict[str, Stack], lab: Lab, lab_fleet: dict) -> None:
    host = lab_fleet["hosts"][0]["name"]
    holder = {"stack": "gone/stack", "user": "someone", "machine": "elsewhere", "pid": 1, "operation": "deploy of x",
              "since": "2026-01-01T00:00:00Z"}
    lab.run(host, ["sh", "-c", "mkdir /var/lib/fc-agent/deploy.lock && cat > /var/lib/fc-agent/deploy.lock/holder.json"],
            input=json.dumps(holder), text=True, check=True)
    write_code(stacks["beta"].workdir / "code", HANDLER.format(tag="beta-v3"))
    result = up(stacks["beta"])
    assert result.returncode != 0
    assert (f"host {host}: deploy lock held by stack gone/stack (someone@elsewhere, pid 1) for deploy of x since "
            "2026-01-01T00:00:00Z") in result.stdout + result.stderr
    conn = connection(lab_fleet)
    assert ops.lock_holders(conn)[host]["stack"] == "gone/stack"
    assert ops.break_lock(conn, conn.host(host))["machine"] == "elsewhere"
    assert ops.lock_holders(conn) == {h["name"]: None for h in lab_fleet["hosts"]}
    assert up(stacks["beta"]).returncode == 0


def test_refresh_of_many_functions_opens_one_ssh_connection_per_host(stacks: dict[str, Stack], lab: Lab,
                                                                     lab_fleet: dict) -> None:
    before = ssh_logins(lab, lab_fleet)
    out = stacks["alpha"].run("refresh", "--yes", "--skip-preview").stdout
    after = ssh_logins(lab, lab_fleet)
    assert "8 unchanged" in out, out  # the stack, the fleet and 6 functions (each read on all 3 hosts)
    assert {h: after[h] - before[h] for h in after} == {h: 1 for h in after}


def test_deleting_one_stack_keeps_the_agent_the_other_stack_uses(stacks: dict[str, Stack], lab: Lab,
                                                                 lab_fleet: dict) -> None:
    pids = agent_pids(lab, lab_fleet)
    destroy(stacks["beta"])
    assert agent_pids(lab, lab_fleet) == pids
    for host in lab_fleet["hosts"]:
        assert invoke(url(host, "alpha-1"), b"still")[2] == b"alpha-v2:still"
        assert agent_function(lab, lab_fleet, host["name"], "beta-0") is None


def test_an_unreachable_host_fails_the_deploy_by_name_and_up_converges_when_back(
        stacks: dict[str, Stack], lab: Lab, lab_fleet: dict) -> None:
    alpha, victim = stacks["alpha"], lab_fleet["hosts"][1]["name"]
    write_code(alpha.workdir / "code", HANDLER.format(tag="alpha-v3"))
    lab.run(victim, ["iptables", "-I", *SSH_BLOCK], check=True)
    try:
        result = up(alpha)
        attempts = rejected_packets(lab, victim)
    finally:
        lab.run(victim, ["iptables", "-D", *SSH_BLOCK], check=True)
    assert result.returncode != 0
    # 6 functions, each locking then deploying: without the remembered failure that would be 12 connect attempts.
    assert 1 <= attempts <= 2, attempts
    message = result.stdout + result.stderr
    assert f"host {victim}: cannot connect to {lab_fleet['hosts'][1]['address']}:22" in message, message
    assert "Connection refused" in message, message
    for host in lab_fleet["hosts"]:  # the other hosts' results stand
        expected = b"alpha-v2:p" if host["name"] == victim else b"alpha-v3:p"
        assert invoke(url(host, "alpha-2"), b"p")[2] == expected
    assert up(alpha).returncode == 0
    for host in lab_fleet["hosts"]:
        assert invoke(url(host, "alpha-2"), b"p")[2] == b"alpha-v3:p"


def test_a_host_whose_python_is_too_old_fails_the_up_naming_host_version_and_minimum(
        stacks: dict[str, Stack], lab: Lab, lab_fleet: dict) -> None:
    """A real Python 3.9 (this machine's pyenv) as the host's python3: a wrapper bind-mounted over the python3 an SSH
    session finds, inside that lab host's own (private) mount namespace only."""
    old = sorted(Path("/root/.pyenv/versions").glob("3.9.*/bin/python3.9"))
    assert old, "no Python 3.9 on this machine (expected under /root/.pyenv/versions)"
    alpha, victim = stacks["alpha"], lab_fleet["hosts"][1]["name"]
    conn = connection(lab_fleet)
    with ops.agent_session(conn, conn.host(victim)) as (ssh, _agent):
        python3 = ssh.run(["sh", "-c", "command -v python3"]).stdout.strip()
    wrapper = "/var/tmp/fc-test-python3.9"  # written inside the host, whose /tmp is its own
    lab.run(victim, ["tee", wrapper], input=f'#!/bin/sh\nexec {old[-1]} "$@"\n', text=True, capture_output=True,
            check=True)
    lab.run(victim, ["chmod", "755", wrapper], check=True)
    # The agent must need installing for the up to look at python3: stop it for good (supervisor first).
    lab.run(victim, ["sh", "-c", "kill $(cat /var/lib/fc-agent/supervisor.pid); sleep 0.2; "
                                 "kill $(cat /var/lib/fc-agent/agent.pid)"])
    lab.run(victim, ["mount", "--bind", wrapper, python3], check=True)
    try:
        result = alpha.run("up", "--yes", "--skip-preview", "--refresh", check=False)
    finally:
        lab.run(victim, ["umount", python3], check=True)
        lab.run(victim, ["rm", "-f", wrapper])
    message = result.stdout + result.stderr
    assert result.returncode != 0
    assert (f"host {victim} has Python 3.9; the agent needs Python 3.10 or newer as python3 (Ubuntu 22.04+, "
            "Debian 12+)") in message, message
    assert "Traceback" not in message, message
    assert alpha.run("up", "--yes", "--skip-preview", "--refresh", check=False).returncode == 0
    for host in lab_fleet["hosts"]:
        assert invoke(url(host, "alpha-2"), b"p")[2] == b"alpha-v3:p"


def test_the_last_stack_out_removes_the_agent(stacks: dict[str, Stack], lab: Lab) -> None:
    destroy(stacks["alpha"])
    for host in host_snapshot(lab).values():
        assert host == {"containers": [], "files": CLEAN_AGENT_DIRS}


def test_an_agent_roll_stops_at_the_host_that_fails_its_health_gate(lab: Lab, lab_fleet: dict) -> None:
    props = {"hosts": [{**h, "user": lab_fleet["ssh_user"], "labels": {}, "capacity": None}
                       for h in lab_fleet["hosts"]],
             "ssh_private_key": Path(lab_fleet["ssh_private_key_path"]).read_text(), "control_port": 7701,
             "invoke_port": 9000, "runtime_images": {}, "idle_timeout_seconds": 300, "lock_timeout_seconds": 30,
             "stack": "test/roll", "fleet_name": "fleet"}
    provider = FleetProvider()
    created = provider.create(props)
    first, broken, last = (h["name"] for h in lab_fleet["hosts"])
    version = next(iter(created.outs["agent_versions"].values()))
    main = f"/opt/fc-agent/releases/{version}/runtime_agent/__main__.py"
    lab.run(broken, ["sh", "-c", f"echo 'raise SystemExit(3)' > {main}"], check=True)
    try:
        with pytest.raises(FleetOperationError) as failure:
            provider.update(created.id, created.outs, {**props, "idle_timeout_seconds": 120})
        message = str(failure.value)
        assert f"host {broken}: " in message and "health gate" in message, message
        assert f"succeeded on: {first}" in message and f"stopped before: {last}" in message, message
        assert json.loads(host_file(lab, first, "/etc/fc-agent/config.json"))["idle_timeout_seconds"] == 120
        assert json.loads(host_file(lab, last, "/etc/fc-agent/config.json"))["idle_timeout_seconds"] == 300
    finally:
        lab.run(broken, ["rm", "-rf", f"/opt/fc-agent/releases/{version}"], check=True)
    outs = provider.update(created.id, created.outs, {**props, "idle_timeout_seconds": 120}).outs
    assert set(outs["agent_versions"].values()) == {version}
    provider.delete(created.id, outs)
    for host in host_snapshot(lab).values():
        assert host == {"containers": [], "files": CLEAN_AGENT_DIRS}


def test_parallel_operations_of_one_process_share_the_lock(lab: Lab, lab_fleet: dict) -> None:
    conn = connection(lab_fleet)
    first, middle, last = conn.hosts
    with _lock.fleet_lock(conn.private_key, [first, middle], operation="op1", stack="t/s"):
        with ThreadPoolExecutor(1) as pool:  # another resource operation of the same `pulumi up`
            def second() -> bool:
                with _lock.fleet_lock(conn.private_key, [last, middle], operation="op2", stack="t/s", timeout=0):
                    return all(lock_held(lab, h.name) for h in conn.hosts)
            assert pool.submit(second).result()
        assert [lock_held(lab, h.name) for h in conn.hosts] == [True, True, False]
    assert not any(lock_held(lab, h.name) for h in conn.hosts)


def test_a_lock_left_by_a_dead_process_on_this_machine_is_taken_over(lab: Lab, lab_fleet: dict) -> None:
    conn = connection(lab_fleet)
    gone = subprocess.Popen(["true"])
    gone.wait()
    holder = {**_lock._holder("deploy of function f", "t/crashed"), "process": "another", "pid": gone.pid}
    host = conn.hosts[0]
    lab.run(host.name, ["sh", "-c", "mkdir /var/lib/fc-agent/deploy.lock && "
                                    "cat > /var/lib/fc-agent/deploy.lock/holder.json"],
            input=json.dumps(holder), text=True, check=True)
    with _lock.fleet_lock(conn.private_key, [host], operation="op", stack="t/s", timeout=0):
        assert ops.lock_holders(connection(lab_fleet))[host.name]["stack"] == "t/s"
    assert not lock_held(lab, host.name)


@pytest.mark.parametrize("capacity, rule", [
    ({"cpu": 0, "memory_mb": 1024}, "hosts.0.capacity.cpu: Input should be greater than 0"),
    ({"cpu": 2, "memory_mb": 64}, "hosts.0.capacity.memory_mb: Input should be greater than or equal to 128"),
    ({"cpu": 2}, "hosts.0.capacity.memory_mb: Field required"),
])
def test_host_capacity_is_validated(capacity: dict, rule: str) -> None:
    host = {"name": "h", "address": "10.0.0.1", "host_public_key": "ssh-ed25519 AAAA", "capacity": capacity}
    assert check(FleetModel, {"hosts": [host], "ssh_private_key": "k"}) == [("hosts", rule)]


def test_host_capacity_goes_into_that_hosts_agent_config() -> None:
    props = {"hosts": [{"name": "a", "capacity": {"cpu": 1.5, "memory_mb": 2048}}, {"name": "b", "capacity": None}],
             "idle_timeout_seconds": 300}
    assert _settings(props, "a") == {"idle_timeout_seconds": 300, "capacity_cpu": 1.5, "capacity_memory_mb": 2048}
    assert _settings(props, "b") == {"idle_timeout_seconds": 300}
