"""GPU functions on the agent, in the lab. There is no GPU here: the lab host declares SIMULATED cards (UUIDs
SIM-GPU-..., source "simulated"), and everything below is about the agent's bookkeeping of those cards (exclusive
leases, admission, queueing and throttling, re-adoption after a crash, hibernation). The one real-engine GPU path
this machine can run is the start of a container with an NVIDIA device request: this dockerd (20.10, runc only)
creates it and refuses to start it, and the agent names that "no GPU runtime"."""

from __future__ import annotations

import json
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import pytest
from _agent import deploy_container, install, instances, post, wait_for

from fc_lab import Lab
from fc_provider import AgentAPIError
from fc_provider._remote import commands as cmd
from fc_provider._remote import fleetops as ops
from fc_provider._remote.ssh import SSHSession
from runtime_agent.instances.driver import ContainerSpec, DockerDriver, GpuRuntimeMissing

SIMULATED = {"simulated": [{"type": "fc.gpu.tesla.1", "count": 2}]}
IMAGE = "fc-runtime/python3.11"
# Answers with what the container was given; "slow" holds the instance for a while.
GPU_SERVER = """
import json, os, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def do_POST(self):
        event = self.rfile.read(int(self.headers.get("content-length") or 0))
        if event == b"slow":
            time.sleep(0.6)
        body = json.dumps({k: os.environ.get(k) for k in
                           ("NVIDIA_VISIBLE_DEVICES", "FC_GPU_UUIDS", "FC_GPU_SIMULATED")}).encode()
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers()
        self.wfile.write(body)
ThreadingHTTPServer(("0.0.0.0", int(os.environ["FC_SERVER_PORT"])), H).serve_forever()
"""
TESLA = {"gpu_type": "fc.gpu.tesla.1", "gpu_memory_size": 16384}


def gpu_function(conn: ops.FleetConnection, name: str, **spec: object) -> str:
    spec = {"cpu": 0.25, "memory_size": 256, "gpu_config": TESLA, **spec}
    return deploy_container(conn, name, custom_container_config={
        "image": IMAGE, "port": 9000, "entrypoint": ["python3", "-u", "-c"], "command": [GPU_SERVER]}, **spec)


def info(conn: ops.FleetConnection) -> dict:
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        return agent.raw("GET", "/v1/info")[1]


def delete(conn: ops.FleetConnection, name: str) -> None:
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        agent.delete_function(name)


@pytest.fixture(scope="module")
def gpu_conn(lab_fleet: dict) -> Iterator[ops.FleetConnection]:
    """The agent on lab host 1, declaring two simulated fc.gpu.tesla.1 cards."""
    conn = install(lab_fleet, 1, gpus=SIMULATED, capacity_cpu=8, capacity_memory_mb=65536)
    yield conn
    ops.uninstall_agent(conn, conn.hosts[0])


def test_simulated_cards_are_named_as_such_in_info_and_metrics(gpu_conn: ops.FleetConnection) -> None:
    host = gpu_conn.hosts[0].name
    gpus = info(gpu_conn)["gpus"]
    assert gpus["source"] == "simulated" and gpus["simulated"] is True and gpus["error"] is None
    assert gpus["support"]["mode"] == "simulated"
    assert [(c["uuid"], c["name"], c["leased_by"]) for c in gpus["cards"]] == [
        (f"SIM-GPU-{host}-0", "SIMULATED fc.gpu.tesla.1", None), (f"SIM-GPU-{host}-1", "SIMULATED fc.gpu.tesla.1",
                                                                  None)]
    assert gpus["types"] == {"fc.gpu.tesla.1": {"total": 2, "leased": 0, "committed": 0, "reserved": 0}}
    with ops.agent_session(gpu_conn, gpu_conn.hosts[0]) as (_ssh, agent):
        text = agent.metrics()
    assert 'fc_gpu_cards{gpu_type="fc.gpu.tesla.1",source="simulated",state="free"} 2.0' in text


