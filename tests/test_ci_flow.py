"""The CI/CD flow of docs/ci-cd.md, run as CI would run it: examples/ci/automation.py (Pulumi's Automation API)
previews, deploys (shipping the runtime image to a host whose engine lacks it), finds no drift, finds the drift of
a host whose agent was stopped for good and of a host whose engine lost the image (exit 3), and the next up repairs
both; nothing prompts."""

from __future__ import annotations

import subprocess
from pathlib import Path

from _agent import wait_for
from _pulumi import REPO, Stack
from test_images import has_image, remove_image

from fc_lab import Lab

SCRIPT = REPO / "examples" / "ci" / "automation.py"
PYTHON = REPO / ".venv" / "bin" / "python"


def flow(stack: Stack, operation: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PYTHON), str(SCRIPT), operation, "--stack", stack.name, "--project",
                           str(stack.project), "--verbose"], env=stack.env, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)


def test_preview_up_and_scheduled_drift_detection(lab: Lab, fleet_file: Path, tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "index.py").write_text("def handler(event, context):\n    return event\n")
    stack = Stack(tmp_path, "ci", program=REPO / "tests" / "programs" / "function")
    stack.config(fleetFile=str(fleet_file), functionName="ci-fn", codeDir=str(tmp_path / "code"))
    try:
        preview = flow(stack, "preview")
        assert preview.returncode == 0 and "preview: {'create': 3}" in preview.stdout, preview.stdout + preview.stderr
        bare = lab.fleet()["hosts"][1]["name"]
        remove_image(lab, bare)  # a fresh host: only Docker and python3
        up = flow(stack, "up")
        assert up.returncode == 0 and "up: succeeded" in up.stdout, up.stdout + up.stderr
        assert has_image(lab, bare), "the Fleet did not ship the runtime image"
        clean = flow(stack, "drift")
        assert clean.returncode == 0 and "drift: none" in clean.stdout, clean.stdout + clean.stderr

        remove_image(lab, bare)  # pruned on the host: drift as well, and the next up ships it again
        victim = lab.fleet()["hosts"][2]["name"]
        lab.run(victim, ["sh", "-c", "kill $(cat /var/lib/fc-agent/supervisor.pid)"], check=True)
        wait_for(lambda: lab.run(victim, ["sh", "-c", "kill -0 $(cat /var/lib/fc-agent/agent.pid)"],
                                 capture_output=True).returncode != 0, "the agent to stop")
        drifted = flow(stack, "drift")
        assert drifted.returncode == 3 and "the hosts differ from the code" in drifted.stderr, \
            drifted.stdout + drifted.stderr
        assert flow(stack, "up").returncode == 0
        assert has_image(lab, bare), "the up after the drift did not ship the lost image again"
        assert flow(stack, "drift").returncode == 0
    finally:
        destroyed = flow(stack, "destroy")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
