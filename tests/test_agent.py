"""The runtime agent and the provider's SSH layer, driven directly on the lab (no Pulumi): strict host keys,
timeouts that recycle the instance, the FC error shapes, and the hardening of instance containers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from _agent import SICKENING_SERVER, WEB_SERVER, burst, container_of, install, instance_containers
from _agent import deploy as _deploy
from _agent import instances as _instances
from _agent import post as _post
from _agent import wait_for as _wait_for

from fc_lab import Lab
from fc_provider import HostKeyMismatch
from fc_provider._remote import fleetops as ops
from fc_provider._remote.ssh import HostSpec, SSHSession


def _host(fleet: dict, index: int, **override: str) -> HostSpec:
    h = fleet["hosts"][index]
    return HostSpec(h["name"], h["address"], h["port"], fleet["ssh_user"],
                    override.get("host_public_key", h["host_public_key"]))


def test_ssh_refuses_a_host_whose_key_differs(lab_fleet: dict) -> None:
    key = Path(lab_fleet["ssh_private_key_path"]).read_text()
    wrong = _host(lab_fleet, 0, host_public_key=lab_fleet["hosts"][1]["host_public_key"])
    with pytest.raises(HostKeyMismatch) as info:
        with SSHSession(wrong, key):
            pass
    assert lab_fleet["hosts"][0]["name"] in str(info.value)
    with SSHSession(_host(lab_fleet, 0), key) as ssh:  # the right key connects
        assert ssh.run(["true"]).exit_status == 0


@pytest.fixture(scope="module")
def agent_conn(lab: Lab, lab_fleet: dict) -> Iterator[ops.FleetConnection]:
    """The agent installed on the first lab host by the provider's own fleet operations."""
    conn = install(lab_fleet)
    yield conn
    ops.uninstall_agent(conn, conn.hosts[0])


def test_a_connection_without_a_token_reads_it_from_the_host(agent_conn: ops.FleetConnection) -> None:
    """What the `fc` CLI and a second stack rely on: SSH access is the credential; the token stays on the host."""
    tokenless = ops.FleetConnection(agent_conn.hosts, agent_conn.private_key, "", agent_conn.control_port,
                                    agent_conn.invoke_port)
    with ops.agent_session(tokenless, tokenless.hosts[0]) as (_ssh, agent):
        assert agent.health()


def test_unknown_function_is_a_platform_error_in_fc_shape(agent_conn: ops.FleetConnection) -> None:
    url = f"http://{agent_conn.hosts[0].address}:9000/2023-03-30/functions/no-such-fn/invocations"
    status, headers, body = _post(url)
    assert status == 404
    error = json.loads(body)
    assert error["Code"] == "FunctionNotFound" and error["RequestId"] == headers["x-fc-request-id"]


def test_a_timeout_returns_an_error_and_recycles_the_instance(agent_conn: ops.FleetConnection,
                                                              tmp_path: Path) -> None:
    source = ("import time\n\ndef handler(event, context):\n"
              "    if event == b'slow':\n        time.sleep(30)\n    return context.request_id\n")
    url = _deploy(agent_conn, tmp_path, "sleepy", source, timeout=1)
    status, first, _ = _post(url, b"fast")
    assert status == 200 and "x-fc-error-type" not in first
    status, headers, body = _post(url, b"slow")
    assert status == 200 and headers["x-fc-error-type"] == "UnhandledInvocationError"
    assert "timed out" in json.loads(body)["errorMessage"]
    status, after, _ = _post(url, b"fast")
    assert status == 200 and after["x-fc-instance-id"] != first["x-fc-instance-id"]


def test_log_tail_is_returned_when_asked(agent_conn: ops.FleetConnection, tmp_path: Path) -> None:
    import base64

    url = _deploy(agent_conn, tmp_path, "chatty", "def handler(event, context):\n    print('said hello')\n    return 'ok'\n")
    _, headers, _ = _post(url, b"", {"x-fc-log-type": "Tail"})
    assert "said hello" in base64.b64decode(headers["x-fc-log-result"]).decode()
    _, headers, _ = _post(url, b"")
    assert "x-fc-log-result" not in headers
    with ops.agent_session(agent_conn, agent_conn.hosts[0]) as (_ssh, agent):
        (entry,) = agent.logs(request_id=headers["x-fc-request-id"])  # kept by request id all the same
        assert "said hello" in entry["log"] and entry["function_name"] == "chatty"
        assert agent.logs(function="chatty")[0]["request_id"] == headers["x-fc-request-id"]