def test_a_burst_never_over_assigns_cards_then_throttles(gpu_conn: ops.FleetConnection, lab: Lab) -> None:
    url = gpu_function(gpu_conn, "sd", max_instances=10, queue_timeout=1)
    host = gpu_conn.hosts[0].name
    client = lab.docker_client(host)
    seen: dict[str, set[str]] = {}  # container id -> the cards it was given
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            live = client.containers.list(filters={"label": "fc.function=sd"})
            peak[0] = max(peak[0], len(live))
            for c in live:
                seen[c.id] = set(c.labels.get("fc.gpu.uuids", "").split(","))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            results = list(pool.map(lambda _: post(url, b"slow"), range(12)))
    finally:
        stop.set()
        sampler.join()
    answered = [json.loads(r[2]) for r in results if r[0] == 200]
    throttled = [json.loads(r[2]) for r in results if r[0] == 429]
    assert len(answered) + len(throttled) == 12, [r[2][:200] for r in results if r[0] not in (200, 429)]
    assert answered and throttled  # 2 cards, 0.6 s per request, 1 s of queue: not all 12 fit
    for error in throttled:
        assert error["Code"] == "ResourceThrottled" and "GPU cards exhausted" in error["Message"], error
        assert "fc.gpu.tesla.1" in error["Message"]
    assert peak[0] <= 2 and len(instances(gpu_conn, "sd")) <= 2  # counted: never a third instance
    assert {a["FC_GPU_SIMULATED"] for a in answered} == {"1"}
    assert {a["NVIDIA_VISIBLE_DEVICES"] for a in answered} == {"void"}  # simulated: no card is exposed
    given = [a["FC_GPU_UUIDS"] for a in answered]
    assert set(given) <= {f"SIM-GPU-{host}-0", f"SIM-GPU-{host}-1"}
    # No two live containers ever held the same card.
    holders: dict[str, str] = {}
    live_ids = {c.id for c in client.containers.list(filters={"label": "fc.function=sd"})}
    for cid, cards in seen.items():
        if cid in live_ids:
            for card in cards:
                assert holders.setdefault(card, cid) == cid
    for c in client.containers.list(filters={"label": "fc.function=sd"}):
        assert c.attrs["HostConfig"]["DeviceRequests"] is None  # simulated: no device request at all
        assert c.labels["fc.gpu.simulated"] == "true"
    client.close()
    delete(gpu_conn, "sd")
    wait_for(lambda: info(gpu_conn)["gpus"]["types"]["fc.gpu.tesla.1"]["leased"] == 0, "the cards to return")


def test_a_cpu_container_never_sees_a_card_even_if_it_asks(gpu_conn: ops.FleetConnection) -> None:
    url = deploy_container(gpu_conn, "plain", cpu=0.25, memory_size=256,
                           environment_variables={"NVIDIA_VISIBLE_DEVICES": "all"}, custom_container_config={
                               "image": IMAGE, "port": 9000, "entrypoint": ["python3", "-u", "-c"],
                               "command": [GPU_SERVER]})
    status, _, body = post(url, b"x")
    assert status == 200 and json.loads(body) == {"NVIDIA_VISIBLE_DEVICES": "void", "FC_GPU_UUIDS": None,
                                                  "FC_GPU_SIMULATED": None}
    delete(gpu_conn, "plain")


def test_a_function_asking_more_cards_than_the_host_has_is_refused(gpu_conn: ops.FleetConnection) -> None:
    with pytest.raises(AgentAPIError, match="needs 3 fc.gpu.tesla.1 card.*has 2 .simulated"):
        gpu_function(gpu_conn, "big", gpu_config={"gpu_type": "fc.gpu.tesla.1", "gpu_memory_size": 3 * 16384})
    with pytest.raises(AgentAPIError, match="needs 1 fc.gpu.ada.1 card.*has 0"):
        deploy_container(gpu_conn, "ada", cpu=4, memory_size=32768, gpu_config={
            "gpu_type": "fc.gpu.ada.1", "gpu_memory_size": 49152}, custom_container_config={"image": IMAGE})


