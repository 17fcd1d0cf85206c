"""The host's cards and who holds them: ``HostCards`` probes the inventory and Docker's GPU support once at start,
leases whole cards or MIG devices (a card in MIG mode never whole) to instances (first free by UUID, one SQLite transaction per lease: ``state.cardstore``),
releases them when an instance has stopped (a frozen instance keeps its card), re-adopts leases from container
labels after a restart, and says what a GPU instance's container gets: explicit UUIDs in the device request (never
a count), or for simulated cards no device request at all."""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any, Callable

from fc_common.gpu import GpuNeed, HostGpus

from ...errors import Conflict
from ...state.cardstore import CardStore
from ..driver import ContainerSpec
from .inventory import GpuInventory, GpuInventoryError, GpuReport
from .support import GpuSupport, probe

log = logging.getLogger("fc-agent")

UUIDS_LABEL = "fc.gpu.uuids"  # the cards a container holds, comma-separated: what reconcile re-adopts
SIMULATED_LABEL = "fc.gpu.simulated"


class HostCards:
    def __init__(self, declared: HostGpus | None, host_name: str, store: CardStore,
                 inventory: GpuInventory | None, engine_info: Callable[[], dict[str, Any]]) -> None:
        self.declared = declared
        self._host = host_name
        self._store = store
        self._inventory = inventory
        self._engine_info = engine_info
        self.report = GpuReport("none")
        self.error: str | None = None
        self.support: GpuSupport | None = None
        self._holder: dict[str, str] = {}  # card uuid -> instance id
        self._lock = threading.Lock()
        # GPU pools (fc.GpuPool): name -> (spec {gpu_type, functions, mix_mode}, the cards reserved for it here).
        self._pools: dict[str, tuple[dict[str, Any], list[str]]] = store.pools()

    # inventory ---------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Reads the cards and the container support; failures are kept and shown (never a silent fallback)."""
        if self.declared is None or self._inventory is None:
            return
        try:
            self.report = self._inventory.probe()
            self.error = None
        except GpuInventoryError as exc:
            self.report, self.error = GpuReport(self._inventory.source), str(exc)
            log.error("GPU inventory: %s", exc)
        try:
            self.support = probe(self._engine_info(), simulated=self.report.simulated)
        except Exception as exc:  # noqa: BLE001 - reported in /v1/info and in every refusal
            self.support = GpuSupport(None, "unknown", f"cannot ask Docker about GPU support: {exc}")

    def _cards_of(self, unit: str) -> list[str]:
        """The leasable devices of a ``unit_key``: whole cards of a type (never a card in MIG mode), or the MIG
        devices of a type and size."""
        return sorted(d.uuid for d in self.report.devices if d.unit == unit)

    def free(self, unit: str, function: str | None = None) -> int:
        with self._lock:
            if function is not None:
                return len(self._usable(function, unit))
            return sum(1 for uuid in self._cards_of(unit) if uuid not in self._holder)

    # pools --------------------------------------------------------------------------------------------------
    def put_pool(self, name: str, gpu_type: str, count: int, functions: list[str], mix_mode: bool) -> list[str]:
        """Reserves ``count`` cards of ``gpu_type`` here for the pool (keeping the ones it has), refused (409
        GpuPoolTooLarge) when the host has fewer cards that no other pool holds."""
        with self._lock:
            owner = self._owner()
            kept = [u for u in self._pools.get(name, ({}, []))[1] if u in self._cards_of(gpu_type)]
            spare = sorted((u for u in self._cards_of(gpu_type) if u not in owner),
                           key=lambda u: (u in self._holder, u))  # cards nobody holds first
            chosen = sorted((kept + spare)[:count])
            if len(chosen) < count:
                others = len([u for u in self._cards_of(gpu_type) if owner.get(u) not in (None, name)])
                raise Conflict(f"GPU pool {name} wants {count} {gpu_type} card(s) on host {self._host}, which has "
                               f"{len(self._cards_of(gpu_type))} ({self.report.source}), {others} of them in other "
                               "pools", code="GpuPoolTooLarge")
            spec = {"gpu_type": gpu_type, "functions": sorted(functions), "mix_mode": bool(mix_mode)}
            if not self._store.put_pool(name, spec, chosen):
                raise Conflict(f"GPU pool {name}: a card was taken by another pool meanwhile; retry",
                               code="GpuPoolConflict")
            self._pools[name] = (spec, chosen)
            return chosen

    def delete_pool(self, name: str) -> bool:
        with self._lock:
            self._pools.pop(name, None)
        return self._store.delete_pool(name)

    def pool_info(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            if name not in self._pools:
                return None
            spec, cards = self._pools[name]
            leased = [u for u in cards if u in self._holder]
            return {"name": name, **spec, "cards": cards, "used": len(leased), "free": len(cards) - len(leased),
                    "source": self.report.source, "simulated": self.report.simulated}

    def resident_instances(self, function: str, need: GpuNeed | None) -> int:
        """Instances a pool-bound function keeps started here: its pool's cards / the cards one instance takes."""
        bound = self.pool_of(function) if need is not None else None
        return len(bound[2]) // need.cards if bound and need else 0

    # admission ----------------------------------------------------------------------------------------------
    def admit(self, name: str, need: GpuNeed | None) -> None:
        """Refuses (409 GpuUnavailable) a GPU function this host can never run, saying why."""
        if need is None:
            return
        where = f"host {self._host}"
        if self.declared is None:
            raise Conflict(f"function {name} needs {need.cards} {need.gpu_type} card(s) but {where} declares no "
                           "GPUs (HostArgs.gpus)", code="GpuUnavailable")
        if self.error:
            raise Conflict(f"function {name} needs GPUs but {where} cannot read its cards: {self.error}",
                           code="GpuUnavailable")
        if self.support is not None and self.support.mode is None:
            raise Conflict(f"function {name} needs GPUs but {where} has {self.support.problem}",
                           code="GpuUnavailable")
        have = len(self._cards_of(need.unit))
        if have < need.cards:
            kinds = ", ".join(sorted({d.unit for d in self.report.devices if d.unit})) or "none"
            raise Conflict(f"function {name} needs {need.describe()} per instance; {where} has {have} "
                           f"({self.report.source} cards of type {kinds})", code="GpuUnavailable")

    # leases -------------------------------------------------------------------------------------------------
    def _owner(self) -> dict[str, str]:
        return {card: name for name, (_spec, cards) in self._pools.items() for card in cards}

    def pool_of(self, function: str) -> tuple[str, dict[str, Any], list[str]] | None:
        for name, (spec, cards) in self._pools.items():
            if function in (spec.get("functions") or []):
                return name, spec, cards
        return None

    def _usable(self, function: str, gpu_type: str) -> list[str]:
        """Free cards this function may lease: its pool's; with mix mode also unreserved ones (elastic); for a
        function bound to no pool only unreserved ones."""
        owner, bound = self._owner(), self.pool_of(function)
        free = [u for u in self._cards_of(gpu_type) if u not in self._holder]
        mine = [u for u in free if owner.get(u) == (bound[0] if bound else None)]
        if bound and bound[1].get("mix_mode"):
            mine += [u for u in free if u not in owner]
        return mine

    def lease(self, instance_id: str, function: str, need: GpuNeed) -> list[str] | None:
        """Whole free cards for one instance, or None when too few are free (the caller queues, then throttles)."""
        with self._lock:
            free = self._usable(function, need.unit)
            if len(free) < need.cards:
                return None
            chosen = free[:need.cards]
            if not self._store.lease(chosen, instance_id, function):
                return None  # the database says one is held: never hand it out twice
            for uuid in chosen:
                self._holder[uuid] = instance_id
            return chosen

    def release(self, instance_id: str) -> bool:
        with self._lock:
            held = [u for u, holder in self._holder.items() if holder == instance_id]
            for uuid in held:
                del self._holder[uuid]
        if held:
            self._store.release(instance_id)
        return bool(held)

    def leased(self, instance_id: str) -> list[str]:
        with self._lock:
            return sorted(u for u, holder in self._holder.items() if holder == instance_id)

    def adopt(self, instance_id: str, function: str, labels: dict[str, str]) -> None:
        """After a restart: the container's label says which cards it holds; the ledger takes them back."""
        cards = [c for c in (labels.get(UUIDS_LABEL) or "").split(",") if c]
        if not cards:
            return
        self._store.release(instance_id)
        self._store.lease(cards, instance_id, function)
        with self._lock:
            for uuid in cards:
                self._holder[uuid] = instance_id

    def drop_except(self, instance_ids: set[str]) -> None:
        """Leases of instances that did not survive the restart go back."""
        for lease in self._store.leases():
            if lease.instance_id not in instance_ids:
                self._store.release(lease.instance_id)

    # containers ---------------------------------------------------------------------------------------------
    def container_spec(self, spec: ContainerSpec, instance_id: str) -> ContainerSpec:
        """The container of a GPU instance: its cards by UUID in the device request (nvidia hook or CDI), or for
        simulated cards none (NVIDIA_VISIBLE_DEVICES stays void) and FC_GPU_SIMULATED=1."""
        cards = self.leased(instance_id)
        if not cards:
            return spec
        env, labels = dict(spec.environment), dict(spec.labels)
        env["FC_GPU_UUIDS"] = labels[UUIDS_LABEL] = ",".join(cards)
        simulated = self.report.simulated
        labels[SIMULATED_LABEL] = "true" if simulated else "false"
        if simulated:
            env["FC_GPU_SIMULATED"] = "1"
            return dataclasses.replace(spec, environment=env, labels=labels)
        mode = self.support.mode if self.support else None
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(cards)
        env["NVIDIA_DRIVER_CAPABILITIES"] = "compute,utility"
        ids = tuple(f"nvidia.com/gpu={c}" for c in cards) if mode == "cdi" else tuple(cards)
        return dataclasses.replace(spec, environment=env, labels=labels, gpu_driver=mode or "nvidia",
                                   gpu_device_ids=ids)

    def memory_utilization(self, instance_ids: list[str]) -> float | None:
        """GPU memory used / total over the cards these instances lease, read afresh from the inventory; None for
        simulated cards (they have no memory to read) or when the inventory fails."""
        if self.report.simulated or self._inventory is None:
            return None
        cards = {u for i in instance_ids for u in self.leased(i)}
        if not cards:
            return None
        try:
            devices = [d for d in self._inventory.probe().devices if d.uuid in cards]
        except GpuInventoryError:
            return None
        total = sum(d.memory_total_mib for d in devices)
        used = [d.memory_used_mib for d in devices]
        if not total or any(u is None for u in used):
            return None
        return sum(u for u in used if u is not None) / total

    # reports ------------------------------------------------------------------------------------------------
    def info(self, committed: dict[str, int]) -> dict[str, Any] | None:
        """/v1/info's ``gpus``: where the cards come from (``simulated`` says so), each card and its holder, and
        per type the total, leased and committed (what functions' min_instances promise) counts."""
        if self.declared is None:
            return None
        with self._lock:
            holders = dict(self._holder)
        types: dict[str, dict[str, int]] = {}
        owner = self._owner()
        for device in self.report.devices:
            if device.unit is None:
                continue  # a card in MIG mode: its MIG devices are counted instead
            t = types.setdefault(device.unit, {"total": 0, "leased": 0, "committed": 0, "reserved": 0})
            t["total"] += 1
            t["leased"] += device.uuid in holders
            t["reserved"] += device.uuid in owner
        for gpu_type, count in committed.items():
            types.setdefault(gpu_type, {"total": 0, "leased": 0, "committed": 0, "reserved": 0})["committed"] = count
        return {"source": self.report.source, "simulated": self.report.simulated,
                "driver_version": self.report.driver_version, "error": self.error,
                "support": self.support.to_json() if self.support else None, "types": types,
                "cards": [{**d.to_json(), "leased_by": holders.get(d.uuid), "pool": owner.get(d.uuid)}
                          for d in self.report.devices],
                "pools": sorted(self._pools)}

    def describe_shortage(self, need: GpuNeed, function: str) -> str:
        bound = self.pool_of(function)
        if bound and not bound[1].get("mix_mode"):
            return (f"GPU pool {bound[0]} exhausted: its {len(bound[2])} {need.gpu_type} card(s) here serve "
                    f"{len(bound[2]) // need.cards} instance(s) of {need.cards} card(s), all busy (no mix mode: no "
                    "elastic instances beyond the pool)")
        total = len(self._cards_of(need.unit))
        return (f"GPU cards exhausted: an instance needs {need.describe()}; the host has "
                f"{total} ({self.report.source}), {self.free(need.unit, function)} free for this function; "
                "the others are leased by running, starting or hibernated instances or reserved by GPU pools")
