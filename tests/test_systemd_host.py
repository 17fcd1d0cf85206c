"""The Fleet's systemd unit, really run: on the lab's systemd host (``lab.systemd_host()``: a container on its own
root filesystem whose PID 1 is systemd, reached over SSH like any host) one `pulumi up` of a Fleet installs and
enables fc-agent.service instead of the supervisor, a second one changes nothing, and `kill -9` of the agent under
steady signed load is answered by systemd restarting it: the host serves again, every running instance is
re-adopted, a request in flight at the kill gets a clean error. `pulumi destroy` removes the unit."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Iterator

import pytest
from _agent import deploy, install, instance_containers, instances, post, wait_for
from _pulumi import Stack
from _steady_load import CLEAN_ERRORS, invoke_once, steady_load
from test_deploy import write_code

from fc_lab import Lab
from fc_provider._remote import commands as cmd
from fc_provider._remote import fleetops as ops
from fc_provider._remote.ssh import HostKeyMismatch
from fc_provider._remote.unit import render_unit

PROGRAM = Path(__file__).resolve().parent / "fleet_program"
UNIT = "fc-agent.service"
SLOW = "import time\n\ndef handler(event, context):\n    time.sleep(0.05)\n    return b'ok'\n"
HELD = "import time\n\ndef handler(event, context):\n    time.sleep(6)\n    return b'late'\n"
CLIENTS, LOAD_SECONDS, KILL_AT = 3, 14.0, 4.0


@pytest.fixture(scope="module")
def systemd_fleet(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    host = lab.systemd_host()  # fails loudly (LabError with the boot log) when it cannot run here
    fleet = {"name": "systemd", "ssh_user": "root", "ssh_private_key_path": str(lab.client_key_path),
             "hosts": [host]}
    reset_systemd_host(lab)
    path = tmp_path_factory.mktemp("systemd-fleet") / "fleet.json"
    path.write_text(json.dumps(fleet))
    return fleet, path


@pytest.fixture(scope="module")
def stack(systemd_fleet: tuple[dict, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("systemd-stack")
    write_code(root / "code", "def handler(event, context):\n    return b'unit:' + event\n")
    made = Stack(root, "sd", program=PROGRAM)
    made.config(fleetFile=str(systemd_fleet[1]), prefix="sd", codeDir=str(root / "code"), count="1")
    yield made
    made.run("destroy", "--yes", check=False)


def reset_systemd_host(lab: Lab) -> None:
    """The host starts without an agent, whatever an earlier run left there (the host lives as long as the lab)."""
    script = (f"systemctl disable --now {UNIT} >/dev/null 2>&1; rm -f {cmd.SYSTEMD_UNIT}; systemctl daemon-reload; "
              "systemctl reset-failed; ids=$(docker ps -aq --filter label=fc.agent); [ -z \"$ids\" ] || "
              "docker rm -f $ids >/dev/null; rm -rf /etc/fc-agent /opt/fc-agent /var/lib/fc-agent")
    lab.run("lab-systemd", ["sh", "-c", script], check=True)


def on_host(lab: Lab, *argv: str) -> str:
    return lab.run("lab-systemd", list(argv), capture_output=True, text=True).stdout.strip()


def unit_property(lab: Lab, name: str) -> str:
    return on_host(lab, "systemctl", "show", "-P", name, UNIT)


def agent_containers(lab: Lab) -> set[str]:
    client = lab.docker_client("lab-systemd")
    try:
        return set(instance_containers(client, "lab-systemd"))  # whatever their birth (idle stem cells are none)
    finally:
        client.close()


def test_one_up_installs_and_enables_the_unit_not_the_supervisor_and_a_second_up_changes_nothing(
        stack: Stack, lab: Lab) -> None:
    stack.up()
    assert on_host(lab, "systemctl", "is-enabled", UNIT) == "enabled"
    assert on_host(lab, "systemctl", "is-active", UNIT) == "active"
    assert on_host(lab, "cat", cmd.SYSTEMD_UNIT) + "\n" == render_unit("/usr/bin/python3")
    main_pid = unit_property(lab, "MainPID")
    assert on_host(lab, "cat", cmd.AGENT_PIDFILE) == main_pid  # the agent is the unit's main process
    assert on_host(lab, "ps", "-o", "ppid=", "-p", main_pid) == "1"  # its parent is systemd, PID 1 of the host
    assert on_host(lab, "sh", "-c", f"test -e {cmd.SUPERVISOR_PIDFILE} || pgrep -f 'runtime_agen[t][.]supervisor' "
                   "|| echo none") == "none"
    out = stack.up()
    assert "updated" not in out.split("Resources:")[1], out
    assert unit_property(lab, "MainPID") == main_pid and unit_property(lab, "NRestarts") == "0"


def test_kill_9_under_steady_load_systemd_restarts_the_agent_which_re_adopts_every_instance(
        stack: Stack, systemd_fleet: tuple[dict, Path], lab: Lab, tmp_path: Path) -> None:
    conn = install(systemd_fleet[0], 0)  # the agent the stack installed (same version and config): kept as it is
    try:
        kill_under_load(conn, lab, tmp_path)
    finally:  # functions of no stack: left there, they would keep the agent when the stack is destroyed
        with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
            for name in ("steady", "held"):
                agent.delete_function(name)


def kill_under_load(conn: ops.FleetConnection, lab: Lab, tmp_path: Path) -> None:
    main_pid = unit_property(lab, "MainPID")
    # Timeouts far above the handlers' times: on a busy machine no instance is replaced for a timeout during the
    # load, so the instances after the kill are exactly those before it.
    url = deploy(conn, tmp_path / "steady", "steady", SLOW, max_instances=CLIENTS, timeout=30)
    held_url = deploy(conn, tmp_path / "held", "held", HELD, timeout=30)
    for _ in range(CLIENTS):
        assert post(url)[0] == 200
    held: list[str] = []
    in_flight = threading.Thread(target=lambda: held.append(invoke_once(held_url)))

    def kill() -> None:
        in_flight.start()
        wait_for(lambda: any(i["in_flight"] for i in instances(conn, "held")), "the held request in its handler")
        before.update(agent_containers(lab))
        on_host(lab, "kill", "-9", main_pid)

    before: set[str] = set()
    load = steady_load(url, clients=CLIENTS, seconds=LOAD_SECONDS, act_at=KILL_AT, action=kill)
    in_flight.join(timeout=90)
    print("per second:", load.per_second())  # shown with pytest -s; figures in docs/performance.md
    print("serving again", load.first_success_after_action(), "s after the kill")
    assert load.hung == 0 and not in_flight.is_alive(), "a client hung"
    assert not load.unclean(), load.unclean()
    assert held and held[0] in CLEAN_ERRORS, held  # not a hang, not a late answer
    assert load.first_success_after_action() is not None, "nothing succeeded after the kill"
    assert unit_property(lab, "NRestarts") == "1"  # systemd restarted it, once
    assert unit_property(lab, "MainPID") not in ("0", main_pid)
    journal = on_host(lab, "journalctl", "-u", UNIT, "--no-pager", "-o", "cat")
    assert "Main process exited, code=killed, status=9/KILL" in journal, journal
    assert "Scheduled restart job" in journal, journal
    after = agent_containers(lab)
    known = {i["instance_id"] for f in ("steady", "held") for i in instances(conn, f)}
    assert after == known, (after, known)  # none orphaned: every container is the agent's
    assert before <= after, (before, after)  # every instance running at the kill was re-adopted
    assert len(before) == len(after)  # none duplicated
    assert any(i.startswith("held-") for i in before), before  # the busy instance too, its request cut off
    # The unit sends the agent's output to its log file (StandardOutput=append:): the restarted agent's lines are there.
    log = on_host(lab, "cat", cmd.AGENT_LOG)
    assert f"reconcile: re-adopted {len(before)} instance(s)" in log, log[-2000:]


def test_destroy_stops_and_removes_the_unit(stack: Stack, lab: Lab) -> None:
    stack.run("destroy", "--yes")
    assert on_host(lab, "sh", "-c", f"test -e {cmd.SYSTEMD_UNIT} && echo present || echo absent") == "absent"
    assert on_host(lab, "systemctl", "is-active", UNIT) in ("inactive", "unknown")
    assert on_host(lab, "sh", "-c", "pgrep -f 'runtime_agen[t] --config' || echo none") == "none"
    assert agent_containers(lab) == set()


def test_the_systemd_host_is_reached_with_a_strict_host_key(systemd_fleet: tuple[dict, Path], lab: Lab) -> None:
    host = dict(systemd_fleet[0]["hosts"][0])
    other = lab.fleet()["hosts"][0]["host_public_key"]  # a real key, but not this host's
    conn = ops.FleetConnection.from_dict({"hosts": [{**host, "host_public_key": other, "user": "root"}],
                                          "private_key": lab.client_key_path.read_text(), "token": "x"})
    with pytest.raises(HostKeyMismatch, match="lab-systemd"):
        ops.install_agent(conn, conn.hosts[0], {})