def test_a_killed_agent_re_adopts_gpu_instances_with_their_cards_and_frozen_ones_keep_theirs(
        gpu_conn: ops.FleetConnection, lab: Lab) -> None:
    url = gpu_function(gpu_conn, "kept", min_instances=2, max_instances=2, hibernation=True,
                       hibernation_grace_seconds=0.5)
    wait_for(lambda: len([i for i in instances(gpu_conn, "kept") if i["state"] == "frozen"]) == 2,
             "two hibernated instances")
    before = {i["instance_id"]: i["gpus"] for i in instances(gpu_conn, "kept")}
    assert sorted(c for cards in before.values() for c in cards) == [
        f"SIM-GPU-{gpu_conn.hosts[0].name}-0", f"SIM-GPU-{gpu_conn.hosts[0].name}-1"]
    # Frozen instances hold their cards: another GPU function finds none free and is throttled.
    other = gpu_function(gpu_conn, "other", queue_timeout=0.5)
    status, _, body = post(other, b"x")
    assert status == 429 and "GPU cards exhausted" in json.loads(body)["Message"]
    delete(gpu_conn, "other")
    host = gpu_conn.hosts[0].name
    lab.run(host, ["sh", "-c", "kill -9 $(cat /var/lib/fc-agent/agent.pid)"], check=True)
    with SSHSession(gpu_conn.hosts[0], gpu_conn.private_key) as ssh:
        ssh.run(cmd.start_agent())
    with ops.agent_session(gpu_conn, gpu_conn.hosts[0]) as (_ssh, agent):
        agent.wait_healthy()
    after = {i["instance_id"]: i["gpus"] for i in instances(gpu_conn, "kept")}
    assert after == before
    types = info(gpu_conn)["gpus"]["types"]["fc.gpu.tesla.1"]
    assert types["leased"] == 2 and types["committed"] == 2
    status, headers, body = post(url, b"x")
    assert status == 200 and headers["x-fc-instance-id"] in before
    assert json.loads(body)["FC_GPU_UUIDS"] == before[headers["x-fc-instance-id"]][0]
    delete(gpu_conn, "kept")


def test_a_host_declaring_real_gpus_without_nvml_reports_the_error_and_refuses_gpu_functions(
        lab_fleet: dict) -> None:
    conn = install(lab_fleet, 2, gpus={"type": "fc.gpu.tesla.1"})
    try:
        gpus = info(conn)["gpus"]
        assert gpus["source"] == "nvml" and gpus["simulated"] is False and gpus["cards"] == []
        assert "NVML failed on a host that declares real GPUs: NVML Shared Library Not Found" in gpus["error"]
        with pytest.raises(AgentAPIError, match="GpuUnavailable|cannot read its cards: NVML failed"):
            gpu_function(conn, "nogpu")
    finally:
        ops.uninstall_agent(conn, conn.hosts[0])


def test_the_exact_device_request_and_the_real_no_gpu_runtime_failure(lab: Lab, lab_fleet: dict) -> None:
    """The real path on this machine's engine: a container asking for one card by UUID."""
    host = lab_fleet["hosts"][2]["name"]
    driver = DockerDriver(f"unix://{lab._spec_by_name(host).docker_socket}")  # the host's own dockerd
    uuid = "GPU-5f3c2a1e-8b7d-4c6e-9a0f-1d2e3f4a5b6c"
    spec = ContainerSpec(name=f"fc-gpu-probe-{secrets.token_hex(3)}", image=IMAGE, command=["sleep", "30"],
                         environment={"NVIDIA_VISIBLE_DEVICES": uuid}, labels={"fc.agent": "gpu-probe"},
                         read_only_binds={}, memory_mb=128, cpu=0.1, tmp_size_mb=16, gpu_driver="nvidia",
                         gpu_device_ids=(uuid,))
    created = driver.create(spec)
    client = lab.docker_client(host)
    try:
        requests = client.api.inspect_container(created)["HostConfig"]["DeviceRequests"]
        assert requests == [{"Driver": "nvidia", "Count": 0, "DeviceIDs": [uuid], "Capabilities": [["gpu"]],
                             "Options": {}}]
    finally:
        driver.destroy(created)
    with pytest.raises(GpuRuntimeMissing, match='no GPU runtime: dockerd has no \'nvidia\' device driver.*'
                                                'could not select device driver "nvidia".*nvidia-ctk'):
        driver.start(spec)
    assert client.containers.list(all=True, filters={"name": spec.name}) == []  # the failed start left nothing
    client.close()


