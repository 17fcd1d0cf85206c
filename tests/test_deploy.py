"""End to end through every layer: the real Pulumi CLI deploys to the lab fleet over SSH, the agent runs the
function in Docker, and the FC-shaped invoke API answers."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Iterator

import pytest
from _agent import TEST_KEY, post, stack_key, wait_for
from _pulumi import Stack
from conftest import CLEAN_AGENT_DIRS, host_snapshot

from fc_lab import Lab
from fc_provider._remote.agent_client import AgentClient
from fc_provider._remote.signer import Credentials
from fc_provider._remote.ssh import HostSpec, SSHSession

HANDLER_V1 = "def handler(event, context):\n    return 'v1:' + event.decode()\n"
HANDLER_V2 = "def handler(event, context):\n    return 'v2:' + event.decode()\n"
HANDLER_RAISES = (
    "def handler(event, context):\n"
    "    raise ValueError('the handler refused ' + event.decode())\n"
)


def invoke(url: str, payload: bytes, key: Credentials = TEST_KEY) -> tuple[int, dict[str, str], bytes]:
    """A signed invocation that must succeed (an unreachable host raises OSError)."""
    status, headers, body = post(url, payload, key=key)
    assert status == 200, (status, body)
    return status, headers, body


def write_code(folder: Path, source: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.py").write_text(source)


@pytest.fixture(scope="module")
def deployed(lab: Lab, fleet_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    work = tmp_path_factory.mktemp("deploy")
    code = work / "code"
    write_code(code, HANDLER_V1)
    before = host_snapshot(lab)
    stack = Stack(work, "e2e")
    stack.config(fleetFile=str(fleet_file), functionName="e2e-fn", codeDir=str(code))
    stack.up()
    state = {"stack": stack, "code": code, "before": before, "destroyed": False, "key": stack_key(stack)}
    yield state
    if not state["destroyed"]:
        stack.destroy()


def test_preview_of_a_new_stack_changes_nothing_on_any_host(lab: Lab, fleet_file: Path, tmp_path: Path) -> None:
    write_code(tmp_path / "code", HANDLER_V1)
    before = host_snapshot(lab)
    stack = Stack(tmp_path, "preview-only")
    stack.config(fleetFile=str(fleet_file), functionName="preview-fn", codeDir=str(tmp_path / "code"))
    out = stack.preview()
    assert "+ 4 to create" in out or "4 to create" in out, out
    assert host_snapshot(lab) == before


def test_up_deploys_and_every_host_answers(deployed: dict, lab_fleet: dict) -> None:
    endpoints = deployed["stack"].outputs()["invoke_endpoints"]
    assert len(endpoints) == len(lab_fleet["hosts"])
    for url in endpoints:
        status, headers, body = invoke(url, b"ping", deployed["key"])
        assert status == 200
        assert body == b"v1:ping"
        assert headers["x-fc-request-id"]
        assert "x-fc-error-type" not in headers


def test_no_change_up_changes_nothing(deployed: dict) -> None:
    out = deployed["stack"].up()
    assert "unchanged" in out and "updated" not in out.split("Resources:")[1], out


def test_secrets_are_not_in_plaintext_in_the_state(deployed: dict, lab: Lab, lab_fleet: dict) -> None:
    state = deployed["stack"].export_state()
    key_lines = [line for line in Path(lab_fleet["ssh_private_key_path"]).read_text().splitlines()
                 if line and not line.startswith("-----")]
    token = json.loads(lab.run(lab_fleet["hosts"][0]["name"], ["cat", "/etc/fc-agent/config.json"],
                               capture_output=True, text=True, check=True).stdout)["token"]
    assert key_lines and not any(line in state for line in key_lines)
    assert token not in state
    assert '"GREETING"' not in state  # environment variables are stored encrypted as a whole


def test_control_api_refuses_requests_without_the_token(lab: Lab, lab_fleet: dict) -> None:
    host = lab_fleet["hosts"][0]
    token = json.loads(lab.run(host["name"], ["cat", "/etc/fc-agent/config.json"],
                               capture_output=True, text=True, check=True).stdout)["token"]
    spec = HostSpec(host["name"], host["address"], host["port"], lab_fleet["ssh_user"], host["host_public_key"])
    with SSHSession(spec, Path(lab_fleet["ssh_private_key_path"]).read_text()) as ssh:
        client = AgentClient(host["name"], ssh.transport, 7701, token)
        assert client.raw("GET", "/v1/functions", token="")[0] == 401
        assert client.raw("GET", "/v1/functions", token="not-the-token")[0] == 401
        status, data = client.raw("GET", "/v1/functions")
        assert status == 200 and any(f["function_name"] == "e2e-fn" for f in data["functions"])
        client.close()


def test_control_api_is_unreachable_from_another_host_and_from_outside(lab: Lab, lab_fleet: dict) -> None:
    target = lab_fleet["hosts"][0]["address"]
    probe = (f"import socket\ns = socket.socket()\ns.settimeout(3)\n"
             f"print(s.connect_ex(({target!r}, 7701)))")
    other = lab_fleet["hosts"][1]["name"]
    result = lab.run(other, ["python3", "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() != "0", "the control port answered from another host"
    with socket.socket() as s:
        s.settimeout(3)
        assert s.connect_ex((target, 7701)) != 0, "the control port answered from outside the host"
    # The invoke API, by contrast, is meant to be reachable.
    result = lab.run(other, ["python3", "-c", probe.replace("7701", "9000")], capture_output=True, text=True)
    assert result.stdout.strip() == "0"


def test_a_handler_that_raises_gives_unhandled_invocation_error(deployed: dict) -> None:
    write_code(deployed["code"], HANDLER_RAISES)
    deployed["stack"].up()
    url = deployed["stack"].outputs()["invoke_endpoints"][0]
    status, headers, body = invoke(url, b"this", deployed["key"])
    assert status == 200
    assert headers["x-fc-error-type"] == "UnhandledInvocationError"
    error = json.loads(body)
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "the handler refused this"
    assert isinstance(error["stackTrace"], list) and error["stackTrace"]


def test_refresh_sees_a_stopped_agent_and_up_repairs_it(deployed: dict, lab: Lab, lab_fleet: dict) -> None:
    victim = lab_fleet["hosts"][1]
    # Stopped for good: its supervisor told to stop (which stops the agent), as an operator would.
    lab.run(victim["name"], ["sh", "-c", "kill $(cat /var/lib/fc-agent/supervisor.pid)"], check=True)
    wait_for(lambda: lab.run(victim["name"], ["test", "-e", "/var/lib/fc-agent/agent.pid"]).returncode != 0 or
             lab.run(victim["name"], ["sh", "-c", "kill -0 $(cat /var/lib/fc-agent/agent.pid)"]).returncode != 0,
             "the agent to stop")
    url = f"http://{victim['address']}:9000/2023-03-30/functions/e2e-fn/invocations"
    with pytest.raises(OSError):
        invoke(url, b"down", deployed["key"])
    out = deployed["stack"].up(refresh=True)
    assert "updated" in out
    assert invoke(url, b"back", deployed["key"])[0] == 200


def test_changed_code_gives_the_new_answer_after_up(deployed: dict) -> None:
    write_code(deployed["code"], HANDLER_V2)
    out = deployed["stack"].up()
    assert "updated" in out
    for url in deployed["stack"].outputs()["invoke_endpoints"]:
        assert invoke(url, b"again", deployed["key"])[2] == b"v2:again"


def test_destroy_leaves_nothing_on_any_host(deployed: dict, lab: Lab) -> None:
    deployed["stack"].destroy()
    deployed["destroyed"] = True
    assert host_snapshot(lab) == deployed["before"]
    for host in host_snapshot(lab).values():  # and "before" was a host without any agent
        assert host == {"containers": [], "files": CLEAN_AGENT_DIRS}
