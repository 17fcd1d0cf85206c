"""Tests of the lab itself, against real namespaces, sshd and dockerd (no mocks, no skips)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import paramiko
import pytest

import fc_lab
from fc_lab import RUNTIME_IMAGE, Lab, _cleanup

IMAGE = f"{RUNTIME_IMAGE}:latest"
AGENT_DIRS = ("/var/lib/fc-agent", "/etc/fc-agent", "/opt/fc-agent")


# --- helpers ------------------------------------------------------------------------------------

def _out(argv: list[str]) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def _processes_in(net_namespaces: set[int]) -> set[str]:
    """Live processes in any of these network namespaces (by inode): after down, a leak of that lab's hosts."""
    procs = set()
    for line in _out(["ps", "-eo", "pid,stat,args"]).splitlines()[1:]:
        pid, stat, args = line.split(None, 2)
        # Zombies are reaped by PID 1 in its own time and hold nothing; kernel threads are not ours.
        if "Z" in stat or args.startswith("["):
            continue
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino in net_namespaces:
                procs.add(f"{pid} {args}")
        except OSError:
            continue
    return procs


def _net_namespaces(lab: Lab) -> set[int]:
    return {os.stat(f"/run/netns/{name}").st_ino for name in _out(["ip", "netns", "list"]).split()
            if name.startswith(lab.prefix)}


def _snapshot(lab: Lab) -> dict[str, set[str]]:
    """What this lab holds on the machine, and only this lab: the suite may run in two workers, and the other's lab
    starts containers, mounts and links meanwhile (its names have another prefix, its files another folder)."""
    cgroups = (f"{lab.prefix}-lab-1", f"{lab.prefix}-lab-2")
    return {
        "netns": {n for n in _out(["ip", "netns", "list"]).splitlines() if n.startswith(lab.prefix)},
        "links": {line.split()[0] for line in _out(["ip", "-br", "link"]).splitlines()
                  if line.startswith(lab.prefix)},
        "mounts": {m for m in Path("/proc/self/mountinfo").read_text().splitlines()
                   if str(lab.state_dir) in m or f"/run/netns/{lab.prefix}" in m},
        "agent_dirs": {d for d in AGENT_DIRS if Path(d).exists()},
        "cgroups": {str(d) for parent in cgroups for d in _cleanup.cgroup_dirs(parent)},
    }


def _host_keys(fleet: dict) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    for host in fleet["hosts"]:
        key_type, b64 = host["host_public_key"].split()
        keys.add(host["address"], key_type, paramiko.PKey.from_type_string(key_type, base64.b64decode(b64)))
    return keys


