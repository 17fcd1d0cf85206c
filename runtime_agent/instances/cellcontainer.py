"""One stem cell's container: how it is built, how it becomes ready, how its runtime is given a function, and what
the engine is told afterwards, off the critical path (stem cells, issue 15; ``stemcells`` keeps the pool).

A cell is built like an instance of its runtime (nobody, read-only root, no capabilities, no-new-privileges, pids
limit, a 512 MB ``/tmp``, the runtime at ``/opt/fc-runtime``); its ``/code`` and ``/opt`` are its own empty folders,
read-only and ``rslave`` (``mounts``). Its name is ``fc-cell.<id>`` until a function takes it (no instance's
name has a dot: function names have none); then the recorder renames it ``fc-<instance id>``, the name a container started for the instance has, so that ``docker ps`` names a
function's containers alike whatever their birth (Docker cannot change a container's labels: an instance born a
cell keeps ``fc.cell``; the agent itself finds instances by container id in its SQLite state).
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .cellpolicy import CELL_DISK_MB
from .driver import AGENT_LABEL, ContainerDriver, ContainerInfo, ContainerSpec, DriverError
from .spec import BOOTSTRAP_DIR, RUNTIME_PORT, STARTUP_CPU, builtin_command, layer_paths

log = logging.getLogger("fc-agent")

CELL_LABEL = "fc.cell"
CELL_RUNTIME_LABEL = "fc.cell.runtime"
READY_TIMEOUT = 30.0


class CellError(Exception):
    pass


@dataclass
class Cell:
    id: str
    runtime: str
    container: ContainerInfo
    token: str
    folder: Path

    @property
    def key(self) -> str:  # the cell's reservation in the capacity ledger
        return f"cell:{self.id}"


def container_spec(cell_id: str, runtime: str, folder: Path, *, image: str, token: str, host_name: str,
                   memory_mb: int) -> ContainerSpec:
    environment = {"FC_STEM_CELL_TOKEN": token, "FC_FUNC_CODE_PATH": "/code",
                   "FC_RUNTIME_PORT": str(RUNTIME_PORT), "PYTHONDONTWRITEBYTECODE": "1",
                   **layer_paths(runtime)}  # per runtime, never per function: read at the interpreter's start
    return ContainerSpec(
        name=f"fc-cell.{cell_id}", image=image, command=builtin_command(runtime), environment=environment,
        labels={AGENT_LABEL: host_name, CELL_LABEL: cell_id, CELL_RUNTIME_LABEL: runtime},
        read_only_binds={str(BOOTSTRAP_DIR): "/opt/fc-runtime"},  # mounted after /opt (deeper last)
        propagated_binds={str(folder / "code"): "/code", str(folder / "opt"): "/opt"},
        memory_mb=memory_mb, cpu=STARTUP_CPU, tmp_size_mb=CELL_DISK_MB, working_dir="/",
    )


def wait_ready(cell: Cell, driver: ContainerDriver, stopping: threading.Event) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        conn = http.client.HTTPConnection(cell.container.address, RUNTIME_PORT, timeout=1)
        try:
            conn.request("GET", "/")
            if conn.getresponse().status == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        if time.monotonic() > deadline or stopping.is_set():
            raise CellError(f"its runtime did not answer within {READY_TIMEOUT:g}s")
        report = driver.exit_report(cell.container.id)
        if report is not None:
            raise CellError(f"its process {report}")
        time.sleep(0.02)


def assign(cell: Cell, environment: dict[str, str]) -> None:
    """Gives the cell's runtime the function's environment (its handler in it) over the agent's connection."""
    body = json.dumps({"environment": environment}).encode()
    conn = http.client.HTTPConnection(cell.container.address, RUNTIME_PORT, timeout=5)
    try:
        conn.request("POST", "/assign", body, {"x-fc-cell-token": cell.token, "content-type": "application/json"})
        reply = conn.getresponse()
        answer = reply.read()
    except (OSError, http.client.HTTPException) as exc:
        raise CellError(f"the cell's runtime did not take the assignment: {exc}") from exc
    finally:
        conn.close()
    if reply.status != 200:
        raise CellError(f"the cell's runtime refused the assignment: {reply.status} {answer[:200]!r}")


@dataclass(frozen=True)
class Record:
    """What the engine is told about a cell that became an instance: its name (the one a container started for the
    instance has, ``fc-<instance id>``) and its limits (None: recorded already, as after a restart)."""

    container_id: str
    name: str
    memory_mb: int | None = None
    cpu: float | None = None


class Recorder:
    """One thread tells the engine, one container after another: a burst of hand-overs must not start a burst of
    runc processes (``docker update``) competing with the functions' first requests for CPU."""

    def __init__(self, driver: ContainerDriver, gone: Callable[[str], bool]) -> None:
        self._driver = driver
        self._gone = gone  # the container stopped meanwhile: nothing to record
        self._queue: queue.SimpleQueue[Record] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="stem-cell-recorder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, record: Record) -> None:
        self._queue.put(record)

    def _run(self) -> None:
        while True:
            record = self._queue.get()
            if self._gone(record.container_id):
                continue
            try:
                if record.memory_mb is not None and record.cpu is not None:
                    self._driver.update_limits(record.container_id, record.memory_mb, record.cpu)
                self._driver.rename(record.container_id, record.name)
            except DriverError as exc:  # gone already (a one-request instance may stop first): nothing to record
                log.info("stem cells: %s not recorded: %s", record.container_id[:12], exc)
