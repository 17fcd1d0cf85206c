"""Stem cells: started, frozen, code-less runtime containers that a cold start takes instead of starting one.

A cell (``cellcontainer``: built like an instance of its runtime) has its own empty folders
``<run>/cells/<id>/code`` and ``.../opt`` at ``/code`` and ``/opt``, read-only and ``rslave``. Its runtime starts,
answers ``GET /``, and waits for ``POST /assign``; the cell is then frozen. A cold start that may use one
(``cellpolicy``) takes an idle cell of its runtime and, in this order: marks it assigned in SQLite (never handed
out twice, even after ``kill -9``), thaws it, writes the function's memory and CPU limits into its cgroup,
bind-mounts the function's code (and its merged layers, with the runtime bound back inside them) read-only onto
the cell's folders (they appear at ``/code`` and ``/opt`` in the container: ``mounts``), and posts the function's
environment and handler to the runtime over the agent's connection to it. The engine's update call then records
the same limits (``docker inspect``) and the container is renamed after its instance, off the critical path. The
cell is that function's instance for its whole life and is never returned; the refill thread starts another.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import statistics
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any, Callable

from fc_common.sizing import Size

from . import cellcontainer, mounts
from .capacity import Capacity, HostRoom
from .cellcontainer import CELL_LABEL, Cell, CellError, Record, Recorder
from .cellpolicy import CellPolicy, CellSettings, NoStemCells, fallback_reason
from .cgroups import CgroupError, CgroupLimits
from .driver import ContainerDriver, ContainerInfo, ContainerSpec, DriverError
from .freezer import Freezer, FreezerError
from .spec import BOOTSTRAP_DIR, RUNTIME_DIGEST, STARTUP_CPU
from ..state.cellstore import ASSIGNED, CellStore
from ..state.layers import MERGED_DIR

log = logging.getLogger("fc-agent")

REFILL_PERIOD = 0.5
REFILL_DELAY = 1.0  # no cell starts within this long of a take: container starts would slow a burst's hand-overs
HAND_OVER_STEPS = ("thaw", "limits", "mount", "assign")  # timed per take (info()'s hand_over_ms)


class StemCells:
    def __init__(self, settings: CellSettings, *, driver: ContainerDriver, store: CellStore, capacity: Capacity,
                 released: Callable[[], None], host_name: str, secret: str, images: dict[str, str],
                 run_dir: Path, code_root: Path, layers_root: Path, deployed: Callable[[], set[str]],
                 waiting: Callable[[], bool]) -> None:
        self.settings = settings
        self.policy = CellPolicy(settings)
        self._driver, self._store, self._capacity = driver, store, capacity
        self._released = released  # a reservation came back: waiting requests may fit now
        self._host_name, self._secret, self._images = host_name, secret.encode(), images
        self._cells_dir, self._views_dir, self._code_root = run_dir / "cells", run_dir / "views", code_root
        self._layers_root = layers_root
        self._deployed, self._waiting = deployed, waiting
        self._idle: dict[str, list[Cell]] = {}
        self._assigned: dict[str, Cell] = {}  # container id -> cell that became an instance
        self._timings: deque[dict[str, float]] = deque(maxlen=100)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._last_take = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._refill_loop, name="stem-cells", daemon=True)
        self._recorder = Recorder(driver, lambda container_id: self._assigned.get(container_id) is None)
        self.size = Size(0.0, settings.memory_mb)  # frozen: no CPU; memory at the cell's limit

    @classmethod
    def for_host(cls, settings: CellSettings, config: Any, driver: ContainerDriver, room: "HostRoom",
                 store: CellStore, pools: Callable[[], list[Any]]) -> "StemCells | NoStemCells":
        """The agent's stem cells (none when the config leaves them off), their eviction registered with the
        host's room. ``config``: the AgentConfig; ``pools``: the agent's function pools."""
        if not settings.enabled:
            store.close()
            return NoStemCells(config.run_dir)
        cells = cls(settings, driver=driver, store=store, capacity=room.capacity, released=room.wake_all,
                    host_name=config.host_name, secret=config.token, images=config.runtime_images,
                    run_dir=config.run_dir, code_root=config.code_dir,
                    layers_root=config.state_dir / "layers" / MERGED_DIR, waiting=room.needs_room,
                    deployed=lambda: {p.record.spec["runtime"] for p in pools() if not fallback_reason(p.record.spec)})
        room.reclaimers.append(cells.reclaim)
        return cells

    # start-up and reconcile ----------------------------------------------------------------------------------
    def prepare(self) -> None:
        mounts.make_shared_root(self._cells_dir)
        for view, source in (("code", self._code_root), ("layers", self._layers_root), ("runtime", BOOTSTRAP_DIR)):
            mounts.read_only_view(source, self._views_dir / view)

    def reconcile(self, owned: list[ContainerInfo]) -> set[str]:
        """After a restart: idle cells that still run this runtime build are re-adopted (still frozen); assigned
        ones stay for the instance reconcile (which matches them by container id); anything else is removed.
        Returns the ids of the idle cells kept, which the instance reconcile must leave alone."""
        rows = {r.container_id: r for r in self._store.all()}
        kept: set[str] = set()
        for container in owned:
            cell_id = container.labels.get(CELL_LABEL)
            if cell_id is None:
                continue
            row = rows.pop(container.id, None)
            folder = self._cells_dir / cell_id
            if row is not None and row.state == ASSIGNED:
                self._assigned[container.id] = Cell(cell_id, row.runtime, container, "", folder)
                if row.instance_id:  # named after its instance (again: the rename may not have happened)
                    self._recorder.put(Record(container.id, f"fc-{row.instance_id}"))
                continue
            if (row is None or not container.running or row.digest != RUNTIME_DIGEST[:16]
                    or row.image != self._images.get(row.runtime)):
                log.info("stem cells: removing cell %s", cell_id)
                self._remove_container(container.id, cell_id, folder)
                continue
            info = self._driver.inspect(container.id)
            self._capacity.force_reserve(f"cell:{cell_id}", self.size)
            self._idle.setdefault(row.runtime, []).append(Cell(cell_id, row.runtime, info, self._token(cell_id),
                                                               folder))
            kept.add(container.id)
        for row in rows.values():  # rows whose container is gone
            self._store.delete(row.id)
        known = {c.id for cells in self._idle.values() for c in cells} | {c.id for c in self._assigned.values()}
        for folder in self._cells_dir.iterdir() if self._cells_dir.is_dir() else ():
            if folder.name not in known:
                self._clean_folder(folder)
        if kept or self._assigned:
            log.info("stem cells: re-adopted %d idle cell(s); %d were assigned", len(kept), len(self._assigned))
        return kept

    def start(self) -> None:
        self._thread.start()
        self._recorder.start()

    def close(self) -> None:
        self._stopping.set()
        self._wake.set()

    # taking a cell --------------------------------------------------------------------------------------------
    def take(self, spec: dict[str, Any], instance_id: str) -> Cell | None:
        """An idle cell for a cold start of ``spec``, recorded as given to ``instance_id``; None: start a
        container of its own (no cell fits the function, or none is idle)."""
        if fallback_reason(spec) is not None:
            return None
        runtime = spec["runtime"]
        self.policy.cold_start(runtime)
        self._last_take = time.monotonic()  # refill once the cold starts settle (REFILL_DELAY)
        while True:
            with self._lock:
                idle = self._idle.get(runtime)
                cell = idle.pop(0) if idle else None
            if cell is None:
                return None
            if self._store.assign(cell.id, instance_id):  # in SQLite before anything of the function reaches it
                with self._lock:
                    self._assigned[cell.container.id] = cell
                self._capacity.release(cell.key)  # the instance holds its own reservation from here
                self._released()
                return cell
            self._discard(cell)

    def launch(self, cell: Cell, spec: ContainerSpec, *, boost: bool,
               fallback: Callable[[ContainerSpec], ContainerInfo]) -> tuple[ContainerInfo, bool]:
        """Makes the taken cell ``spec``'s container. Returns it, and whether its CPU limit is final already
        (``boost``: the start keeps STARTUP_CPU for the initializer, as a fresh container does). A cell that cannot
        be given the function is removed and a container of the function's own started instead."""
        marks = [time.perf_counter()]
        try:
            try:
                Freezer.for_pid(cell.container.pid).thaw()
            except FreezerError as exc:
                raise CellError(str(exc)) from exc
            marks.append(time.perf_counter())
            limits = CgroupLimits.for_pid(cell.container.pid)
            limits.set_memory(spec.memory_mb)
            # The start boost, as a fresh container has until it answers: the runtime takes its assignment with it
            # (under a 128 MB function's 1/16 vCPU, Node.js took ~200 ms over it: two throttled 100 ms periods).
            limits.set_cpu(max(spec.cpu, STARTUP_CPU))
            marks.append(time.perf_counter())
            binds = {dst: Path(src) for src, dst in spec.read_only_binds.items()}
            layers = binds.get("/opt")  # the merged layers, if the function has any
            mounts.inject(cell.folder, self._views_dir, binds["/code"].relative_to(self._code_root),
                          layers.relative_to(self._layers_root) if layers is not None else None)
            marks.append(time.perf_counter())
            cellcontainer.assign(cell, spec.environment)
            if not boost:  # no initializer to run: the function's own limit from its first request on
                limits.set_cpu(spec.cpu)
            marks.append(time.perf_counter())
        except (CellError, CgroupError, mounts.MountError, OSError, ValueError) as exc:
            log.warning("stem cell %s could not take %s (%s); starting a container of its own", cell.id,
                        spec.name, exc)
            self._retire(cell)
            return fallback(spec), False
        self._timings.append({step: (b - a) * 1000 for step, a, b in zip(HAND_OVER_STEPS, marks, marks[1:])})
        self._recorder.put(Record(cell.container.id, spec.name, spec.memory_mb, spec.cpu))
        return cell.container, not boost

    def retired(self, container_id: str) -> None:
        """The instance a cell became has stopped (its container is gone): its mounts and folder go too."""
        with self._lock:
            cell = self._assigned.pop(container_id, None)
        if cell is not None:
            self._clean_folder(cell.folder)
            self._store.delete(cell.id)

    def _retire(self, cell: Cell) -> None:
        self._remove_container(cell.container.id, cell.id, cell.folder)
        with self._lock:
            self._assigned.pop(cell.container.id, None)

    # eviction and reporting -----------------------------------------------------------------------------------
    def reclaim(self, runtime: str | None, fits: Callable[[], bool]) -> bool:
        """Removes idle cells until ``fits()`` (cells of other runtimes first, ``runtime``'s last). True if any
        went. Cells are the first thing evicted: they only ever hold room nobody needed."""
        evicted = False
        while not fits():
            with self._lock:
                pools = sorted(self._idle.items(), key=lambda kv: (kv[0] == runtime, -len(kv[1])))
                victim = next((cells.pop() for _, cells in pools if cells), None)
            if victim is None:
                break
            log.info("stem cells: evicted idle cell %s (%s) to make room", victim.id, victim.runtime)
            self._discard(victim)
            evicted = True
        return evicted

    def info(self) -> dict[str, Any]:
        deployed = self._deployed()
        with self._lock:
            runtimes = sorted(set(self._idle) | deployed)
            idle = {r: len(self._idle.get(r, [])) for r in runtimes}
            assigned = len(self._assigned)
        timings = list(self._timings)
        hand_over = {step: round(statistics.median(t[step] for t in timings), 3) for step in HAND_OVER_STEPS} \
            if timings else {}
        return {"enabled": True, "assigned": assigned, "hand_over_ms": hand_over,
                "runtimes": {r: {"idle": idle[r], "target": self.policy.target(r, r in deployed),
                                 "recent_cold_starts": self.policy.recent(r)} for r in runtimes}}

    def idle_ids(self) -> set[str]:
        with self._lock:
            return {c.container.id for cells in self._idle.values() for c in cells}

    # refill ---------------------------------------------------------------------------------------------------
    def _refill_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(REFILL_PERIOD)
            self._wake.clear()
            try:
                self._refill()
            except Exception:  # noqa: BLE001 - the refill thread must survive one bad start
                log.exception("stem cells: refill failed")

    def _refill(self) -> None:
        if time.monotonic() - self._last_take < REFILL_DELAY:
            return
        deployed = {r for r in self._deployed() if self._images.get(r)}
        for runtime in sorted(deployed | set(self._idle)):
            target = self.policy.target(runtime, runtime in deployed)
            while not self._stopping.is_set():
                with self._lock:
                    idle = self._idle.setdefault(runtime, [])
                    surplus = idle.pop() if len(idle) > target else None
                    short = len(idle) < target
                if surplus is not None:  # demand fell: shrink one at a time
                    self._discard(surplus)
                    continue
                if not short or self._waiting() or not self._start_one(runtime):
                    break

    def _start_one(self, runtime: str) -> bool:
        cell_id = uuid.uuid4().hex[:12]
        if not self._capacity.try_reserve(f"cell:{cell_id}", self.size):
            return False  # the host is full: cells only take room nobody uses
        folder = self._cells_dir / cell_id
        try:
            mounts.make_cell_folder(folder)
            container = self._driver.start(cellcontainer.container_spec(
                cell_id, runtime, folder, image=self._images[runtime], token=self._token(cell_id),
                host_name=self._host_name, memory_mb=self.settings.memory_mb))
        except (OSError, DriverError) as exc:
            log.warning("stem cells: cannot start a %s cell: %s", runtime, exc)
            self._capacity.release(f"cell:{cell_id}")
            self._clean_folder(folder)
            self._stopping.wait(5)  # a broken image or engine: do not spin
            return False
        cell = Cell(cell_id, runtime, container, self._token(cell_id), folder)
        try:
            cellcontainer.wait_ready(cell, self._driver, self._stopping)
            Freezer.for_pid(container.pid).freeze()
            self._store.add_idle(cell_id, container.id, runtime, self._images[runtime], RUNTIME_DIGEST[:16])
        except (CellError, FreezerError, OSError) as exc:
            log.warning("stem cells: %s cell %s did not become ready: %s", runtime, cell_id, exc)
            self._discard(cell)
            return False
        with self._lock:
            self._idle.setdefault(runtime, []).append(cell)
        return True

    # helpers --------------------------------------------------------------------------------------------------
    def _token(self, cell_id: str) -> str:
        """The cell's assignment token, derived from the agent's secret: nothing secret is stored for it."""
        return hmac.new(self._secret, f"stem-cell:{cell_id}".encode(), hashlib.sha256).hexdigest()

    def _discard(self, cell: Cell) -> None:
        """Removes an idle (or refused) cell and returns its reservation."""
        self._remove_container(cell.container.id, cell.id, cell.folder)
        if self._capacity.release(cell.key):
            self._released()

    def _remove_container(self, container_id: str, cell_id: str, folder: Path) -> None:
        try:
            self._driver.destroy(container_id)
        except DriverError as exc:
            log.warning("stem cells: cannot remove cell %s: %s", cell_id, exc)
        self._store.delete(cell_id)
        self._clean_folder(folder)

    @staticmethod
    def _clean_folder(folder: Path) -> None:
        try:
            mounts.remove_cell_folder(folder)
        except (OSError, mounts.MountError) as exc:
            log.warning("stem cells: cannot clean %s: %s", folder, exc)