def test_a_provision_config_keeps_its_target_started_with_cards(gpu_conn: ops.FleetConnection) -> None:
    gpu_function(gpu_conn, "warm", max_instances=4)
    with ops.agent_session(gpu_conn, gpu_conn.hosts[0]) as (_ssh, agent):
        body = agent.put_provision_config("warm", {"target": 1, "scheduled_actions": [
            {"name": "always", "target": 2, "schedule_expression": "cron(* * * * * *)"}]}, 0, [gpu_conn.hosts[0].name])
        assert body["fleet_target"] == 2 and body["host_target"] == 2, body
        with pytest.raises(AgentAPIError, match=r"target_tracking_policies\[0\].metric_target must be in \(0, 1\]"):
            agent.put_provision_config("warm", {"target_tracking_policies": [
                {"name": "p", "metric_type": "GPUMemUtilization", "metric_target": 2, "max_capacity": 2}]}, 0,
                [gpu_conn.hosts[0].name])
    wait_for(lambda: len([i for i in instances(gpu_conn, "warm") if i["state"] == "ready"]) == 2,
             "two provisioned instances")
    assert sorted(c for i in instances(gpu_conn, "warm") for c in i["gpus"]) == [
        f"SIM-GPU-{gpu_conn.hosts[0].name}-0", f"SIM-GPU-{gpu_conn.hosts[0].name}-1"]
    with ops.agent_session(gpu_conn, gpu_conn.hosts[0]) as (_ssh, agent):
        body = agent.get_provision_config("warm")
        assert body["current"] == 2 and body["current_error"] is None
        agent.delete_provision_config("warm")
        assert agent.get_provision_config("warm") is None
    delete(gpu_conn, "warm")


def put_pool(conn: ops.FleetConnection, name: str, **body: object) -> dict:
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        return agent.put_gpu_pool(name, body)


def test_a_gpu_pool_reserves_cards_serves_its_functions_and_throttles_at_instances_x_concurrency(
        gpu_conn: ops.FleetConnection) -> None:
    host = gpu_conn.hosts[0].name
    with pytest.raises(AgentAPIError, match="GpuPoolTooLarge.*wants 3 fc.gpu.tesla.1 card.*has 2 .simulated"):
        put_pool(gpu_conn, "p1", gpu_type="fc.gpu.tesla.1", cards=3, functions=["pooled"])
    pool = put_pool(gpu_conn, "p1", gpu_type="fc.gpu.tesla.1", cards=1, functions=["pooled"])
    assert pool["cards"] == [f"SIM-GPU-{host}-0"] and pool["simulated"] is True and pool["free"] == 1
    url = gpu_function(gpu_conn, "pooled", instance_concurrency=2, max_instances=4, queue_timeout=0.5)
    # The pool's resident instance is started without a request, on the pool's card.
    wait_for(lambda: [i for i in instances(gpu_conn, "pooled") if i["state"] == "ready"], "the resident instance")
    assert [i["gpus"] for i in instances(gpu_conn, "pooled")] == [[f"SIM-GPU-{host}-0"]]
    with ThreadPoolExecutor(max_workers=6) as pool_threads:
        results = list(pool_threads.map(lambda _: post(url, b"slow"), range(6)))
    answered = [r for r in results if r[0] == 200]
    throttled = [json.loads(r[2]) for r in results if r[0] == 429]
    assert len(answered) == 2 and len(throttled) == 4, [r[0] for r in results]  # 1 instance x concurrency 2
    assert all("GPU pool p1 exhausted" in t["Message"] for t in throttled), throttled[0]
    assert len(instances(gpu_conn, "pooled")) == 1
    # Unbound functions never take a pool's card; the other card stays theirs.
    other = gpu_function(gpu_conn, "unbound", queue_timeout=0.5)
    status, _, body = post(other, b"x")
    assert status == 200 and json.loads(body)["FC_GPU_UUIDS"] == f"SIM-GPU-{host}-1"
    delete(gpu_conn, "unbound")
    # Mixed mode: beyond the pool, elastic instances on free unreserved cards.
    put_pool(gpu_conn, "p1", gpu_type="fc.gpu.tesla.1", cards=1, functions=["pooled"], mix_mode=True)
    url = gpu_function(gpu_conn, "pooled", instance_concurrency=2, max_instances=4, queue_timeout=10)  # a cold start
    with ThreadPoolExecutor(max_workers=4) as pool_threads:
        results = list(pool_threads.map(lambda _: post(url, b"slow"), range(4)))
    assert [r[0] for r in results] == [200] * 4
    assert sorted(c for i in instances(gpu_conn, "pooled") for c in i["gpus"]) == [
        f"SIM-GPU-{host}-0", f"SIM-GPU-{host}-1"]
    delete(gpu_conn, "pooled")
    with ops.agent_session(gpu_conn, gpu_conn.hosts[0]) as (_ssh, agent):
        agent.delete_gpu_pool("p1")
        assert agent.get_gpu_pool("p1") is None
