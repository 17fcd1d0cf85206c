"""Runtime images shipped to hosts: a host whose engine lacks a runtime image gets the project's tarball (uploaded
content-addressed, loaded by the agent, the upload removed) and then runs functions on it; a host that has the
image gets nothing. (tests/test_ci_flow.py sees the same happen during a real `pulumi up`.)"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import docker.errors
import pytest
from _agent import deploy, install, post

from fc_lab import Lab
from fc_provider._model.images import described, project_tarballs
from fc_provider._remote import fleetops as ops
from fc_provider.fleet import FleetProvider

REF = "fc-runtime/python3.11:latest"


def remove_image(lab: Lab, host: str, ref: str = REF) -> None:
    client = lab.docker_client(host)
    try:
        client.images.remove(ref, force=True)  # untags it even if a stopped container still refers to it
    except docker.errors.ImageNotFound:
        pass
    finally:
        client.close()


def has_image(lab: Lab, host: str, ref: str = REF) -> bool:
    client = lab.docker_client(host)
    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False
    finally:
        client.close()


@pytest.fixture(scope="module")
def agent_conn(lab: Lab, lab_fleet: dict) -> Iterator[ops.FleetConnection]:
    conn = install(lab_fleet, 2)
    yield conn
    if not has_image(lab, conn.hosts[0].name):  # leave the lab as it was, whatever happened
        ops.ship_images(conn, conn.hosts[0], described(project_tarballs()))
    ops.uninstall_agent(conn, conn.hosts[0])


def test_a_host_without_the_runtime_image_gets_it_and_runs_functions(agent_conn: ops.FleetConnection, lab: Lab,
                                                                     tmp_path: Path) -> None:
    images = described(project_tarballs())
    assert REF in images and images[REF]["sha256"], f"the project's {REF} tarball is missing (fc-lab images)"
    host = agent_conn.hosts[0]
    remove_image(lab, host.name)
    assert not has_image(lab, host.name)
    shipped = ops.ship_images(agent_conn, host, images)
    assert shipped[REF] == "shipped" and set(shipped.values()) <= {"shipped", "present"}, shipped
    assert has_image(lab, host.name)
    leftovers = lab.run(host.name, ["sh", "-c", "ls /var/lib/fc-agent/images"], capture_output=True, text=True)
    assert leftovers.stdout.split() == []  # the agent removed the upload once loaded
    assert set(ops.ship_images(agent_conn, host, images).values()) == {"present"}  # nothing is uploaded again
    url = deploy(agent_conn, tmp_path, "shipped", "def handler(event, context):\n    return b'from shipped'\n")
    assert post(url)[2] == b"from shipped"


def test_refresh_reports_a_lost_image_as_drift_and_the_next_up_ships_it(agent_conn: ops.FleetConnection, lab: Lab,
                                                                       lab_fleet: dict) -> None:
    images = described(project_tarballs())
    host = agent_conn.hosts[0]
    props = {"hosts": [{**lab_fleet["hosts"][2], "user": lab_fleet["ssh_user"], "capacity": None}],
             "ssh_private_key": agent_conn.private_key, "token": agent_conn.token, "control_port": 7701,
             "invoke_port": 9000, "images": images, "agent_version": "x"}
    provider = FleetProvider()
    ops.ship_images(agent_conn, host, images)
    clean = provider.read("fleet-test", props).outs
    assert clean["missing_images"] == {}
    assert provider.diff("fleet-test", {**clean, "agent_versions": {}}, props).changes is False
    remove_image(lab, host.name)  # pruned by someone on the host
    drifted = provider.read("fleet-test", props).outs
    assert drifted["missing_images"] == {host.name: [REF]}
    assert provider.diff("fleet-test", {**drifted, "agent_versions": {}}, props).changes is True
    ops.ship_images(agent_conn, host, images)  # what the up that follows does for each host (FleetProvider._deploy)
    assert provider.read("fleet-test", props).outs["missing_images"] == {}


def test_an_unreadable_tarball_fails_the_preview_naming_it(tmp_path: Path) -> None:
    images = described({"fc-runtime/missing:latest": str(tmp_path / "no.tar")})
    props = {"hosts": [{"name": "h", "address": "10.0.0.1", "host_public_key": "ssh-ed25519 AAAA", "port": 22,
                        "user": "root", "labels": {}, "capacity": None}], "ssh_private_key": "k", "images": images}
    failures = FleetProvider().check({}, props).failures
    assert [(f.property, f.reason.split(":")[0]) for f in failures] == [("image_tarballs", "fc-runtime/missing")]
    assert "cannot read" in failures[0].reason and "no.tar" in failures[0].reason
