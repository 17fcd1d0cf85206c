"""Stem cells: their settings, which functions may take one, and how many each runtime keeps (the sizing policy).

Sizing: per built-in runtime, the number of cold starts of functions that could take a cell in the last
``window_seconds`` (default 300), at least ``min_per_runtime`` (default 1) while a function of that runtime is
deployed on the host, at most ``max_per_runtime`` (default 4). Cells are refilled only while the host's capacity
holds one more, no request waits and no pool was short of room in the last 10 s (``HostRoom.needs_room``), and a
second after the last take at the earliest (a burst's hand-overs never compete with container starts); they are
the first thing evicted when an instance needs room, so they never take room a function's instance could use.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

from fc_common import runtimes

from . import mounts

CELL_DISK_MB = 512  # the /tmp tmpfs of every cell: FC's default disk_size; the size is fixed when a container starts

# Why a function cannot take a stem cell: what a running container cannot be given (checked in this order).
FALLBACKS: tuple[tuple[str, Callable[[dict[str, Any]], bool]], ...] = (
    ("its runtime is not a built-in one (a custom runtime or container runs the user's own server or image)",
     lambda s: s.get("runtime") not in runtimes.BUILTIN),
    ("internet_access is false (a container's network namespace and routes are set when it starts)",
     lambda s: s.get("internet_access") is False),
    ("custom_dns is set (the engine writes resolv.conf when a container starts)",
     lambda s: bool(s.get("custom_dns"))),
    (f"disk_size is not {CELL_DISK_MB} MB (the /tmp tmpfs is sized when a container starts)",
     lambda s: int(s.get("disk_size") or CELL_DISK_MB) != CELL_DISK_MB),
    ("it uses GPU cards (device requests are made when a container starts)",
     lambda s: bool(s.get("gpu_config") or s.get("gpu_memory_size"))),
    ("environment_variables sets a variable its interpreter or the dynamic loader reads only when the process "
     "starts (LD_*, PYTHON* but PYTHONPATH, NODE_OPTIONS...): a cell's process started before it was assigned",
     lambda s: any(_read_at_start(name) for name in s.get("environment_variables") or {})),
)


# Read when a process starts, with no effect later; PYTHONPATH and NODE_PATH are not among them: a cell's runtime
# rebuilds its search paths from them at its assignment. PYTHONUNBUFFERED and PYTHONDONTWRITEBYTECODE hold in every
# cell already (python3 -u; set in the cell's environment). NODE_ENV and the like are read by code at run time.
_NODE_AT_START = ("NODE_OPTIONS", "NODE_EXTRA_CA_CERTS", "NODE_ICU_DATA", "NODE_PRESERVE_SYMLINKS")
_PYTHON_AT_ANY_TIME = ("PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE")


def _read_at_start(name: str) -> bool:
    return (name.startswith("LD_") or name in _NODE_AT_START
            or (name.startswith("PYTHON") and name not in _PYTHON_AT_ANY_TIME))


def fallback_reason(spec: dict[str, Any]) -> str | None:
    """None if a function of ``spec`` can start from a stem cell, else why it starts its own container."""
    return next((reason for reason, applies in FALLBACKS if applies(spec)), None)


@dataclass(frozen=True)
class CellSettings:
    """The agent config's ``stem_cells`` object. On by default (``{"enabled": false}`` turns them off). An instance
    born a cell keeps the cell's labels (``fc.cell``; Docker cannot relabel a container) but is renamed
    ``fc-<instance id>`` as a container started for it is named; the agent finds instances by container id in its
    state, never by label (docs/architecture.md, "Finding a function's containers")."""

    enabled: bool = True
    min_per_runtime: int = 1
    max_per_runtime: int = 4
    window_seconds: float = 300.0
    runtimes: tuple[str, ...] | None = None  # None: every built-in runtime a deployed function uses
    memory_mb: int = 128  # a cell's memory limit and reservation until a function takes it

    @classmethod
    def from_config(cls, raw: dict[str, Any] | None) -> "CellSettings":
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ValueError("stem_cells must be an object such as {\"enabled\": true}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"stem_cells: unknown keys {unknown} (known: {sorted(known)})")
        settings = cls(**{**raw, **({"runtimes": tuple(raw["runtimes"])} if raw.get("runtimes") else {})})
        if not 0 <= settings.min_per_runtime <= settings.max_per_runtime <= 64:
            raise ValueError("stem_cells: need 0 <= min_per_runtime <= max_per_runtime <= 64")
        if settings.window_seconds <= 0 or settings.memory_mb < 64:
            raise ValueError("stem_cells: window_seconds must be > 0 and memory_mb >= 64")
        for runtime in settings.runtimes or ():
            if runtime not in runtimes.BUILTIN:
                raise ValueError(f"stem_cells.runtimes: {runtime!r} is not a built-in runtime "
                                 f"({', '.join(runtimes.BUILTIN)})")
        return settings


class NoStemCells:
    """What the agent holds when stem cells are off: every cold start starts its own container. Cells left by an
    earlier run with them on are removed by the instance reconcile (no row accounts for them); their folders go
    here once no container of theirs is left (an instance a cell became keeps its mount until it is gone)."""

    def __init__(self, run_dir: Path | None = None) -> None:
        self._cells_dir = run_dir / "cells" if run_dir else None

    def prepare(self) -> None: ...

    def start(self) -> None: ...

    def close(self) -> None: ...

    def reconcile(self, owned: list[Any]) -> set[str]:
        if self._cells_dir is not None and self._cells_dir.is_dir():
            alive = {c.labels.get("fc.cell") for c in owned if c.running}
            for folder in self._cells_dir.iterdir():
                if folder.name not in alive:
                    try:
                        mounts.remove_cell_folder(folder)
                    except (OSError, mounts.MountError):
                        pass  # tried again at the next start
        return set()

    def take(self, spec: dict[str, Any], instance_id: str) -> None:
        return None

    def retired(self, container_id: str) -> None: ...

    def info(self) -> dict[str, Any]:
        return {"enabled": False}


class CellPolicy:
    """How many idle cells each runtime keeps: its cold starts in the window, bounded."""

    def __init__(self, settings: CellSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._starts: dict[str, deque[float]] = {}

    def cold_start(self, runtime: str) -> None:
        self._starts.setdefault(runtime, deque()).append(self._clock())

    def recent(self, runtime: str) -> int:
        starts = self._starts.get(runtime)
        if not starts:
            return 0
        horizon = self._clock() - self.settings.window_seconds
        while starts and starts[0] < horizon:
            starts.popleft()
        return len(starts)

    def wants(self, runtime: str) -> bool:
        return self.settings.runtimes is None or runtime in self.settings.runtimes

    def target(self, runtime: str, deployed: bool) -> int:
        if not self.wants(runtime):
            return 0
        floor = self.settings.min_per_runtime if deployed else 0
        return min(self.settings.max_per_runtime, max(floor, self.recent(runtime)))
