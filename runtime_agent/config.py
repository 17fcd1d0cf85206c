"""Agent configuration: one JSON file written by the provider (``/etc/fc-agent/config.json``, mode 0600)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

DEFAULT_RUNTIME_IMAGES = {
    "python3.10": "fc-runtime/python3.11:latest",
    "python3.11": "fc-runtime/python3.11:latest",
    "python3.12": "fc-runtime/python3.11:latest",
    # Debian 12 with python3: what FC's custom.debian12 offers a user's own HTTP server.
    "custom": "fc-runtime/python3.11:latest",
    "custom.debian12": "fc-runtime/python3.11:latest",
}


@dataclass(frozen=True)
class AgentConfig:
    host_name: str
    token: str
    state_dir: Path = Path("/var/lib/fc-agent")
    control_address: str = "127.0.0.1"
    control_port: int = 7701
    invoke_address: str = "0.0.0.0"
    invoke_port: int = 9000
    docker_url: str = "unix:///var/run/docker.sock"
    # Runtime name -> image reference. On hosts that reach a registry, e.g. {"python3.11": "python:3.11-slim"}.
    runtime_images: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_RUNTIME_IMAGES))
    idle_timeout_seconds: float = 300.0
    max_concurrent_starts: int = 4
    start_timeout_seconds: float = 30.0
    # Host capacity for instance reservations; null: os.cpu_count() and MemTotal.
    capacity_cpu: float | None = None
    capacity_memory_mb: int | None = None
    # The host's GPUs as the Fleet declares them (fc_common.gpu.parse_host_gpus); null: none.
    gpus: dict | None = None

    @classmethod
    def load(cls, path: Path) -> "AgentConfig":
        raw = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{path}: unknown keys {unknown}")
        if "state_dir" in raw:
            raw["state_dir"] = Path(raw["state_dir"])
        if "runtime_images" in raw:
            raw["runtime_images"] = {**DEFAULT_RUNTIME_IMAGES, **raw["runtime_images"]}
        return cls(**raw)

    @property
    def code_dir(self) -> Path:
        return self.state_dir / "code"

    @property
    def database(self) -> Path:
        return self.state_dir / "agent.db"
