"""examples/task_function end to end with the Pulumi CLI and `fc`: a bad AsyncInvokeConfig fails at preview naming
the field; the deployed task function takes a job submitted with a task id, which `fc tasks` lists, shows and
stops; a short job's result is kept; destroy removes the config with the function."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from _agent import TEST_KEY, grant_lab, wait_for
from _fleet_agents import agent
from _pulumi import REPO, PulumiFailed, Stack

from fc_lab import Lab

FC = str(REPO / ".venv" / "bin" / "fc")
EXAMPLE = REPO / "examples" / "task_function"


@pytest.fixture(scope="module")
def stack(lab: Lab, fleet_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("tasks"), "tasks", program=EXAMPLE)
    stack.config(fleetFile=str(fleet_file), functionName="batch-job", maxRetries="9")
    with pytest.raises(PulumiFailed) as info:
        stack.preview()
    assert "max_async_retry_attempts" in str(info.value) and "8" in str(info.value)
    stack.run("up", "--yes", "--skip-preview", "--config", "maxRetries=0")
    grant_lab(lab)  # the key fc invoke signs with (FC's environment variables, below)
    yield stack
    stack.destroy()


def fc(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**stack.env, "ALIBABA_CLOUD_ACCESS_KEY_ID": TEST_KEY.access_key_id,
           "ALIBABA_CLOUD_ACCESS_KEY_SECRET": TEST_KEY.access_key_secret}
    return subprocess.run([FC, "--stack", "tasks", "--cwd", str(stack.project), *args], env=env,
                          capture_output=True, text=True, timeout=300)


def _wait(lab: Lab, task_id: str, status: str, timeout: float = 120) -> None:
    """Until the task (on lab-1, the example's host) has ``status``: read from the agent directly, over one SSH
    session, where each `fc tasks get` would start Python and `pulumi stack export` (what `fc` says is asserted
    by the calls after each wait)."""
    fleet = lab.fleet()
    with agent(lab, fleet, "lab-1") as (_ssh, client):
        wait_for(lambda: client.get_task("batch-job", task_id)["status"] == status,
                 f"task {task_id} to be {status}", timeout)


def test_a_long_job_is_listed_shown_and_stopped_from_the_cli(stack: Stack, lab: Lab) -> None:
    submit = fc(stack, "invoke", "batch-job", "--async", "--task-id", "long-job",
                "--payload", json.dumps({"items": 600, "seconds_per_item": 0.2}))
    assert submit.returncode == 0 and submit.stdout.strip() == "long-job", submit.stderr
    _wait(lab, "long-job", "Running")
    listing = fc(stack, "tasks", "list", "batch-job", "--status", "Running")
    assert listing.returncode == 0 and "long-job" in listing.stdout and "lab-1" in listing.stdout
    stop = fc(stack, "tasks", "stop", "batch-job", "long-job")
    assert stop.returncode == 0, stop.stderr
    _wait(lab, "long-job", "Stopped", timeout=30)
    shown = fc(stack, "tasks", "get", "batch-job", "long-job")
    assert shown.returncode == 0 and "Stopping" in shown.stdout and "Stopped" in shown.stdout
    again = fc(stack, "tasks", "stop", "batch-job", "long-job")
    assert again.returncode == 3 and "already ended" in again.stderr
    missing = fc(stack, "tasks", "get", "batch-job", "no-such-job")
    assert missing.returncode == 1 and "no task no-such-job" in missing.stderr


def test_a_short_job_succeeds_and_keeps_its_result(stack: Stack, lab: Lab) -> None:
    submit = fc(stack, "invoke", "batch-job", "--async", "--task-id", "short-job",
                "--payload", json.dumps({"items": 3, "seconds_per_item": 0.1}))
    assert submit.returncode == 0, submit.stderr
    _wait(lab, "short-job", "Succeeded")
    (record,) = json.loads(fc(stack, "--json", "tasks", "get", "batch-job", "short-job").stdout)
    assert json.loads(record["returnPayload"]) == {"items": 3, "checksum": 3}
    duplicate = fc(stack, "invoke", "batch-job", "--async", "--task-id", "short-job")
    assert duplicate.returncode == 3 and "409" in duplicate.stderr


def test_the_config_updates_in_place_and_a_refresh_finds_no_drift(stack: Stack) -> None:
    import re

    out = stack.run("up", "--yes", "--skip-preview", "--config", "maxRetries=2").stdout
    assert re.search(r"1 updated", out) and "replaced" not in out.split("Resources:")[1], out
    refreshed = stack.up(refresh=True)
    assert re.search(r"Resources:\s+4 unchanged", refreshed), refreshed  # stack, fleet, function, config
