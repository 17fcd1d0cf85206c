"""OSS trigger failover across the 3 lab hosts: every host of the trigger lists the bucket, the owner (lab-1, the
first by name, where the webhook points) delivers; with the owner's agent down, lab-2 delivers from its listing,
each event once across the fleet; the owner back delivers none of them again. Real agents, real S3 server."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest
from _s3 import S3Server

from fc_lab import Lab
from fc_provider._remote import fleetops as ops
from tests._agent import deploy, install, wait_for

HANDLER = '''
import json
def handler(event, context):
    for e in json.loads(event)["events"]:
        print("FIRED " + json.dumps({"key": e["oss"]["object"]["key"], "name": e["eventName"]}))
    return "ok"
'''
PERIOD = 1  # reconcile_seconds


@pytest.fixture(scope="module")
def fleet(lab: Lab, lab_fleet: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    conns = [install(lab_fleet, i) for i in range(3)]
    tmp = tmp_path_factory.mktemp("ossfail")
    for i, conn in enumerate(conns):
        deploy(conn, tmp / str(i), "watcher", HANDLER, min_instances=1, timeout=10)
    key = secrets.token_hex(16)
    server = S3Server(f"{lab.subnet}.1", tmp / "s3")
    owner = conns[0].hosts[0]
    server.start(webhook=f"http://{owner.address}:{conns[0].invoke_port}/_fc/s3-events/{key}")
    s3 = server.client()
    s3.create_bucket(Bucket="shared")
    peers = [{"name": c.hosts[0].name, "address": c.hosts[0].address, "port": c.invoke_port} for c in conns]
    for conn in conns:
        with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
            agent.put_trigger("watcher", "shared", {
                "trigger_type": "oss", "peer_key": key, "peers": peers,
                "trigger_config": {"events": ["oss:ObjectCreated:*", "oss:ObjectRemoved:DeleteObject"],
                                   "filter": {"key": {"prefix": "in/"}}},
                "source": server.source("shared", reconcile_seconds=PERIOD)})
    time.sleep(3 * PERIOD)  # every host's first listing (it records what is there and fires nothing)
    try:
        yield {"conns": conns, "s3": s3}
    finally:
        server.stop()
        for conn in conns:  # its min_instances would hold room (and a container) on every host for later tests
            with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
                agent.delete_function("watcher")


def fired(conns: list[ops.FleetConnection]) -> list[tuple[str, str, str]]:
    """(host, key, event name) of every event delivered, on every host whose agent answers."""
    found = []
    for conn in conns:
        try:
            with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
                logs = agent.logs(function="watcher")
        except Exception:  # noqa: BLE001 - the host whose agent is down
            continue
        for entry in logs:
            for line in entry["log"].splitlines():
                if line.startswith("FIRED "):
                    event = json.loads(line[len("FIRED "):])
                    found.append((conn.hosts[0].name, event["key"], event["name"]))
    return found


def kill_agent(lab: Lab, host: str) -> None:
    for pidfile in ("supervisor.pid", "agent.pid"):  # the supervisor first, or it starts the agent again at once
        pid = lab.run(host, ["cat", f"/var/lib/fc-agent/{pidfile}"], capture_output=True, text=True).stdout.strip()
        assert b"runtime_agent" in Path(f"/proc/{pid}/cmdline").read_bytes()
        os.kill(int(pid), 9)


def test_events_move_to_the_next_host_while_the_owner_is_down_each_once(fleet: dict, lab: Lab,
                                                                        lab_fleet: dict) -> None:
    conns, s3 = fleet["conns"], fleet["s3"]
    s3.put_object(Bucket="shared", Key="in/before.txt", Body=b"owner up")
    wait_for(lambda: fired(conns), "the owner to deliver", 20)
    time.sleep(4 * PERIOD)  # every host listed it since: still once, by the owner
    assert fired(conns) == [("lab-1", "in/before.txt", "ObjectCreated:PutObject")], fired(conns)

    kill_agent(lab, "lab-1")
    keys = [f"in/while-down-{i}.txt" for i in range(3)]
    try:
        for key in keys:  # the webhook's posts to lab-1 fail: the listing of lab-2 delivers them
            s3.put_object(Bucket="shared", Key=key, Body=key.encode())
        s3.delete_object(Bucket="shared", Key="in/before.txt")
        expected = {(k, "ObjectCreated:PutObject") for k in keys} | {("in/before.txt", "ObjectRemoved:DeleteObject")}
        wait_for(lambda: expected <= {(k, n) for _, k, n in fired(conns[1:])}, "lab-2 to take over", 30)
        time.sleep(4 * PERIOD)  # lab-3's turn came and went: it found them claimed
        during = fired(conns[1:])
        assert Counter((k, n) for _, k, n in during) == Counter(expected), during  # each once
        assert {h for h, _, _ in during} == {"lab-2"}, during  # rank 1 takes over; rank 2 stays quiet
    finally:
        install(lab_fleet, 0)  # lab-1 back, its state kept (its request log, in memory, starts empty)
    time.sleep(5 * PERIOD)  # lab-1's listings see what changed while it was down: all claimed by lab-2
    assert not fired(conns[:1]), fired(conns[:1])
    s3.put_object(Bucket="shared", Key="in/after.txt", Body=b"owner back")
    wait_for(lambda: ("lab-1", "in/after.txt", "ObjectCreated:PutObject") in fired(conns), "the owner again", 20)
    time.sleep(3 * PERIOD)
    assert [e for e in fired(conns) if e[1] == "in/after.txt"] == [("lab-1", "in/after.txt",
                                                                   "ObjectCreated:PutObject")]
