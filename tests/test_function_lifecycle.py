"""The Function resource through the real Pulumi CLI on the lab fleet: exact previews, a no-change up, drift found
by refresh and repaired by up, secrets kept out of the state, check failures without tracebacks, and adoption."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from _agent import grant_lab, post
from _fleet_agents import agent
from _pulumi import REPO, PulumiFailed, Stack

from fc_lab import Lab
from fc_provider._model.archive import pack_trees

PROGRAM = REPO / "tests" / "programs" / "function"
NAME = "life-fn"
# FC 3.0 arguments that the agent stores as sent besides the basics the program sets.
EXTRA = {"description": "lifecycle test", "custom_dns": {"name_servers": ["10.0.0.53"], "searches": ["svc.local"],
                                                         "dns_options": [{"name": "ndots", "value": "2"}]},
         "log_config": {"project": "life", "logstore": "calls", "enable_request_metrics": True}}
HANDLER = "import os\n\ndef handler(event, context):\n    return os.environ['MODE'] + ':' + event.decode()\n"


def invoke(url: str, payload: bytes) -> bytes:
    status, _headers, body = post(url, payload)
    assert status == 200, (status, body)
    return body


def specs(lab: Lab, fleet: dict) -> dict[str, dict | None]:
    found = {}
    for host in fleet["hosts"]:
        with agent(lab, fleet, host["name"]) as (_ssh, client):
            found[host["name"]] = client.get_function(NAME)
    return found


@pytest.fixture(scope="module")
def deployed(lab: Lab, fleet_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    work = tmp_path_factory.mktemp("life")
    code = work / "code"
    code.mkdir()
    (code / "index.py").write_text(HANDLER)
    secret = f"greeting-{uuid.uuid4().hex}"
    stack = Stack(work, "life", program=PROGRAM)
    stack.config(fleetFile=str(fleet_file), functionName=NAME, codeDir=str(code), extra=json.dumps(EXTRA),
                 secrets={"greeting": secret})
    stack.up()
    grant_lab(lab)
    yield {"stack": stack, "work": work, "secret": secret}
    stack.destroy()


def planned_property_changes(preview: str) -> list[str]:
    return re.findall(r"^\s+[~+-] (\w+)\s*:", preview, flags=re.MULTILINE)


def test_outputs_have_fc_names_and_stable_ids(deployed: dict, lab_fleet: dict) -> None:
    outs = deployed["stack"].outputs()
    assert outs["function_arn"] == f"acs:fc:local:fleet:functions/{NAME}"
    assert re.fullmatch(r"[0-9a-f-]{36}", outs["function_id"])
    assert outs["hosts"] == sorted(h["name"] for h in lab_fleet["hosts"])
    assert outs["state"] == "Active" and outs["code_size"] > 0 and len(outs["code_checksum"]) == 64
    assert outs["created_time"] <= outs["last_modified_time"]
    assert [invoke(url, b"x") for url in outs["invoke_endpoints"]] == [b"test:x"] * len(lab_fleet["hosts"])


def test_every_host_holds_the_spec_as_declared(deployed: dict, lab: Lab, lab_fleet: dict) -> None:
    for host, spec in specs(lab, lab_fleet).items():
        assert spec is not None, host
        assert {k: spec.get(k) for k in ("description", "internet_access", "tags", "timeout")} == {
            "description": "lifecycle test", "internet_access": True, "tags": {"team": "fc"}, "timeout": 10}
        assert spec["custom_dns"] == EXTRA["custom_dns"]
        assert spec["log_config"] == {**EXTRA["log_config"], "enable_instance_metrics": False,
                                      "log_begin_rule": "None"}


def test_preview_shows_exactly_the_one_changed_field(deployed: dict) -> None:
    stack = deployed["stack"]
    stack.config(memorySize="256")
    try:
        preview = stack.run("preview", "--diff").stdout
    finally:
        stack.run("config", "rm", "memorySize")
    assert planned_property_changes(preview) == ["memory_size"], preview
    assert re.search(r"~ memory_size\s*: 128 => 256", preview)
    assert "1 to update" in preview and "replace" not in preview


def test_the_same_inputs_as_typed_args_preview_no_change(deployed: dict) -> None:
    stack = deployed["stack"]
    stack.config(typed="true")
    try:
        preview = stack.run("preview", "--diff").stdout
    finally:
        stack.run("config", "rm", "typed")
    assert planned_property_changes(preview) == [], preview
    assert re.search(r"Resources:\s+3 unchanged", preview), preview


def test_refresh_finds_each_drift_keeps_secrets_out_of_the_state_and_up_repairs_it(deployed: dict, lab: Lab,
                                                                                   lab_fleet: dict) -> None:
    """Drift made by hand on three hosts is found by refresh (whose state keeps every secret out of plaintext) and
    repaired by up; then a no-change up changes nothing on any host."""
    stack = deployed["stack"]
    original = stack.outputs()
    other_code = deployed["work"] / "other"
    other_code.mkdir()
    (other_code / "index.py").write_text(HANDLER.replace("':'", "'!'"))
    other = pack_trees([(other_code, "")])
    with agent(lab, lab_fleet, "lab-1") as (_ssh, client):  # an environment variable changed by hand
        spec = client.get_function(NAME)
        client.put_function(NAME, {**_spec(spec), "environment_variables": {**spec["environment_variables"],
                                                                             "MODE": "tampered"}})
    with agent(lab, lab_fleet, "lab-2") as (_ssh, client):  # the function deleted by hand
        assert client.delete_function(NAME)
    with agent(lab, lab_fleet, "lab-3") as (ssh, client):  # other code put in place by hand
        ssh.put_bytes(other.data, f"/var/lib/fc-agent/code/{other.checksum}.tar.gz")
        client.put_function(NAME, {**_spec(client.get_function(NAME)), "code_checksum": other.checksum})

    refresh = stack.run("refresh", "--yes", "--diff").stdout
    assert "1 updated" in refresh or "~ 1 updated" in refresh, refresh
    # Stack outputs come from the program, which refresh does not run: look at the resource's state.
    state = json.loads(stack.run("stack", "export", "--show-secrets").stdout)
    outs = next(r for r in state["deployment"]["resources"] if r["urn"].endswith("::fn"))["outputs"]
    assert outs["hosts"] == ["lab-1", "lab-3"]
    assert outs["code_checksum"] == other.checksum
    env = outs["environment_variables"]
    assert "plaintext" in env, env  # still a secret after the refresh
    assert json.loads(env["plaintext"])["MODE"] == "tampered"
    _assert_no_plaintext_secrets(stack.export_state(), deployed, lab, lab_fleet)  # what the refresh wrote

    repair = stack.up()  # the plan after the refresh: the function updated in place on every host
    assert re.search(r"~ 1 updated", repair) and "replace" not in repair, repair
    after = specs(lab, lab_fleet)
    assert all(s is not None and s["code_checksum"] == original["code_checksum"] and
               s["environment_variables"]["MODE"] == "test" for s in after.values()), after
    assert stack.outputs()["hosts"] == original["hosts"]
    assert [invoke(url, b"y") for url in original["invoke_endpoints"]] == [b"test:y"] * 3
    out = stack.up()  # nothing left to change: nothing is re-sent to any host
    assert re.search(r"Resources:\s+3 unchanged", out), out
    assert specs(lab, lab_fleet) == after  # same last_modified_time everywhere


def _spec(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("function_name", "created_time", "last_modified_time")}


def _assert_no_plaintext_secrets(state: str, deployed: dict, lab: Lab, lab_fleet: dict) -> None:
    """The state as exported without secrets holds none of them in plaintext: not the secret config value, not the
    environment (a value a refresh found, its names), not the SSH key, not the agent's token."""
    assert deployed["secret"] not in state
    assert "tampered" not in state and '"GREETING"' not in state
    key_lines = [line for line in Path(lab_fleet["ssh_private_key_path"]).read_text().splitlines()
                 if line and not line.startswith("-----")]
    token = json.loads(lab.run("lab-1", ["cat", "/etc/fc-agent/config.json"], capture_output=True, text=True,
                               check=True).stdout)["token"]
    assert key_lines and not any(line in state for line in key_lines)
    assert token not in state


