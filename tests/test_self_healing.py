"""Self-healing agents: on the lab's hosts (no systemd) runtime_agent.supervisor restarts a killed agent, which
re-adopts every running instance; requests in flight at the kill get a clean error, not a hang. On hosts with
systemd the Fleet installs a unit rendered from a jinja2 template; systemd-analyze verifies it here, and
tests/test_systemd_host.py runs it on the lab's systemd host."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from _agent import deploy, install, instance_containers, instances, post
from _steady_load import steady_load

from fc_lab import Lab
from fc_provider._remote import commands as cmd
from fc_provider._remote import fleetops as ops
from fc_provider._remote.unit import render_unit

SLOW = "import time\n\ndef handler(event, context):\n    time.sleep(0.05)\n    return b'ok'\n"
CLIENTS, LOAD_SECONDS, KILL_AT = 3, 14.0, 4.0


@pytest.fixture(scope="module")
def agent_conn(lab: Lab, lab_fleet: dict) -> Iterator[ops.FleetConnection]:
    conn = install(lab_fleet, 0)
    yield conn
    ops.uninstall_agent(conn, conn.hosts[0])


def host_file(lab: Lab, host: str, path: str) -> str:
    return lab.run(host, ["cat", path], capture_output=True, text=True).stdout.strip()


def running_containers(lab: Lab, host: str) -> set[str]:
    client = lab.docker_client(host)
    try:
        return set(instance_containers(client, host))  # whatever their birth (idle stem cells are none)
    finally:
        client.close()


def test_kill_9_under_steady_load_the_agent_comes_back_and_re_adopts_every_instance(
        agent_conn: ops.FleetConnection, lab: Lab, tmp_path: Path) -> None:
    host = agent_conn.hosts[0].name
    url = deploy(agent_conn, tmp_path, "steady", SLOW, max_instances=CLIENTS)
    for _ in range(CLIENTS):
        assert post(url)[0] == 200
    before: set[str] = set()
    old_pid = host_file(lab, host, cmd.AGENT_PIDFILE)

    def kill() -> None:
        before.update(running_containers(lab, host))
        lab.run(host, ["kill", "-9", old_pid], check=True)

    load = steady_load(url, clients=CLIENTS, seconds=LOAD_SECONDS, act_at=KILL_AT, action=kill)
    assert load.hung == 0, "a client hung"
    print("per second:", load.per_second())  # shown with pytest -s; see docs/performance.md
    assert not load.unclean(), load.unclean()
    assert load.first_success_after_action() is not None, "nothing succeeded after the kill"
    assert host_file(lab, host, cmd.AGENT_PIDFILE) != old_pid  # a new agent, started by the supervisor
    after = running_containers(lab, host)
    known = {i["instance_id"] for i in instances(agent_conn, "steady")}
    assert after == known, (after, known)  # none orphaned: every container is the agent's
    assert before <= after, (before, after)  # every instance running at the kill was re-adopted
    assert len(after) <= CLIENTS  # none duplicated (max_instances holds across the restart)
    log = lab.run(host, ["cat", cmd.AGENT_LOG], capture_output=True, text=True).stdout
    assert "supervisor: agent (pid" in log and f"reconcile: re-adopted {len(before)} instance(s)" in log, log[-2000:]


def test_supervision_is_reported_and_a_stopped_supervisor_is_drift(agent_conn: ops.FleetConnection,
                                                                  lab: Lab) -> None:
    host = agent_conn.hosts[0]
    with ops.agent_session(agent_conn, host) as (ssh, _agent):
        assert ssh.run(cmd.supervision()).stdout.strip() == "supervisor"
        supervisor = host_file(lab, host.name, cmd.SUPERVISOR_PIDFILE)
        lab.run(host.name, ["kill", "-9", supervisor], check=True)  # the agent keeps running, unsupervised
        assert ssh.run(cmd.supervision()).stdout.strip() == "none"
    # The next install (what `pulumi up` runs after a refresh reported "unsupervised") puts it back.
    info = ops.install_agent(agent_conn, host, {"idle_timeout_seconds": 300})
    assert info["installed"]
    with ops.agent_session(agent_conn, host) as (ssh, agent):
        assert ssh.run(cmd.supervision()).stdout.strip() == "supervisor"
        agent.health()


def test_the_systemd_unit_is_valid_and_restarts_the_agent_without_killing_instances(tmp_path: Path) -> None:
    unit = render_unit("/usr/bin/python3")
    for line in ("Restart=always", "RestartSec=1", "KillMode=process",
                 f"ExecStart=/usr/bin/python3 -m runtime_agent --config {cmd.AGENT_CONFIG} --pidfile "
                 f"{cmd.AGENT_PIDFILE}", f"StandardOutput=append:{cmd.AGENT_LOG}"):
        assert line in unit.splitlines(), line
    path = tmp_path / "fc-agent.service"
    path.write_text(unit)
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (scripts/setup.sh installs systemd)"
    verified = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr
    with pytest.raises(ValueError, match="absolute path"):
        render_unit("python3")
