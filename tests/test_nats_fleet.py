"""``FleetArgs.task_queue`` nats, through the Fleet's own provider code (no Pulumi CLI: create and delete of
``FleetProvider`` are called as the engine would): bad settings refused at preview naming the field; on the lab,
the Fleet ships nats-server v2.15.2 to the three queue hosts, writes each member's config (0600, ``sync_interval:
always``) and keeps it running under runtime_agent.supervisor (a ``kill -9`` of nats-server is undone), every
agent uses the cluster, and an async invocation accepted on lab-1 is answered as Succeeded by lab-3."""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from _agent import async_config, deploy, grant, post, post_async, wait_for

from fc_lab import Lab
from fc_provider import NatsTaskQueueArgs
from fc_provider._model.natsconf import NATS_SERVER_VERSION
from fc_provider._remote import commands as cmd
from fc_provider._remote import fleetops as ops
from fc_provider.fleet import FleetArgs, FleetProvider

pytestmark = pytest.mark.timeout(600)
FN = "fleetqueue"


def _props(lab_fleet: dict, task_queue: object) -> dict:
    hosts = [{"name": h["name"], "address": h["address"], "host_public_key": h["host_public_key"],
              "port": h.get("port", 22), "user": lab_fleet["ssh_user"], "labels": {}, "capacity": None}
             for h in lab_fleet["hosts"]]
    return {"hosts": hosts, "ssh_private_key": Path(lab_fleet["ssh_private_key_path"]).read_text(),
            "control_port": 7701, "invoke_port": 9000, "runtime_images": {}, "idle_timeout_seconds": 300,
            "invoke_port_guards": {}, "lock_timeout_seconds": 120, "stem_cells": None, "images": {},
            "stack": "tests/nats", "fleet_name": "natsfleet", "task_queue": task_queue, "nats_password": None}


def test_bad_task_queue_settings_are_refused_at_preview_naming_the_field(lab_fleet: dict) -> None:
    provider = FleetProvider()
    cases = [
        ("redis", 'neither "local" nor'),
        ({"nats": {"hosts": ["lab-1", "lab-2"]}}, "task_queue: nats.hosts: List should have at least 3 items"),
        ({"nats": {"hosts": ["lab-1", "lab-2", "nowhere"]}}, "nowhere not among the fleet's hosts"),
        ({"nats": {"hosts": ["lab-1", "lab-1", "lab-2"]}}, "distinct"),
        ({"nats": {"hosts": ["lab-1", "lab-2", "lab-3"], "ack_wait_seconds": 1}}, "nats.ack_wait_seconds: Input should be greater"),
        ({"nats": {"hosts": ["lab-1", "lab-2", "lab-3"], "replicas": 3}}, "nats.replicas: Extra inputs are not permitted"),
    ]
    for value, words in cases:
        failures = provider.check({}, _props(lab_fleet, value)).failures
        assert failures and any(words in f.reason for f in failures), (value, [f.reason for f in failures])
        assert all(f.property in ("task_queue", "(resource)") for f in failures), failures
    ok = provider.check({}, _props(lab_fleet, {"nats": {"hosts": ["lab-1", "lab-2", "lab-3"]}})).failures
    assert ok == []
    typed = FleetArgs(hosts=[], ssh_private_key="k", task_queue=NatsTaskQueueArgs(hosts=["a", "b", "c"],
                                                                                   ack_wait_seconds=10))
    assert typed.task_queue == {"nats": {"hosts": ["a", "b", "c"], "ack_wait_seconds": 10}}
    assert FleetArgs(hosts=[], ssh_private_key="k").task_queue == "local"


@pytest.fixture(scope="module")
def fleet(lab: Lab, lab_fleet: dict) -> Iterator[tuple[str, dict]]:
    provider = FleetProvider()
    created = provider.create(_props(lab_fleet, {"nats": {"hosts": ["lab-1", "lab-2", "lab-3"],
                                                          "ack_wait_seconds": 5}}))
    try:
        yield created.id, created.outs
    finally:
        provider.delete(created.id, created.outs)  # keeps the agents (and their queue members): they serve FN
        for index in range(3):  # so that the next test's cluster gets the queue's ports, and no agent is left over
            ops.uninstall_agent(_conn(created.outs, index), _conn(created.outs, index).hosts[0])


def _conn(outs: dict, index: int) -> ops.FleetConnection:
    conn = ops.FleetConnection.from_dict(outs["connection"])
    return dataclasses.replace(conn, hosts=(conn.hosts[index],))


def _nats_pid(lab: Lab, host: str) -> int | None:
    out = lab.run(host, ["sh", "-c", f"pgrep -P $(cat {cmd.NATS_SUPERVISOR_PIDFILE}) -f nats-server"],
                  capture_output=True, text=True)
    return int(out.stdout.split()[0]) if out.stdout.strip() else None


