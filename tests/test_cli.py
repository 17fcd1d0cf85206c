"""The `fc` operator CLI, run as a real process against the lab fleet (read from the stack or the fleet file)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from _agent import post
from _pulumi import REPO, Stack

from fc_lab import Lab
from fc_provider._remote.signer import Credentials

NAME = "cli-fn"
HANDLER = (
    "def handler(event, context):\n"
    "    print('handling', event.decode())\n"
    "    if event == b'boom':\n"
    "        raise RuntimeError('boom requested')\n"
    "    return b'echo:' + event\n"
)
FC = str(REPO / ".venv" / "bin" / "fc")


@pytest.fixture(scope="module")
def stack(lab: Lab, fleet_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("cli")
    (work / "code").mkdir()
    (work / "code" / "index.py").write_text(HANDLER)
    stack = Stack(work, "cli", program=REPO / "tests" / "programs" / "function")
    stack.config(fleetFile=str(fleet_file), functionName=NAME, codeDir=str(work / "code"), accessKey="true")
    stack.up()
    yield stack
    stack.destroy()


def fc(stack: Stack, *args: str, fleet_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    source = ["--fleet-file", str(fleet_file)] if fleet_file else ["--stack", "cli", "--cwd", str(stack.project)]
    return subprocess.run([FC, *source, *args], env=stack.env, capture_output=True, text=True, timeout=300)


def test_hosts_lists_every_host_with_its_agent_and_functions(stack: Stack, fleet_file: Path) -> None:
    for source in ({}, {"fleet_file": fleet_file}):
        proc = fc(stack, "--json", "hosts", **source)
        assert proc.returncode == 0, proc.stderr
        rows = json.loads(proc.stdout)
        assert [r["name"] for r in rows] == ["lab-1", "lab-2", "lab-3"]
        assert all(r["agent"] == "ok" and NAME in r["functions"] for r in rows), rows
    table = fc(stack, "hosts", fleet_file=fleet_file)
    assert table.returncode == 0 and "lab-2" in table.stdout and NAME in table.stdout


def test_invoke_logs_and_instances(stack: Stack, tmp_path: Path) -> None:
    proc = fc(stack, "invoke", NAME, "--payload", '{"n": 1}')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == 'echo:{"n": 1}'
    assert proc.stderr.startswith("request ")
    tail = fc(stack, "invoke", NAME, "--payload", "tail", "--qualifier", "LATEST", "--log")
    assert tail.returncode == 0 and tail.stdout == "echo:tail" and "handling tail" in tail.stderr, tail.stderr
    (tmp_path / "event.bin").write_bytes(b"from-a-file")
    result = json.loads(fc(stack, "--json", "invoke", NAME, "--payload", f"@{tmp_path / 'event.bin'}",
                           "--host", "lab-2").stdout)
    assert result["body"] == "echo:from-a-file" and result["host"] == "lab-2" and result["error_type"] is None

    logs = fc(stack, "logs", NAME, "--request-id", result["request_id"])
    assert logs.returncode == 0, logs.stderr
    assert result["request_id"] in logs.stdout and "handling from-a-file" in logs.stdout
    assert "lab-2" in logs.stdout
    recent = json.loads(fc(stack, "--json", "logs", NAME).stdout)
    assert result["request_id"] in [e["request_id"] for e in recent]
    assert [e["time"] for e in recent] == sorted((e["time"] for e in recent), reverse=True)

    instances = json.loads(fc(stack, "--json", "instances", NAME).stdout)
    assert {i["host"] for i in instances} >= {"lab-2"}
    assert all(i["function_name"] == NAME and i["state"] for i in instances)


def test_invoke_signs_with_the_environment_key_or_says_which_key_is_missing(stack: Stack, fleet_file: Path) -> None:
    outputs = stack.outputs(show_secrets=True)
    env = {k: v for k, v in stack.env.items() if not k.startswith("ALIBABA_CLOUD_")}
    signed = subprocess.run([FC, "--fleet-file", str(fleet_file), "invoke", NAME, "--payload", "env"],
                            env={**env, "ALIBABA_CLOUD_ACCESS_KEY_ID": outputs["access_key_id"],
                                 "ALIBABA_CLOUD_ACCESS_KEY_SECRET": outputs["access_key_secret"]},
                            capture_output=True, text=True, timeout=300)
    assert signed.returncode == 0 and signed.stdout == "echo:env", signed.stderr
    unsigned = subprocess.run([FC, "--fleet-file", str(fleet_file), "invoke", NAME], env=env, capture_output=True,
                              text=True, timeout=300)
    assert unsigned.returncode == 2
    assert unsigned.stderr.startswith("fc: no access key: set ALIBABA_CLOUD_ACCESS_KEY_ID"), unsigned.stderr
    wrong = subprocess.run([FC, "--fleet-file", str(fleet_file), "invoke", NAME],
                           env={**env, "ALIBABA_CLOUD_ACCESS_KEY_ID": outputs["access_key_id"],
                                "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "not-the-secret-at-all"},
                           capture_output=True, text=True, timeout=300)
    assert wrong.returncode == 3 and "SignatureNotMatch" in wrong.stderr, wrong.stderr


def test_a_failing_function_exits_1_with_its_error(stack: Stack) -> None:
    proc = fc(stack, "invoke", NAME, "--payload", "boom")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["errorMessage"] == "boom requested"
    assert "UnhandledInvocationError" in proc.stderr


@pytest.mark.parametrize(("args", "code", "message"), [
    (["invoke", "no-such-fn"], 1, "fc: function no-such-fn is not deployed on lab-1, lab-2, lab-3"),
    (["logs", NAME, "--request-id", "no-such-request"], 1, "fc: no logs for request no-such-request"),
    (["invoke", NAME, "--host", "lab-9"], 2, "fc: host lab-9 is not part of the fleet"),
    (["invoke", NAME, "--payload", "@/no/such/file"], 2, "fc: --payload @/no/such/file: cannot read the file"),
    (["--stack", "no-such-stack", "hosts"], 2, "fc: cannot read stack no-such-stack"),
    (["--fleet-file", "/no/such/fleet.json", "hosts"], 2, "fc: cannot read fleet file /no/such/fleet.json"),
])
def test_errors_are_one_line_with_a_meaningful_exit_code(stack: Stack, args: list[str], code: int,
                                                         message: str) -> None:
    source = [] if args[0].startswith("--") else ["--stack", "cli", "--cwd", str(stack.project)]
    proc = subprocess.run([FC, *source, *args], env=stack.env, capture_output=True, text=True, timeout=300,
                          cwd=stack.project)
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith(message), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_the_key_secret_stays_out_of_the_state_and_removing_the_key_revokes_it_on_every_host(
        stack: Stack, lab: Lab) -> None:
    """Runs last in this file: it removes the stack's key."""
    outputs = stack.outputs(show_secrets=True)
    key = Credentials(outputs["access_key_id"], outputs["access_key_secret"])
    assert key.access_key_secret not in stack.export_state()
    urls = [f"http://{h['address']}:9000/2023-03-30/functions/{NAME}/invocations" for h in lab.fleet()["hosts"]]
    assert [post(u, b"k", key=key)[0] for u in urls] == [200, 200, 200]
    stack.config(accessKey="false")
    stack.up()
    refused = [post(u, b"k", key=key) for u in urls]
    assert [(status, json.loads(body)["Code"]) for status, _, body in refused] == [(403, "InvalidAccessKeyID")] * 3