def _ssh(fleet: dict, host: dict, keys: paramiko.HostKeys) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    for hostname, entries in keys.items():
        for key_type, key in entries.items():
            client.get_host_keys().add(hostname, key_type, key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(host["address"], port=host["port"], username=fleet["ssh_user"],
                   key_filename=fleet["ssh_private_key_path"], look_for_keys=False, allow_agent=False, timeout=10)
    return client


def _exec(client: paramiko.SSHClient, command: str) -> str:
    _, stdout, stderr = client.exec_command(command, timeout=20)
    out = stdout.read().decode()
    assert stdout.channel.recv_exit_status() == 0, stderr.read().decode()
    return out


# --- (0) the public face ------------------------------------------------------------------------

def test_exports_are_complete_and_sorted() -> None:
    assert fc_lab.__all__ == sorted(fc_lab.__all__)
    public = {n for n in vars(fc_lab) if not n.startswith("_") and n not in {"annotations"}}
    assert public - set(fc_lab.__all__) <= {"cli"}
    assert all(hasattr(fc_lab, n) for n in fc_lab.__all__)


# --- (1) a separate lab leaves nothing behind ---------------------------------------------------

def _side_lab(state: Path) -> Lab:
    """A second lab beside the main one: its own prefix and the next /24."""
    main = Lab()
    a, b, c = main.subnet.split(".")
    return Lab(state, prefix=f"{main.prefix[:9]}t", subnet=f"{a}.{b}.{int(c) + 1}")


@pytest.fixture
def side_state() -> Iterator[Path]:
    # Not under /tmp: each host mounts its own /tmp, which would hide a state folder there.
    path = Path("/var/tmp") / f"fc-lab-test-{uuid.uuid4().hex[:8]}"
    yield path
    _side_lab(path).down()
    shutil.rmtree(path, ignore_errors=True)


def test_separate_lab_up_is_idempotent_and_down_leaves_nothing(side_state: Path) -> None:
    side = _side_lab(side_state)
    before = _snapshot(side)

    fleet = side.up(2)
    assert [h["name"] for h in fleet["hosts"]] == ["lab-1", "lab-2"]
    assert [h["address"] for h in fleet["hosts"]] == [f"{side.subnet}.11", f"{side.subnet}.12"]
    assert json.loads((side_state / "fleet.json").read_text()) == fleet == side.fleet()
    holders = [(side_state / "hosts" / h / "holder.pid").read_text() for h in ("lab-1", "lab-2")]

    # Second up: nothing rebuilt, same fleet.
    assert side.up(2) == fleet
    assert holders == [(side_state / "hosts" / h / "holder.pid").read_text() for h in ("lab-1", "lab-2")]
    assert all(s.healthy for s in side.status())

    # Leave work for down: a running and a paused (frozen) container, an SSH-free shell in the host.
    engine = side.docker_client("lab-1")
    engine.containers.run(IMAGE, ["sleep", "300"], detach=True)
    engine.containers.run(IMAGE, ["sleep", "300"], detach=True).pause()
    engine.close()
    assert side.run("lab-2", ["touch", "/var/lib/fc-agent/x"]).returncode == 0

    # A host whose processes all died (as after a reboot) is rebuilt by up, with the same host key.
    pids = json.loads((side_state / "hosts" / "lab-2" / "procs.json").read_text())
    for pid, _ in pids.values():
        os.kill(pid, signal.SIGKILL)
    assert not next(s for s in side.status() if s.name == "lab-2").healthy
    rebuilt = side.up(2)
    assert rebuilt["hosts"][1]["host_public_key"] == fleet["hosts"][1]["host_public_key"]
    assert all(s.healthy for s in side.status())

    namespaces = _net_namespaces(side)
    assert len(namespaces) == 2 and _processes_in(namespaces), "the hosts' processes are found by their namespace"
    side.down()
    side.down()  # idempotent
    after = _snapshot(side)
    assert not side_state.exists()
    for kind in before:
        assert after[kind] - before[kind] == set(), f"{kind} left behind"
    assert _processes_in(namespaces) == set(), "processes left behind"


# --- (2) hosts are isolated ---------------------------------------------------------------------

def test_container_on_one_host_is_invisible_on_another(lab: Lab) -> None:
    one, two = lab.docker_client("lab-1"), lab.docker_client("lab-2")
    container = one.containers.run(IMAGE, ["sleep", "60"], detach=True, auto_remove=True)
    try:
        assert container.id in {c.id for c in one.containers.list()}
        assert container.id not in {c.id for c in two.containers.list(all=True)}
        with pytest.raises(docker.errors.NotFound):
            two.containers.get(container.id)
    finally:
        container.remove(force=True)
        one.close()
        two.close()


def test_agent_dir_is_private_to_each_host(lab: Lab) -> None:
    probe = f"/var/lib/fc-agent/probe-{uuid.uuid4().hex[:8]}"
    try:
        assert lab.run("lab-1", ["touch", probe]).returncode == 0
        assert lab.run("lab-1", ["test", "-e", probe]).returncode == 0
        assert lab.run("lab-2", ["test", "-e", probe]).returncode == 1
        assert not Path(probe).exists()
        assert (lab.state_dir / "hosts" / "lab-1" / "var-lib-fc-agent" / Path(probe).name).exists()
    finally:
        lab.run("lab-1", ["rm", "-f", probe])


def test_hosts_reach_each_other_but_not_each_others_loopback(lab: Lab) -> None:
    connect = "import socket,sys; socket.create_connection((sys.argv[1], 22), timeout=3).close()"
    to_peer = lab.run("lab-2", ["python3", "-c", connect, f"{lab.subnet}.11"], capture_output=True)
    assert to_peer.returncode == 0, to_peer.stderr
    # lab-2's own loopback has no sshd: loopback ports are per host.
    to_loopback = lab.run("lab-2", ["python3", "-c", connect, "127.0.0.1"], capture_output=True)
    assert to_loopback.returncode != 0


# --- (3) SSH with strict host-key checking ------------------------------------------------------

def test_ssh_lands_in_each_hosts_namespaces(lab: Lab) -> None:
    fleet = lab.fleet()
    keys = _host_keys(fleet)
    for host in fleet["hosts"]:
        marker = f"marker-{host['name']}"
        (lab.state_dir / "hosts" / host["name"] / "var-lib-fc-agent" / marker).touch()
        client = _ssh(fleet, host, keys)
        try:
            assert host["address"] in _exec(client, "hostname -I").split()
            assert f"{host['address']}/24" in _exec(client, "ip -br addr show dev eth0")
            listing = _exec(client, "ls /var/lib/fc-agent").split()
            assert marker in listing
            assert not any(m.startswith("marker-") and m != marker for m in listing)
        finally:
            client.close()
            (lab.state_dir / "hosts" / host["name"] / "var-lib-fc-agent" / marker).unlink()


def test_ssh_rejects_a_wrong_host_key(lab: Lab) -> None:
    fleet = lab.fleet()
    first, second = fleet["hosts"][0], fleet["hosts"][1]
    swapped = dict(fleet, hosts=[dict(first, host_public_key=second["host_public_key"])])
    with pytest.raises(paramiko.BadHostKeyException):
        _ssh(swapped, swapped["hosts"][0], _host_keys(swapped)).close()


# --- (4) the CLI --------------------------------------------------------------------------------

def test_cli_status_is_healthy(lab: Lab) -> None:
    fc_lab_bin = Path(sys.executable).parent / "fc-lab"
    env = dict(os.environ, FC_LAB_DIR=str(lab.state_dir))
    res = subprocess.run([str(fc_lab_bin), "status"], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    for host in lab.fleet()["hosts"]:
        line = rf"{host['name']}\s+{re.escape(host['address'])}\s+holder=ok\s+sshd=ok\s+dockerd=ok"
        assert re.search(line, res.stdout)
