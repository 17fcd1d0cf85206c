"""Custom-container functions: the user's image built on the lab host from
examples/container_function, run hardened with no code mount, instance concurrency, health checks; and a start
failure that reaches every waiting request."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest
from _agent import SICKENING_SERVER, WEB_SERVER, deploy, deploy_container, install, instances, post, wait_for

from fc_lab import Lab
from fc_provider import AgentAPIError
from fc_provider._remote import fleetops as ops

EXAMPLE_IMAGE = Path(__file__).resolve().parents[1] / "examples" / "container_function" / "image"
IMAGE = "fc-test/container-echo:1"


@pytest.fixture(scope="module")
def container_conn(lab: Lab, lab_fleet: dict) -> Iterator[ops.FleetConnection]:
    """The agent on the first lab host, with the example's image built on that host's engine (offline)."""
    lab.build_image(EXAMPLE_IMAGE, IMAGE, [lab_fleet["hosts"][0]["name"]])
    conn = install(lab_fleet)
    yield conn
    ops.uninstall_agent(conn, conn.hosts[0])


def test_a_container_function_runs_its_image_hardened_without_code(container_conn: ops.FleetConnection,
                                                                   lab: Lab) -> None:
    url = deploy_container(container_conn, "boxed", memory_size=256, disk_size=512, custom_container_config={
        "image": IMAGE, "port": 9000})
    status, headers, body = post(url, b"whoami")
    assert status == 200 and "x-fc-error-type" not in headers, body
    assert "x-fc-code-checksum" not in headers  # a container function has no code
    seen = json.loads(body)
    assert seen["uid"] == 65534 and seen["root_writable"] is False and seen["tmp_writable"] is True
    status, _, body = post(url, b"hello")
    assert json.loads(body)["echo"] == "hello"
    client = lab.docker_client(container_conn.hosts[0].name)
    try:
        (container,) = client.containers.list(filters={"label": f"fc.instance={headers['x-fc-instance-id']}"})
        hc = container.attrs["HostConfig"]
    finally:
        client.close()
    assert container.attrs["Config"]["User"] == "65534:65534"
    assert container.attrs["Config"]["Entrypoint"] == ["python3", "-u"]  # the image's own
    assert hc["Privileged"] is False and hc["CapDrop"] == ["ALL"] and "no-new-privileges" in hc["SecurityOpt"]
    assert hc["ReadonlyRootfs"] is True and hc["Tmpfs"]["/tmp"].startswith("size=512m")
    assert hc["Memory"] == 256 * 1024 * 1024 and hc["PidsLimit"] > 0 and hc["CpuQuota"] == 12500
    assert container.attrs["Mounts"] == []  # nothing mounted: no /code, no built-in runtime
    with ops.agent_session(container_conn, container_conn.hosts[0]) as (_ssh, agent):
        stored = agent.get_function("boxed")
    assert stored["code_checksum"] is None and stored["custom_container_config"]["image"] == IMAGE


def test_a_container_takes_entrypoint_and_command_and_honours_instance_concurrency(
        container_conn: ops.FleetConnection) -> None:
    url = deploy_container(container_conn, "boxed-web", instance_concurrency=3, max_instances=1, queue_timeout=20,
                           custom_container_config={"image": IMAGE, "port": 8080,
                                                    "entrypoint": ["python3", "-c", WEB_SERVER],
                                                    "command": ["ignored-argument"]})
    with ThreadPoolExecutor(max_workers=7) as pool:
        results = list(pool.map(lambda _: post(url, b"go"), range(7)))
    assert all(r[0] == 200 and "x-fc-error-type" not in r[1] for r in results), [r[2][:200] for r in results]
    assert len({r[1]["x-fc-instance-id"] for r in results}) == 1
    assert max(json.loads(r[2])["peak"] for r in results) == 3  # used, never exceeded


def test_a_container_failing_its_health_check_is_replaced(container_conn: ops.FleetConnection) -> None:
    health = {"http_get_url": "/health", "initial_delay_seconds": 0, "period_seconds": 1, "timeout_seconds": 1,
              "failure_threshold": 2}
    url = deploy_container(container_conn, "boxed-sick", custom_container_config={
        "image": IMAGE, "entrypoint": ["python3", "-c", SICKENING_SERVER], "health_check_config": health})
    _, first, body = post(url)
    assert body == b"now sick"
    wait_for(lambda: all(i["instance_id"] != first["x-fc-instance-id"]
                         for i in instances(container_conn, "boxed-sick")), "the unhealthy container to go", 30)


def test_container_specs_the_host_cannot_run_are_refused_with_the_field(container_conn: ops.FleetConnection) -> None:
    with ops.agent_session(container_conn, container_conn.hosts[0]) as (_ssh, agent):
        with pytest.raises(AgentAPIError) as missing:
            agent.put_function("boxed-missing", {"runtime": "custom-container",
                                                 "custom_container_config": {"image": "fc-test/absent:1"}})
        with pytest.raises(AgentAPIError) as with_code:
            agent.put_function("boxed-code", {"runtime": "custom-container", "code_checksum": "0" * 64,
                                              "custom_container_config": {"image": IMAGE}})
        with pytest.raises(AgentAPIError) as too_concurrent:
            agent.put_function("boxed-many", {"runtime": "custom-container", "instance_concurrency": 201,
                                              "custom_container_config": {"image": IMAGE}})
    assert missing.value.status == 409 and missing.value.code == "ImageNotFound"
    assert "fc-test/absent:1" in str(missing.value)
    assert with_code.value.status == 400 and "code_checksum" in str(with_code.value)
    assert too_concurrent.value.status == 400 and "instance_concurrency" in str(too_concurrent.value)


def test_a_failed_start_reaches_every_waiting_request_with_its_cause(container_conn: ops.FleetConnection,
                                                                     tmp_path: Path) -> None:
    crash = "import sys\nprint('missing setting DATABASE_URL', file=sys.stderr)\nsys.exit(3)\n"
    url = deploy(container_conn, tmp_path, "crashing", crash, runtime="custom.debian12", instance_concurrency=10,
                 max_instances=2, timeout=10, custom_runtime_config={"command": ["python3", "index.py"]})
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: post(url, b"go"), range(6)))
    for status, headers, body in results:
        error = json.loads(body)
        assert status == 503 and error["Code"] == "InstanceStartFailed", body
        assert "exited with code 3" in error["Message"] and "DATABASE_URL" in error["Message"]
        assert error["RequestId"] == headers["x-fc-request-id"]
    assert instances(container_conn, "crashing") == []
