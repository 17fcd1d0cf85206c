"""The runtime agent and the provider's SSH layer, driven directly on the lab (no Pulumi): strict host keys,
timeouts that recycle the instance, the FC error shapes, and the hardening of instance containers."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from fc_lab import Lab
from fc_provider import HostKeyMismatch
from fc_provider import _fleetops as ops
from fc_provider._archive import pack_code
from fc_provider._commands import code_archive
from fc_provider._ssh import HostSpec, SSHSession


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
    conn = ops.FleetConnection.from_dict({
        "hosts": [{**h, "user": lab_fleet["ssh_user"]} for h in lab_fleet["hosts"][:1]],
        "private_key": Path(lab_fleet["ssh_private_key_path"]).read_text(),
        "token": secrets.token_urlsafe(16),
    })
    ops.install_agent(conn, conn.hosts[0], {"idle_timeout_seconds": 300})
    yield conn
    ops.uninstall_agent(conn, conn.hosts[0])


def _deploy(conn: ops.FleetConnection, tmp: Path, name: str, source: str, **spec: object) -> str:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "index.py").write_text(source)
    package = pack_code(tmp)
    with ops.agent_session(conn, conn.hosts[0]) as (ssh, agent):
        ssh.put_bytes(package.data, code_archive(package.checksum))
        agent.put_function(name, {"runtime": "python3.11", "handler": "index.handler", "memory_size": 128,
                                  "timeout": 3, **spec, "code_checksum": package.checksum})
    return f"http://{conn.hosts[0].address}:{conn.invoke_port}/2023-03-30/functions/{name}/invocations"


def _post(url: str, body: bytes = b"", headers: dict[str, str] | None = None):
    req = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


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


def test_instance_containers_are_hardened(agent_conn: ops.FleetConnection, lab: Lab, tmp_path: Path) -> None:
    url = _deploy(agent_conn, tmp_path, "hardened", "def handler(event, context):\n    return 'ok'\n",
                  memory_size=256, disk_size=512)
    _, headers, _ = _post(url)
    client = lab.docker_client(agent_conn.hosts[0].name)
    try:
        (container,) = [c for c in client.containers.list() if c.labels.get("fc.instance") == headers["x-fc-instance-id"]]
        hc = container.attrs["HostConfig"]
    finally:
        client.close()
    assert container.attrs["Config"]["User"] == "65534:65534"
    assert hc["Privileged"] is False
    assert hc["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in hc["SecurityOpt"]
    assert hc["ReadonlyRootfs"] is True
    assert hc["Memory"] == 256 * 1024 * 1024
    assert hc["PidsLimit"] and hc["PidsLimit"] > 0
    assert hc["NanoCpus"] > 0
    assert hc["Tmpfs"]["/tmp"].startswith("size=512m")
    code_mount = [m for m in container.attrs["Mounts"] if m["Destination"] == "/code"]
    assert code_mount and code_mount[0]["RW"] is False