def test_failing_preview_names_property_and_rule_without_traceback(fleet_file: Path, tmp_path: Path) -> None:
    stack = Stack(tmp_path, "invalid", program=PROGRAM)
    bad = {"disk_size": 1024, "cpu": 0.07, "environment_variables": {"FC_X": "1"},
           "log_config": {"project": "P", "logstore": "ls"}}
    stack.config(fleetFile=str(fleet_file), functionName="bad-fn", codeDir=str(tmp_path / "missing"),
                 extra=json.dumps(bad))
    proc = stack.run("preview", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Traceback" not in out
    for prop, rule in [("code", "does not exist"), ("cpu", "multiple of 0.05"), ("disk_size", "512 or 10240"),
                       ("environment_variables", "reserved prefix FC_"), ("log_config", "log_config.project")]:
        assert re.search(rf"property {prop} value .* has a problem: .*{re.escape(rule)}", out), (prop, out)


def test_adopt_takes_over_a_function_running_on_the_fleet(deployed: dict, lab: Lab, lab_fleet: dict) -> None:
    """Pulumi cannot import dynamic resources (see README); adopt=True is the way to take a function over."""
    stack = deployed["stack"]
    created = stack.outputs()["created_time"]
    stack.run("state", "delete", "urn:pulumi:life::fc-test::pulumi-python:dynamic:Resource::fn", "--yes")
    code = deployed["work"] / "code"
    (code / "index.py").write_text(HANDLER.replace("':'", "'#'"))
    try:
        with pytest.raises(PulumiFailed, match=rf"host lab-\d: function {NAME} already exists there with another "
                                               "configuration"):
            stack.up()
        assert all(s is not None for s in specs(lab, lab_fleet).values())  # refused: nothing was overwritten
        stack.config(adopt="true")
        stack.up()
        outs = stack.outputs()
        assert outs["created_time"] == created and len(outs["hosts"]) == 3
        assert invoke(outs["invoke_endpoints"][0], b"z") == b"test#z"
        assert re.search(r"Resources:\s+3 unchanged", stack.up())
    finally:
        (code / "index.py").write_text(HANDLER)
        stack.run("config", "rm", "adopt")
    stack.up()
    assert invoke(stack.outputs()["invoke_endpoints"][0], b"z") == b"test:z"


SERVER = ("import http.server\n"
          "class H(http.server.BaseHTTPRequestHandler):\n"
          "    def do_GET(self):\n        self.send_response(200); self.end_headers()\n"
          "    def do_POST(self):\n"
          "        body = self.rfile.read(int(self.headers.get('content-length') or 0))\n"
          "        self.send_response(200); self.end_headers(); self.wfile.write(b'box:' + body)\n"
          "http.server.HTTPServer(('0.0.0.0', 9000), H).serve_forever()\n")


def test_a_custom_container_function_is_deployed_without_code(deployed: dict, lab: Lab, lab_fleet: dict) -> None:
    """Contract A: no code_checksum, the container config and internet_access as declared."""
    stack = deployed["stack"]
    box = {"function_name": "life-box", "placement": ["lab-1"], "internet_access": False, "instance_concurrency": 4,
           "custom_container_config": {"image": "fc-runtime/python3.11:latest", "port": 9000,
                                       "command": ["python3", "-c", SERVER]}}
    stack.config(container=json.dumps(box))
    try:
        stack.up()
        assert stack.outputs()["box_hosts"] == ["lab-1"]
        with agent(lab, lab_fleet, "lab-1") as (_ssh, client):
            spec = client.get_function("life-box")
        assert spec["runtime"] == "custom-container" and spec.get("code_checksum") is None
        assert spec["internet_access"] is False
        assert spec["custom_container_config"] == {**box["custom_container_config"], "entrypoint": None,
                                                   "health_check_config": None}
    finally:  # the module's `deployed` fixture destroys the stack, box included: no up to remove it first
        stack.unset("container")
