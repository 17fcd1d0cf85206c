"""MIG devices on the agent, in the lab. No GPU here: lab host 1 declares one SIMULATED fc.gpu.hopper.1 card split
into two 3g.48gb MIG devices (UUIDs SIM-GPU-<host>-0-MIG-<n>) and one whole SIMULATED card. The ledger leases MIG
devices by UUID exactly as cards, and never the card in MIG mode. The real-engine path this machine can run: a MIG
instance's container created with the device request the agent builds from nvidia-smi output in recorded format."""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path
from typing import Iterator

import pytest
from _agent import deploy_container, install, instances, invoke_url, post, wait_for
from test_gpu_agent import GPU_SERVER, IMAGE, delete, info

from fc_common.gpu import GpuNeed, HostGpus
from fc_lab import Lab
from fc_provider._remote import commands as cmd
from fc_provider._remote import fleetops as ops
from fc_provider._remote.ssh import SSHSession
from runtime_agent.instances.driver import ContainerSpec, DockerDriver
from runtime_agent.instances.gpu import HostCards, inventory_for
from runtime_agent.state.cardstore import CardStore

MIG_LAYOUT = {"simulated": [{"type": "fc.gpu.hopper.1", "count": 1, "mig_profiles": ["3g.48gb", "3g.48gb"]},
                            {"type": "fc.gpu.hopper.1", "count": 1}]}
MIG_48 = {"gpu_type": "fc.gpu.hopper.1", "gpu_memory_size": 49152}
WHOLE = {"gpu_type": "fc.gpu.hopper.1", "gpu_memory_size": 98304}
DATA = Path(__file__).parent / "data"


def gpu_function(conn: ops.FleetConnection, name: str, gpu_config: dict, **spec: object) -> str:
    size = {"cpu": 0.25, "memory_size": 256} if gpu_config is MIG_48 else {"cpu": 16, "memory_size": 98304}
    return deploy_container(conn, name, gpu_config=gpu_config, **{**size, **spec}, custom_container_config={
        "image": IMAGE, "port": 9000, "entrypoint": ["python3", "-u", "-c"], "command": [GPU_SERVER]})


@pytest.fixture(scope="module")
def mig_conn(lab_fleet: dict) -> Iterator[ops.FleetConnection]:
    conn = install(lab_fleet, 1, gpus=MIG_LAYOUT, capacity_cpu=64, capacity_memory_mb=524288)
    yield conn
    ops.uninstall_agent(conn, conn.hosts[0])


def test_simulated_mig_devices_are_named_as_such_and_counted_apart_from_whole_cards(
        mig_conn: ops.FleetConnection) -> None:
    host = mig_conn.hosts[0].name
    gpus = info(mig_conn)["gpus"]
    assert gpus["simulated"] is True
    assert [(c["uuid"], c["name"], c["mig_mode"], c["parent_uuid"]) for c in gpus["cards"]] == [
        (f"SIM-GPU-{host}-0", "SIMULATED fc.gpu.hopper.1", True, None),
        (f"SIM-GPU-{host}-0-MIG-0", "SIMULATED fc.gpu.hopper.1 MIG 3g.48gb", False, f"SIM-GPU-{host}-0"),
        (f"SIM-GPU-{host}-0-MIG-1", "SIMULATED fc.gpu.hopper.1 MIG 3g.48gb", False, f"SIM-GPU-{host}-0"),
        (f"SIM-GPU-{host}-1", "SIMULATED fc.gpu.hopper.1", False, None)]
    zero = {"leased": 0, "committed": 0, "reserved": 0}
    assert gpus["types"] == {"fc.gpu.hopper.1/mig-48gb": {"total": 2, **zero},
                             "fc.gpu.hopper.1": {"total": 1, **zero}}  # the card in MIG mode counts nowhere


def test_mig_instances_get_distinct_mig_devices_a_third_throttles_and_whole_cards_never_take_the_parent(
        mig_conn: ops.FleetConnection, lab: Lab) -> None:
    host = mig_conn.hosts[0].name
    migs = [f"SIM-GPU-{host}-0-MIG-0", f"SIM-GPU-{host}-0-MIG-1"]
    gpu_function(mig_conn, "mig", MIG_48, min_instances=2, max_instances=2)
    wait_for(lambda: len([i for i in instances(mig_conn, "mig") if i["state"] == "ready"]) == 2,
             "two MIG instances")
    assert sorted(c for i in instances(mig_conn, "mig") for c in i["gpus"]) == migs  # one device each
    client = lab.docker_client(host)
    for container in client.containers.list(filters={"label": "fc.function=mig"}):
        assert container.labels["fc.gpu.uuids"] in migs and container.attrs["HostConfig"]["DeviceRequests"] is None
    client.close()
    # A third MIG-sized instance (another function) finds no free MIG device of 48 GB: it waits, then throttles.
    third = gpu_function(mig_conn, "mig3", MIG_48, queue_timeout=0.5)
    status, _, body = post(third, b"x")
    error = json.loads(body)
    assert status == 429 and error["Code"] == "ResourceThrottled", error
    assert "GPU cards exhausted: an instance needs one fc.gpu.hopper.1 MIG device of 48 GB" in error["Message"]
    # Whole-card functions take the whole card, never the card in MIG mode (whose devices are busy, not it).
    first = gpu_function(mig_conn, "whole", WHOLE, min_instances=1, queue_timeout=10)  # kept: never evicted
    status, _, body = post(first, b"x")
    assert status == 200 and json.loads(body)["FC_GPU_UUIDS"] == f"SIM-GPU-{host}-1"
    second = gpu_function(mig_conn, "whole2", WHOLE, queue_timeout=0.5)
    status, _, body = post(second, b"x")
    assert status == 429 and "needs 1 fc.gpu.hopper.1 card(s); the host has 1" in json.loads(body)["Message"]
    for name in ("mig3", "whole", "whole2"):
        delete(mig_conn, name)
    types = info(mig_conn)["gpus"]["types"]
    assert types["fc.gpu.hopper.1/mig-48gb"]["leased"] == 2 and types["fc.gpu.hopper.1"]["leased"] == 0


