"""Drives the real Pulumi CLI on a throwaway project and stack (local file backend), for end-to-end tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class PulumiFailed(AssertionError):
    pass


class Stack:
    def __init__(self, workdir: Path, name: str, program: Path = REPO / "examples" / "quickstart") -> None:
        self.workdir = workdir
        self.name = name
        project = workdir / "project"
        shutil.copytree(program, project / "program", ignore=shutil.ignore_patterns("__pycache__"))
        (project / "Pulumi.yaml").write_text(
            "name: fc-test\nmain: program\nruntime:\n  name: python\n  options:\n"
            f"    virtualenv: {REPO / '.venv'}\n"
        )
        self.project = project
        state = workdir / "state"
        state.mkdir()
        self.env = {
            **os.environ,
            "PULUMI_BACKEND_URL": f"file://{state}",
            "PULUMI_CONFIG_PASSPHRASE": "test-passphrase",
            "PULUMI_SKIP_UPDATE_CHECK": "1",
            "PULUMI_PYTHON_CMD": str(REPO / ".venv" / "bin" / "python"),
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_HOME": str(workdir / "pulumi-home"),
        }
        if shutil.which("pulumi", path=self.env.get("PATH")) is None:
            raise PulumiFailed("the Pulumi CLI is not on PATH: run scripts/setup.sh (or source scripts/env.sh)")
        self.run("stack", "init", name)

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["pulumi", *args, "--non-interactive", "--cwd", str(self.project)],
                              env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise PulumiFailed(f"pulumi {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def config(self, *, secrets: dict[str, str] | None = None, **values: str) -> None:
        """Sets ``values`` (and ``secrets``, encrypted) in one CLI call: each call costs the CLI's start-up."""
        pairs = [arg for key, value in values.items() for arg in ("--plaintext", f"{key}={value}")]
        pairs += [arg for key, value in (secrets or {}).items() for arg in ("--secret", f"{key}={value}")]
        if pairs:
            self.run("config", "set-all", *pairs)

    def unset(self, *keys: str, check: bool = True) -> None:
        """Removes config ``keys`` in one CLI call."""
        self.run("config", "rm-all", *keys, check=check)

    def up(self, *, refresh: bool = False, diff: bool = False) -> str:
        """``diff``: the output shows each resource's changed properties, as ``preview --diff`` would."""
        return self.run("up", "--yes", "--skip-preview", *(["--refresh"] if refresh else []),
                        *(["--diff"] if diff else [])).stdout

    def preview(self) -> str:
        return self.run("preview", "--diff").stdout

    def destroy(self) -> str:
        return self.run("destroy", "--yes").stdout

    def outputs(self, *, show_secrets: bool = False) -> dict[str, Any]:
        return json.loads(self.run("stack", "output", "--json", *(["--show-secrets"] if show_secrets else [])).stdout)

    def export_state(self) -> str:
        return self.run("stack", "export", "--show-secrets=false").stdout