def test_instance_containers_are_hardened(agent_conn: ops.FleetConnection, lab: Lab, tmp_path: Path) -> None:
    url = _deploy(agent_conn, tmp_path, "hardened", "def handler(event, context):\n    return 'ok'\n",
                  memory_size=256, disk_size=512)
    _, headers, _ = _post(url)
    # Born for it or a stem cell: a cell's limits reach the engine just after its hand-over (the kernel has them).
    container = _wait_for(lambda: (c := container_of(lab, agent_conn, headers["x-fc-instance-id"]))
                          .attrs["HostConfig"]["Memory"] == 256 * 1024 * 1024 and c, "the engine to show the limits")
    hc = container.attrs["HostConfig"]
    assert container.attrs["Config"]["User"] == "65534:65534"
    assert hc["Privileged"] is False
    assert hc["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in hc["SecurityOpt"]
    assert hc["ReadonlyRootfs"] is True
    assert hc["Memory"] == 256 * 1024 * 1024
    assert hc["PidsLimit"] and hc["PidsLimit"] > 0
    assert hc["CpuQuota"] == 12500 and hc["CpuPeriod"] == 100000  # 256 MB: 1/8 vCPU once started
    assert hc["Tmpfs"]["/tmp"].startswith("size=512m")
    code_mount = [m for m in container.attrs["Mounts"] if m["Destination"] == "/code"]
    assert code_mount and code_mount[0]["RW"] is False


def _freezer_state(lab: Lab, conn: ops.FleetConnection, instance_id: str) -> str:
    pid = container_of(lab, conn, instance_id).attrs["State"]["Pid"]
    line = next(x for x in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if ":freezer:" in x)
    return Path("/sys/fs/cgroup/freezer", line.split(":", 2)[2].lstrip("/"), "freezer.state").read_text().strip()


def test_min_instances_are_kept_ready_before_the_first_request(agent_conn: ops.FleetConnection,
                                                                tmp_path: Path) -> None:
    url = _deploy(agent_conn, tmp_path, "kept", "def handler(event, context):\n    return 'ok'\n", min_instances=1)
    (ready,) = _wait_for(lambda: [i for i in _instances(agent_conn, "kept") if i["state"] == "ready"],
                         "a pre-warmed instance")
    _, headers, _ = _post(url)
    assert headers["x-fc-instance-id"] == ready["instance_id"]  # served warm: no cold start


def test_idle_instance_hibernates_and_the_next_request_resumes_it(agent_conn: ops.FleetConnection, lab: Lab,
                                                                  tmp_path: Path) -> None:
    url = _deploy(agent_conn, tmp_path, "sleeper", "def handler(event, context):\n    return 'awake'\n",
                  min_instances=1, hibernation=True, hibernation_grace_seconds=0.5)
    _, first, body = _post(url)
    assert body == b"awake"
    instance_id = first["x-fc-instance-id"]
    _wait_for(lambda: [i for i in _instances(agent_conn, "sleeper") if i["state"] == "frozen"], "hibernation")
    assert _freezer_state(lab, agent_conn, instance_id) == "FROZEN"
    _, again, body = _post(url)
    assert body == b"awake" and again["x-fc-instance-id"] == instance_id
    (inst,) = _instances(agent_conn, "sleeper")
    assert inst["resumes"] >= 1
    assert inst["seconds"]["hibernated"] > 0 and inst["seconds"]["active"] > 0


def test_agent_killed_with_sigkill_re_adopts_its_instances(agent_conn: ops.FleetConnection, lab: Lab,
                                                           tmp_path: Path) -> None:
    url = _deploy(agent_conn, tmp_path, "survivor", "def handler(event, context):\n    return 'alive'\n",
                  min_instances=1, hibernation=True, hibernation_grace_seconds=0.5)
    _, before, _ = _post(url)
    _wait_for(lambda: [i for i in _instances(agent_conn, "survivor") if i["state"] == "frozen"], "hibernation")
    # The first request came while min_instances was pre-warming: it took that instance and started no other.
    assert len(_instances(agent_conn, "survivor")) == 1
    host = agent_conn.hosts[0].name
    # An orphan with our labels that the agent's state cannot account for must go.
    client = lab.docker_client(host)
    try:
        orphan = client.containers.run("fc-runtime/python3.11", ["sleep", "300"], detach=True,
                                       labels={"fc.agent": host, "fc.instance": "orphan"})
    finally:
        client.close()
    lab.run(host, ["sh", "-c", "kill -9 $(cat /var/lib/fc-agent/agent.pid)"], check=True)
    # Nobody starts it: its supervisor does.
    with ops.agent_session(agent_conn, agent_conn.hosts[0]) as (_ssh, agent):
        agent.wait_healthy()
    (inst,) = _instances(agent_conn, "survivor")
    assert inst["instance_id"] == before["x-fc-instance-id"] and inst["state"] == "frozen"
    _, after, body = _post(url)
    assert body == b"alive" and after["x-fc-instance-id"] == before["x-fc-instance-id"]
    client = lab.docker_client(host)
    try:
        ours = [c for c in client.containers.list(all=True) if c.labels.get("fc.agent") == host]
        assert orphan.id not in [c.id for c in ours]
        survivors = instance_containers(client, host, "survivor", all=True)
        assert list(survivors) == [before["x-fc-instance-id"]]  # one container, the instance's: none duplicated
    finally:
        client.close()


def test_a_burst_never_exceeds_max_instances_and_every_request_is_answered_or_throttled(
        agent_conn: ops.FleetConnection, lab: Lab, tmp_path: Path) -> None:
    url = _deploy(agent_conn, tmp_path, "burst", "import time\n\ndef handler(event, context):\n"
                  "    time.sleep(0.2)\n    return 'done'\n", max_instances=5, queue_timeout=3)
    results, peak = burst(lab, agent_conn, url, 500, "burst")
    answered = [r for r in results if r[0] == 200]
    throttled = [r for r in results if r[0] == 429]
    assert len(answered) + len(throttled) == 500, [r[2][:300] for r in results if r[0] not in (200, 429)][:3]
    assert all(r[2] == b"done" for r in answered)
    for _, headers, body in throttled:
        error = json.loads(body)
        assert error["Code"] == "ResourceThrottled" and "max_instances" in error["Message"]
        assert error["RequestId"] == headers["x-fc-request-id"]
    assert answered and throttled
    assert 1 <= peak <= 5
    assert len(_instances(agent_conn, "burst")) <= 5


HOOKED = """
import os, time

def init(context):
    if os.environ.get('INIT_FAILS'):
        raise RuntimeError('initializer refused')
    with open('/tmp/initialized', 'w') as f:
        f.write(context.request_id)

def bye(context):
    print('pre_stop ran for', context.request_id)

def handler(event, context):
    return open('/tmp/initialized').read()
"""
HOOKS = {"initializer": {"handler": "index.init", "timeout": 5}, "pre_stop": {"handler": "index.bye", "timeout": 5}}


def test_initializer_runs_once_before_the_first_invocation(agent_conn: ops.FleetConnection, tmp_path: Path) -> None:
    url = _deploy(agent_conn, tmp_path, "hooked", HOOKED, instance_lifecycle_config=HOOKS)
    _, headers, body = _post(url)
    assert "x-fc-error-type" not in headers and body.decode().startswith("init-")
    _, again, body2 = _post(url)
    assert again["x-fc-instance-id"] == headers["x-fc-instance-id"] and body2 == body  # ran once


def test_a_failing_initializer_fails_the_invocation_and_discards_the_instance(
        agent_conn: ops.FleetConnection, lab: Lab, tmp_path: Path) -> None:
    url = _deploy(agent_conn, tmp_path, "badinit", HOOKED, instance_lifecycle_config=HOOKS,
                  environment_variables={"INIT_FAILS": "1"})
    status, headers, body = _post(url)
    assert status == 200 and headers["x-fc-error-type"] == "UnhandledInvocationError"
    error = json.loads(body)
    assert error["errorMessage"] == "initializer refused" and error["errorType"] == "RuntimeError"
    assert _instances(agent_conn, "badinit") == []
    client = lab.docker_client(agent_conn.hosts[0].name)
    try:
        assert instance_containers(client, agent_conn.hosts[0].name, "badinit", all=True) == {}
    finally:
        client.close()


def test_idle_instances_scale_to_zero_and_come_back_cold(agent_conn: ops.FleetConnection, lab: Lab,
                                                             tmp_path: Path) -> None:
    url = _deploy(agent_conn, tmp_path, "fleeting", HOOKED, instance_lifecycle_config=HOOKS,
                  idle_timeout_seconds=1)
    _, headers, _ = _post(url)
    instance_id = headers["x-fc-instance-id"]
    container_of(lab, agent_conn, instance_id)  # it runs
    client = lab.docker_client(agent_conn.hosts[0].name)
    try:
        _wait_for(lambda: _instances(agent_conn, "fleeting") == [], "scale to zero", timeout=30)
        assert instance_containers(client, agent_conn.hosts[0].name, "fleeting", all=True) == {}
    finally:
        client.close()
    _, again, _ = _post(url)  # a cold start brings it back
    assert again["x-fc-instance-id"] != instance_id


def test_metrics_count_invocations_starts_and_instances(agent_conn: ops.FleetConnection, tmp_path: Path) -> None:
    url = _deploy(agent_conn, tmp_path, "counted", "def handler(event, context):\n    return 'ok'\n")
    for _ in range(3):
        _post(url)
    with ops.agent_session(agent_conn, agent_conn.hosts[0]) as (_ssh, agent):
        text = agent.metrics()
        assert agent.raw("GET", "/metrics", token="")[0] == 401
    assert 'fc_invocations_total{function="counted"} 3.0' in text
    assert 'fc_instance_starts_total{function="counted",kind="cold"} 1.0' in text
    assert 'fc_instance_starts_total{function="counted",kind="warm"} 2.0' in text
    assert 'fc_instances{function="counted",state="ready"} 1.0' in text
    assert 'fc_invocation_duration_seconds_count{function="counted"} 3.0' in text


def test_a_web_function_serves_concurrent_requests_up_to_its_instance_concurrency(
        agent_conn: ops.FleetConnection, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    url = _deploy(agent_conn, tmp_path, "web", WEB_SERVER, runtime="custom.debian12", instance_concurrency=3,
                  max_instances=1, queue_timeout=20, timeout=10,
                  custom_runtime_config={"command": ["python3", "-u", "index.py"], "port": 8080})
    with ThreadPoolExecutor(max_workers=7) as pool:
        results = list(pool.map(lambda _: _post(url, b"go"), range(7)))
    assert all(r[0] == 200 and "x-fc-error-type" not in r[1] for r in results), [r[:1] for r in results]
    assert len({r[1]["x-fc-instance-id"] for r in results}) == 1  # max_instances 1
    peaks = [json.loads(r[2])["peak"] for r in results]
    assert max(peaks) == 3  # concurrency was used, and never exceeded inside the instance
    status, headers, body = _post(url, b"fail")
    assert status == 200 and headers["x-fc-error-type"] == "UnhandledInvocationError" and body == b"server says no"


def test_an_instance_that_fails_its_health_check_is_replaced(agent_conn: ops.FleetConnection, tmp_path: Path) -> None:
    health = {"http_get_url": "/health", "initial_delay_seconds": 0, "period_seconds": 1, "timeout_seconds": 1,
              "failure_threshold": 2}
    url = _deploy(agent_conn, tmp_path, "sickly", SICKENING_SERVER, runtime="custom.debian12",
                  custom_runtime_config={"command": ["python3", "index.py"], "port": 9000,
                                         "health_check_config": health})
    _, first, body = _post(url)
    assert body == b"now sick"
    _wait_for(lambda: all(i["instance_id"] != first["x-fc-instance-id"] for i in _instances(agent_conn, "sickly")),
              "the unhealthy instance to be taken out", timeout=30)
    _, second, _ = _post(url)
    assert second["x-fc-instance-id"] != first["x-fc-instance-id"]


def test_concurrent_cold_starts_share_one_start(agent_conn: ops.FleetConnection, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    url = _deploy(agent_conn, tmp_path, "shared", WEB_SERVER, runtime="custom.debian12", instance_concurrency=10,
                  max_instances=5, timeout=10, custom_runtime_config={"command": ["python3", "index.py"]})
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: _post(url, b"go"), range(8)))
    assert all(r[0] == 200 for r in results)
    assert len({r[1]["x-fc-instance-id"] for r in results}) == 1  # one start served all eight