def test_mig_leases_survive_a_killed_agent(mig_conn: ops.FleetConnection, lab: Lab) -> None:
    before = {i["instance_id"]: i["gpus"] for i in instances(mig_conn, "mig")}
    assert len(before) == 2  # the previous test's instances, holding both MIG devices
    lab.run(mig_conn.hosts[0].name, ["sh", "-c", "kill $(cat /var/lib/fc-agent/supervisor.pid) 2>/dev/null; "
                                         "kill -9 $(cat /var/lib/fc-agent/agent.pid)"], check=True)
    with SSHSession(mig_conn.hosts[0], mig_conn.private_key) as ssh:
        ssh.run(cmd.start_agent())
    with ops.agent_session(mig_conn, mig_conn.hosts[0]) as (_ssh, agent):
        agent.wait_healthy()
    assert {i["instance_id"]: i["gpus"] for i in instances(mig_conn, "mig")} == before
    mig = info(mig_conn)["gpus"]["types"]["fc.gpu.hopper.1/mig-48gb"]
    assert mig["leased"] == 2 and mig["committed"] == 2
    status, headers, body = post(invoke_url(mig_conn, "mig"), b"x")
    assert status == 200 and json.loads(body)["FC_GPU_UUIDS"] == before[headers["x-fc-instance-id"]][0]
    delete(mig_conn, "mig")
    wait_for(lambda: info(mig_conn)["gpus"]["types"]["fc.gpu.hopper.1/mig-48gb"]["leased"] == 0,
             "the MIG devices to return")


def _tool(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_the_exact_device_request_of_a_mig_instance(lab: Lab, lab_fleet: dict, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A real-card host as far as this machine allows: nvidia-smi answering with the recorded-format samples (card 0
    in MIG mode), the NVIDIA hook present, the real ledger in SQLite, the host's real dockerd creating the
    container."""
    tools = tmp_path / "bin"
    tools.mkdir()
    _tool(tools, "nvidia-smi", f'case "$1" in -L) cat {DATA / "nvidia-smi-L-mig.txt"};; '
                               f'*) cat {DATA / "nvidia-smi-mig.csv"};; esac\n')
    _tool(tools, "nvidia-container-runtime-hook", "exit 0\n")
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    host = lab_fleet["hosts"][2]["name"]
    driver = DockerDriver(f"unix://{lab._spec_by_name(host).docker_socket}")
    declared = HostGpus(gpu_type="fc.gpu.hopper.1", source="nvidia-smi")
    cards = HostCards(declared, host, CardStore(tmp_path / "agent.db"), inventory_for(declared, host),
                      lambda: {"ServerVersion": "20.10.24", "Runtimes": {"runc": {}}})
    cards.refresh()
    assert cards.error is None and cards.support is not None and cards.support.mode == "nvidia"
    need = GpuNeed("fc.gpu.hopper.1", 1, 20480)  # the sample's 2g.20gb device (an A100 layout)
    mig = "MIG-7d2f8b63-0c4e-5a71-9f3b-2e8d0c1f4a52"
    assert cards.lease("i-1", "fn", need) == [mig]
    assert cards.lease("i-2", "fn", need) is None  # exclusive: the only 20 GB device is held
    whole = GpuNeed("fc.gpu.hopper.1", 1)
    assert cards.lease("i-3", "fn", whole) == ["GPU-1b2c3d4e-5f6a-4b7c-9d8e-0f1a2b3c4d5e"]  # never card 0
    assert cards.lease("i-4", "fn", whole) is None
    base = ContainerSpec(name=f"fc-mig-probe-{secrets.token_hex(3)}", image=IMAGE, command=["sleep", "30"],
                         environment={"NVIDIA_VISIBLE_DEVICES": "void"}, labels={"fc.agent": "gpu-probe"},
                         read_only_binds={}, memory_mb=128, cpu=0.1, tmp_size_mb=16)
    spec = cards.container_spec(base, "i-1")
    assert spec.environment["NVIDIA_VISIBLE_DEVICES"] == mig and spec.labels["fc.gpu.uuids"] == mig
    created = driver.create(spec)
    client = lab.docker_client(host)
    try:
        requests = client.api.inspect_container(created)["HostConfig"]["DeviceRequests"]
        assert requests == [{"Driver": "nvidia", "Count": 0, "DeviceIDs": [mig], "Capabilities": [["gpu"]],
                             "Options": {}}]
    finally:
        driver.destroy(created)
        client.close()
    # After a restart the ledger is rebuilt from the label, and the device stays held.
    again = HostCards(declared, host, CardStore(tmp_path / "agent.db"), inventory_for(declared, host),
                      lambda: {"ServerVersion": "20.10.24", "Runtimes": {"runc": {}}})
    again.refresh()
    again.adopt("i-1", "fn", {"fc.gpu.uuids": mig})
    assert again.leased("i-1") == [mig] and again.lease("i-5", "fn", need) is None
