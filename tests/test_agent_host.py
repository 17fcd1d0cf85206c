"""What the host gives instances: per-host capacity (reservations, never overcommitted, idle eviction,
429 naming the host capacity), the network (internet_access, custom_dns), log_config's logstore file, and the
stored-only fields (tags, description, times)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import pytest
from _agent import burst, deploy, install, instances, post, wait_for

from fc_lab import Lab
from fc_provider import AgentAPIError
from fc_provider._remote import fleetops as ops

SLEEPY = "import time\n\ndef handler(event, context):\n    time.sleep(1)\n    return 'done'\n"
NOOP = "def handler(event, context):\n    return 'ok'\n"


@pytest.fixture(scope="module")
def small_host(lab: Lab, lab_fleet: dict) -> Iterator[ops.FleetConnection]:
    """The agent on the second lab host, told the host holds 1 vCPU and 1024 MB: two 512 MB instances."""
    conn = install(lab_fleet, 1, capacity_cpu=1.0, capacity_memory_mb=1024)
    yield conn
    ops.uninstall_agent(conn, conn.hosts[0])


@pytest.fixture(scope="module")
def agent_conn(lab: Lab, lab_fleet: dict) -> Iterator[ops.FleetConnection]:
    conn = install(lab_fleet, 0)
    yield conn
    ops.uninstall_agent(conn, conn.hosts[0])


def _info(conn: ops.FleetConnection) -> dict:
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        return agent.wait_healthy()


def test_a_host_never_runs_more_than_its_capacity_and_evicts_idle_instances_for_another_function(
        small_host: ops.FleetConnection, lab: Lab, tmp_path: Path) -> None:
    # A function with min_instances holds its reservation and is never evicted.
    deploy(small_host, tmp_path / "pinned", "pinned", NOOP, memory_size=512, min_instances=1)
    wait_for(lambda: [i for i in instances(small_host, "pinned") if i["state"] == "ready"], "the pinned instance")
    url = deploy(small_host, tmp_path / "big", "big", SLEEPY, memory_size=512, max_instances=10, queue_timeout=2,
                 timeout=5)
    results, peak = burst(lab, small_host, url, 8, None)
    answered = [r for r in results if r[0] == 200]
    throttled = [r for r in results if r[0] == 429]
    assert answered and throttled and len(answered) + len(throttled) == 8
    for _, headers, body in throttled:
        error = json.loads(body)
        assert error["Code"] == "ResourceThrottled" and "host capacity" in error["Message"], error
        assert error["RequestId"] == headers["x-fc-request-id"]
    assert peak == 2  # pinned + one 512 MB instance of big: 1024 MB, never more
    assert len(instances(small_host, "big")) == 1
    info = _info(small_host)
    assert info["capacity"] == {"cpu": 1.0, "memory_mb": 1024}
    assert info["in_use"] == {"cpu": 0.5, "memory_mb": 1024}
    assert info["committed"] == {"cpu": 0.5, "memory_mb": 1024}  # max(min_instances, 1) x size per function

    # Another function does not fit: big's idle instance (beyond its min_instances of 0) is evicted for it.
    other = deploy(small_host, tmp_path / "other", "other", NOOP, memory_size=512)
    status, _, body = post(other)
    assert status == 200 and body == b"ok", body
    assert instances(small_host, "big") == []
    assert len(instances(small_host, "pinned")) == 1
    with ops.agent_session(small_host, small_host.hosts[0]) as (_ssh, agent):
        metrics = agent.metrics()
        with pytest.raises(AgentAPIError) as too_big:
            agent.put_function("huge", {"runtime": "custom-container", "memory_size": 2048,
                                        "custom_container_config": {"image": "fc-runtime/python3.11"}})
    assert "fc_host_reserved_memory_mb 1024.0" in metrics and "fc_host_capacity_cpu 1.0" in metrics
    assert too_big.value.code == "InsufficientCapacity" and "1024 MB" in str(too_big.value)

    # min_instances are a commitment: the idle instance of "other" makes way for a new pinned function.
    deploy(small_host, tmp_path / "pinned2", "pinned2", NOOP, memory_size=512, min_instances=1)
    wait_for(lambda: [i for i in instances(small_host, "pinned2") if i["state"] == "ready"], "room for pinned2")
    assert instances(small_host, "other") == [] and len(instances(small_host, "pinned")) == 1


def test_without_internet_access_an_instance_reaches_no_other_host_but_the_agent_reaches_it(
        agent_conn: ops.FleetConnection, lab_fleet: dict, tmp_path: Path) -> None:
    other = lab_fleet["hosts"][1]
    probe = ("import os, socket\n\ndef handler(event, context):\n    try:\n"
             "        socket.create_connection((os.environ['TARGET'], int(os.environ['PORT'])), timeout=2).close()\n"
             "        return 'reached'\n    except OSError as exc:\n        return f'blocked: {exc}'\n")
    env = {"TARGET": other["address"], "PORT": str(other["port"])}
    open_url = deploy(agent_conn, tmp_path / "open", "net-open", probe, environment_variables=env, timeout=5)
    closed_url = deploy(agent_conn, tmp_path / "closed", "net-closed", probe, environment_variables=env, timeout=5,
                        internet_access=False)
    assert post(open_url)[2] == b"reached"
    status, headers, body = post(closed_url)
    assert status == 200 and "x-fc-error-type" not in headers and body.startswith(b"blocked"), body


def test_custom_dns_is_the_instance_resolver_configuration(agent_conn: ops.FleetConnection, lab_fleet: dict,
                                                          tmp_path: Path) -> None:
    server = lab_fleet["hosts"][2]["address"]
    url = deploy(agent_conn, tmp_path, "dns", "def handler(event, context):\n    return open('/etc/resolv.conf').read()\n",
                 custom_dns={"name_servers": [server], "searches": ["fc.internal"],
                             "dns_options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}]})
    resolv = post(url)[2].decode()
    assert f"nameserver {server}" in resolv and "search fc.internal" in resolv
    assert "ndots:2" in resolv and "rotate" in resolv


def test_log_config_appends_each_invocation_as_json_lines(agent_conn: ops.FleetConnection, lab: Lab,
                                                         tmp_path: Path) -> None:
    url = deploy(agent_conn, tmp_path, "logged", "def handler(event, context):\n    print('hello logstore')\n"
                 "    return 'ok'\n", log_config={"project": "proj", "logstore": "store",
                                                "enable_request_metrics": False, "log_begin_rule": "None"})
    request_ids = [post(url)[1]["x-fc-request-id"] for _ in range(2)]
    text = lab.run(agent_conn.hosts[0].name, ["cat", "/var/lib/fc-agent/logs/proj/store.jsonl"],
                   capture_output=True, text=True, check=True).stdout
    lines = [json.loads(line) for line in text.splitlines()]
    assert {line["requestId"] for line in lines} == set(request_ids)
    first = [line for line in lines if line["requestId"] == request_ids[0]]
    assert [line["message"] for line in first] == [f"FC Invoke Start RequestId: {request_ids[0]}", "hello logstore",
                                                    f"FC Invoke End RequestId: {request_ids[0]}"]
    assert set(first[0]) == {"requestId", "functionName", "qualifier", "instanceId", "time", "message"}
    assert first[0]["functionName"] == "logged" and first[0]["qualifier"] == "LATEST"


def test_tags_and_description_are_stored_and_recycle_no_instance(agent_conn: ops.FleetConnection,
                                                                 tmp_path: Path) -> None:
    url = deploy(agent_conn, tmp_path, "tagged", NOOP, description="first", tags={"team": "a"})
    first = post(url)[1]["x-fc-instance-id"]
    with ops.agent_session(agent_conn, agent_conn.hosts[0]) as (_ssh, agent):
        before = agent.get_function("tagged")
    time.sleep(1.1)  # the times have a resolution of one second
    deploy(agent_conn, tmp_path, "tagged", NOOP, description="second", tags={"team": "b"})
    assert post(url)[1]["x-fc-instance-id"] == first
    with ops.agent_session(agent_conn, agent_conn.hosts[0]) as (_ssh, agent):
        after = agent.get_function("tagged")
        listed = {f["function_name"]: f for f in agent.list_functions()}
    assert after["tags"] == {"team": "b"} and after["description"] == "second"
    assert after["created_time"] == before["created_time"] and after["last_modified_time"] > before["last_modified_time"]
    assert listed["tagged"]["tags"] == {"team": "b"} and after["created_time"].endswith("Z")
