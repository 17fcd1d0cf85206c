"""Agent configuration: one JSON file written by the provider (``/etc/fc-agent/config.json``, mode 0600)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from fc_common.runtimes import DEFAULT_RUNTIME_IMAGES  # noqa: F401 - where the agent's callers look for it


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
    # One 0600 file per access key the invoke API accepts (written through the control API, see state/keys.py).
    access_keys_dir: Path = Path("/etc/fc-agent/access-keys")
    # The invoke port's guards (api/invoke.py): a client's head must arrive within head_timeout_seconds, a kept-
    # alive connection may idle keepalive_timeout_seconds between requests, and at most max_connections are open.
    head_timeout_seconds: float = 10.0
    keepalive_timeout_seconds: float = 60.0
    max_connections: int = 1024
    # Seeds the draws that split an alias's traffic between its versions (null: OS entropy); set it to make a
    # sequence of invocations route reproducibly.
    routing_seed: int | None = None
    # Threads that run queued asynchronous tasks (each holds one instance slot while its task runs).
    async_workers: int = 16
    # Where async tasks are queued (events/taskqueue.backend): "local", the host's SQLite file, or
    # {"nats": {"servers": [...], "user": ..., "password": ..., "replicas": 3}}, the fleet's JetStream cluster.
    task_queue: str | dict = "local"
    # The host's GPUs as the Fleet declares them (fc_common.gpu.parse_host_gpus); null: none.
    gpus: dict | None = None
    # Stem cells (instances/cellpolicy.CellSettings): started, code-less runtime containers that cold starts take;
    # null: on, with the defaults; {"enabled": false}: off. Their mounts live under run_dir (a tmpfs: gone at reboot, as the cells).
    stem_cells: dict | None = None
    run_dir: Path = Path("/run/fc-agent")
    # Target tracking's window and cooldowns (events/provision.Tuning.from_config: window_seconds,
    # scale_out_cooldown_seconds, scale_in_cooldown_seconds); null: the documented 60 s / 60 s / 300 s.
    provision_tuning: dict | None = None

    @classmethod
    def load(cls, path: Path) -> "AgentConfig":
        raw = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{path}: unknown keys {unknown}")
        for name in ("state_dir", "access_keys_dir", "run_dir"):
            if name in raw:
                raw[name] = Path(raw[name])
        if "runtime_images" in raw:
            raw["runtime_images"] = {**DEFAULT_RUNTIME_IMAGES, **raw["runtime_images"]}
        return cls(**raw)

    @property
    def code_dir(self) -> Path:
        return self.state_dir / "code"

    @property
    def database(self) -> Path:
        return self.state_dir / "agent.db"
