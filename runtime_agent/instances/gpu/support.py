"""Whether this host's Docker can hand a card to a container, and how: the legacy NVIDIA hook (dockerd registers
its ``nvidia`` device driver only when ``nvidia-container-runtime-hook`` is on its PATH: moby daemon/nvidia_linux.go)
or CDI (Docker 25+ with CDI enabled and an NVIDIA CDI spec in one of its spec dirs). Without either, GPU functions
are refused on the host with a message that says what to install."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

HOOK = "nvidia-container-runtime-hook"
INSTALL_HINT = ("install the NVIDIA driver and nvidia-container-toolkit, then either run `nvidia-ctk runtime "
                "configure --runtime=docker` and restart dockerd (the NVIDIA hook), or on Docker 25+ with CDI "
                "enabled run `nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`")


@dataclass(frozen=True)
class GpuSupport:
    mode: str | None  # "nvidia" (DeviceRequest driver nvidia), "cdi", "simulated", or None: cannot run GPUs
    docker_version: str
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "docker_version": self.docker_version, "problem": self.problem}


def _cdi_has_nvidia(dirs: list[str]) -> bool:
    for folder in dirs:
        for path in sorted(Path(folder).glob("*")) if Path(folder).is_dir() else []:
            try:
                if path.suffix in (".yaml", ".yml", ".json") and "nvidia.com/gpu" in path.read_text()[:65536]:
                    return True
            except OSError:
                continue
    return False


def probe(engine_info: dict[str, Any], *, simulated: bool,
          which: Callable[[str], str | None] = shutil.which) -> GpuSupport:
    """``engine_info``: Docker's ``GET /info``."""
    version = str(engine_info.get("ServerVersion") or "unknown")
    if simulated:
        return GpuSupport("simulated", version)
    if which(HOOK):
        return GpuSupport("nvidia", version)
    cdi_dirs = list(engine_info.get("CDISpecDirs") or [])
    if cdi_dirs and _cdi_has_nvidia(cdi_dirs):
        return GpuSupport("cdi", version)
    runtimes = sorted((engine_info.get("Runtimes") or {}).keys())
    found = (f"Docker {version}, runtimes {', '.join(runtimes) or 'none'}, no {HOOK} on PATH, CDI spec dirs "
             f"{', '.join(cdi_dirs) or 'none'} without an NVIDIA spec")
    return GpuSupport(None, version, f"no GPU runtime on this host ({found}): {INSTALL_HINT}")