def test_the_fleet_runs_the_cluster_and_every_agent_uses_it(fleet, lab: Lab, tmp_path: Path) -> None:
    _id, outs = fleet
    assert outs["nats_password"] and outs["task_queue"]["nats"]["hosts"] == ["lab-1", "lab-2", "lab-3"]
    for host in ("lab-1", "lab-2", "lab-3"):
        mode = lab.run(host, ["stat", "-c", "%a", cmd.NATS_CONFIG], capture_output=True, text=True).stdout.strip()
        assert mode == "600"
        text = lab.run(host, ["cat", cmd.NATS_CONFIG], capture_output=True, text=True).stdout
        assert "sync_interval: always" in text
        version = lab.run(host, ["sh", "-c", f"$(ls {cmd.AGENT_ROOT}/nats/*/nats-server) --version"],
                          capture_output=True, text=True).stdout
        assert NATS_SERVER_VERSION in version
        config = json.loads(lab.run(host, ["cat", cmd.AGENT_CONFIG], capture_output=True, text=True).stdout)
        assert len(config["task_queue"]["nats"]["servers"]) == 3
    conns = [_conn(outs, i) for i in range(3)]
    for conn in conns:
        grant(conn)
        deploy(conn, tmp_path / conn.hosts[0].name, FN, "def handler(event, context):\n    return event\n")
    async_config(conns[0], FN, async_task=True)

    # nats-server killed on lab-2: its supervisor starts it again (the cluster keeps a majority meanwhile)
    before = wait_for(lambda: _nats_pid(lab, "lab-2"), "nats-server on lab-2", 30)
    lab.run("lab-2", ["kill", "-9", str(before)], check=True)
    wait_for(lambda: (p := _nats_pid(lab, "lab-2")) and p != before, "the supervisor to restart nats-server", 60)

    task_id = f"fleet-{uuid.uuid4().hex[:8]}"
    host = conns[0].hosts[0]
    def accepted() -> bool:  # a 503 while the restarted member rejoins (FC's clients retry it), then the 202
        status, _h, body = post_async(f"http://{host.address}:9000/2023-03-30/functions/{FN}/invocations",
                                      b"hello", task_id=task_id)
        assert status in (202, 503), body
        return status == 202

    wait_for(accepted, "the cluster to accept again", 60)
    other = conns[2].hosts[0]

    def done() -> dict | None:
        code, _hh, reply = post(f"http://{other.address}:9000/2023-03-30/functions/{FN}/async-tasks/{task_id}",
                                method="GET")
        if code == 503:  # the cluster electing a leader
            return None
        assert code == 200, reply
        task = json.loads(reply)
        return task if task["status"] == "Succeeded" else None

    task = wait_for(done, f"task {task_id} to succeed", 120)
    assert task["returnPayload"] == "hello"



def test_a_stopped_member_is_drift_on_refresh_and_up_starts_it_again(fleet, lab: Lab, lab_fleet: dict) -> None:
    id_, outs = fleet
    lab.run("lab-3", cmd.stop_nats(), check=True)
    found = FleetProvider().read(id_, outs).outs["agent_versions"]
    assert found["lab-3"].startswith("task queue member down: "), found
    assert not found["lab-1"].startswith("task queue member down"), found
    news = _props(lab_fleet, {"nats": {"hosts": ["lab-1", "lab-2", "lab-3"], "ack_wait_seconds": 5}})
    FleetProvider().update(id_, outs, news)
    assert lab.run("lab-3", cmd.nats_supervised()).returncode == 0
    assert not FleetProvider().read(id_, outs).outs["agent_versions"]["lab-3"].startswith("task queue member")


def test_back_to_the_local_queue_stops_every_member_and_removes_its_files(fleet, lab: Lab, lab_fleet: dict) -> None:
    id_, outs = fleet
    news = _props(lab_fleet, "local")
    FleetProvider().update(id_, outs, news)
    for host in ("lab-1", "lab-2", "lab-3"):
        alive = lab.run(host, ["sh", "-c", f"kill -0 $(cat {cmd.NATS_SUPERVISOR_PIDFILE} 2>/dev/null) 2>/dev/null"])
        assert alive.returncode != 0, f"the queue member's supervisor still runs on {host}"
        left = lab.run(host, ["ls", cmd.NATS_CONFIG, cmd.NATS_STORE], capture_output=True, text=True)
        assert left.returncode != 0 and not left.stdout.strip(), left.stdout
        config = json.loads(lab.run(host, ["cat", cmd.AGENT_CONFIG], capture_output=True, text=True).stdout)
        assert config.get("task_queue") in (None, "local"), config["task_queue"]
