"""The agent's facade: it composes the subsystems (state, instances, events, observe) and owns what ties them
together: functions and their pools, instance starts, and reconcile after a restart. The invocation path lives in
``invocation``, the reaper in ``tending``, publishing versions in ``releases``.

The HTTP layer (``api``) calls into ``Agent``; ``Agent`` never sees HTTP and never builds responses.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

from fc_common.gpu import GpuNeed, parse_host_gpus

from .config import AgentConfig
from .errors import Conflict, InstanceStartError, NotFound
from .events.asyncinvoke import AsyncInvoker
from .events.taskqueue import backend as task_queue_backend
from .events.firings import TriggerFirings
from .events.oss import OssTriggers
from .events.poolrunner import PoolRunner
from .events.provision import ProvisionScalers, Tuning
from .events.provision_fleet import FleetDecisions
from .events.provision_metrics import ProvisionMetrics
from .events.timer import TimerScheduler
from .events.triggers import Triggers
from .instances import spec as specs
from .instances.capacity import Capacity, HostRoom
from .instances.cellpolicy import CellSettings
from .instances.driver import INSTANCE_LABEL, ContainerDriver, ContainerSpec, DriverError
from .instances.gpu import HostCards, inventory_for
from .instances.lifecycle import Instance, InstanceState
from .instances.pool import FunctionPool
from .instances.stemcells import StemCells
from .invocation import Invocations, new_request_id
from .observe.functionlog import FunctionLogs
from .observe.metrics import Metrics
from .observe.requestlog import RequestLog
from .releases import Releases
from .state.cardstore import CardStore
from .state.cellstore import CellStore
from .state.codestore import CodeStore
from .state.keys import KeyStore
from .state.layers import Layers
from .state.oss_index import OssIndex
from .state.provisionstore import ProvisionStore
from .state.store import FunctionRecord, InstanceRecord, Store
from .state.triggers import TriggerStore
from .state.versions import QualifierResolver, Versions
from .tending import PoolTender

log = logging.getLogger("fc-agent")

NO_INTERNET_NETWORK = "fc-no-internet"  # internal bridge: no route out, the agent still reaches its instances


class Agent:
    def __init__(self, config: AgentConfig, driver: ContainerDriver) -> None:
        self.config = config
        self.driver = driver
        self.store = Store(config.database)
        self.code = CodeStore(config.code_dir)
        self.keys = KeyStore(config.access_keys_dir)  # whom the invoke API serves (api/auth.py verifies)
        self.versions = Versions(config.database)
        self.layers = Layers(config.database, self.code, config.state_dir / "layers")
        self.qualifiers = QualifierResolver(self.versions, random.Random(config.routing_seed))
        self.releases = Releases(self)
        declared_gpus = parse_host_gpus(config.gpus)
        self.cards = HostCards(declared_gpus, config.host_name, CardStore(config.database),
                               inventory_for(declared_gpus, config.host_name) if declared_gpus else None,
                               driver.engine_info)
        self.room = HostRoom(Capacity(config.capacity_cpu, config.capacity_memory_mb), self._all_pools,
                             config.host_name, self.cards)
        # Stem cells (off unless the config's stem_cells enables them): cold starts take a started runtime.
        self.cells = StemCells.for_host(CellSettings.from_config(config.stem_cells), config, driver, self.room,
                                        CellStore(config.database), self._all_pools)
        # One pool per function version (LATEST and each published one; keyed by FunctionRecord.pool_key),
        # holding its record: the warm path reads functions from memory, SQLite is written on changes and read at
        # start-up.
        self._pools: dict[str, FunctionPool] = {}
        self._pools_lock = threading.Lock()
        self._start_slots = threading.BoundedSemaphore(config.max_concurrent_starts)
        self.metrics = Metrics(self._pools_snapshot, self.room.usage,
                               lambda: self.cards.info(self.room.committed_cards()))
        self.request_log = RequestLog()
        self.function_logs = FunctionLogs(config.state_dir / "logs")
        self._networks: set[str] = set()
        self.triggers = Triggers(TriggerStore(config.database), lambda name: name in self._pools, config.host_name)
        # Timer ticks and object events are asynchronous invocations, as in FC: they go into the async queue.
        self.firings = TriggerFirings(lambda *a, **k: self.async_invoker.enqueue(*a, **k), new_request_id)
        self.timers = TimerScheduler(self.triggers.store, config.host_name, self.firings.timer)
        self.oss = OssTriggers(OssIndex(config.database), config.host_name, self.firings.oss)
        # Asynchronous invocation: a durable queue whose workers invoke through the same pools as requests.
        self.invocations = Invocations(config.host_name, self._pools.get, self.qualifiers, self.metrics,
                                       self.request_log, self.function_logs, lambda: self.async_invoker,
                                       replay_key=config.token)
        self.invoke = self.invocations.invoke  # the invoke API's, the triggers' and the async workers' one path
        self.enqueue_async = self.invocations.enqueue_async
        runner = PoolRunner(self._all_pools, self._pools.get, self.firings.watched(self.invoke))
        queue = task_queue_backend(config.task_queue, host=config.host_name,
                                   functions=lambda: [p.function for p in self._all_pools()])
        self.async_invoker = AsyncInvoker(config.state_dir / "tasks.db", runner, workers=config.async_workers,
                                          registry=self.metrics.registry, queue=queue)
        # Provisioned instances (fc.ProvisionConfig): this host's share of each config's target (per function and
        # qualifier: LATEST or an alias), kept started in the pool of the version the qualifier resolves to.
        self.provision = ProvisionScalers(
            ProvisionStore(config.database),
            ProvisionMetrics(self._pools.get, self.cards, lambda f, v: self.provision.pool_target(f, v)), time.time,
            Tuning.from_config(config.provision_tuning), self.qualifiers.provisioned_version)
        self.provision.fleet = FleetDecisions(config.host_name, self.provision.get, time.time)  # one decider
        self._tender = PoolTender(config, self._all_pools, self._pools.get, self.provision, self.cards, self.room)

    # lifecycle of the agent ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.cards.refresh()
        self.cells.prepare()
        self.reconcile()
        self.cells.start()
        self.async_invoker.start()  # after reconcile: instances interrupted mid-task are known by then
        self._tender.start()
        self.triggers.subscribe(self.timers.update)
        self.triggers.subscribe(self.oss.update)
        self.timers.start()
        self.oss.start()

    def close(self) -> None:
        self._tender.stop()
        self.cells.close()
        self.timers.stop()
        self.oss.stop()
        self.triggers.store.close()
        self.async_invoker.close()
        self.store.close()
        self.versions.close()
        self.layers.close()

    def reconcile(self) -> None:
        """Re-adopts the containers this agent owns and its state accounts for; removes every other one."""
        records = {r.id: r for r in self.store.list_instances()}
        for fn in self.store.list_functions() + [v.as_function() for v in self.versions.all()]:
            self.open_pool(fn)
        adopted: set[str] = set()
        owned = self.driver.list_owned(self.config.host_name)
        idle_cells = self.cells.reconcile(owned)
        by_container = {r.container_id: r for r in records.values()}  # an instance born a stem cell has its labels
        for container in owned:
            if container.id in idle_cells:
                continue
            rec = records.get(container.labels.get(INSTANCE_LABEL, "")) or by_container.get(container.id)
            pool = self._pools.get(rec.function) if rec else None  # an instance record names its pool's key
            if (
                rec is None or pool is None or not container.running
                or rec.generation != pool.generation or rec.container_id != container.id
            ):
                log.info("reconcile: removing unaccounted container %s", container.id[:12])
                self.driver.destroy(container.id)
                self.cells.retired(container.id)
                continue
            inst = self._new_instance(pool, pool.record, rec.id)
            inst.adopt(self.driver.inspect(container.id))  # inspect: the pid locates its freezer
            self.room.capacity.force_reserve(inst.id, pool.size)
            self.cards.adopt(inst.id, rec.function, container.labels)
            pool.add_adopted(inst)
            adopted.add(rec.id)
        for rec_id in set(records) - adopted:
            self.store.delete_instance(rec_id)
        if records or adopted:
            log.info("reconcile: re-adopted %d instance(s), forgot %d", len(adopted), len(set(records) - adopted))
        self.cards.drop_except(adopted)
        self.collect_code()

    def collect_code(self) -> None:
        """Removes code no function and no published version uses any more."""
        records = self.store.list_functions() + [v.as_function() for v in self.versions.all()]
        layers = self.layers.in_use(r.spec for r in records)
        self.code.remove_unused({r.code_checksum for r in records if r.code_checksum} | layers)

    # functions ------------------------------------------------------------------------------------------------
    def put_function(self, name: str, spec: dict[str, Any]) -> FunctionRecord:
        checksum = spec.pop("code_checksum", None)
        specs.validate(spec, checksum)
        size, total = specs.Size.of(spec), self.room.capacity.total
        if size.cpu > total.cpu + 1e-9 or size.memory_mb > total.memory_mb:
            raise Conflict(f"an instance of {name} ({size.cpu:g} vCPU, {size.memory_mb} MB) is larger than host "
                           f"{self.config.host_name}'s capacity ({total.cpu:g} vCPU, {total.memory_mb} MB)",
                           code="InsufficientCapacity")
        self.cards.admit(name, GpuNeed.of(spec))
        if specs.is_container(spec):
            image = specs.server_config(spec)["image"]
            if not self.driver.has_image(image):
                raise Conflict(f"custom_container_config.image {image!r} is not present on host "
                               f"{self.config.host_name}; build or load it there first (no registry is reached)",
                               code="ImageNotFound")
        else:
            specs.check_runtime_image(spec["runtime"], self.config.runtime_images, self.driver.has_image,
                                      self.config.host_name)
            self.code.unpacked(checksum)  # verifies the upload before anything changes
            spec["layer_checksums"] = self.layers.resolve(spec.get("layers") or [], spec["runtime"])
        record = self.store.put_function(name, spec, checksum)
        self.open_pool(record)
        return record

    def load_image(self, ref: str, file_name: str) -> dict[str, Any]:
        """Loads an image tarball the provider uploaded to ``<state_dir>/images/`` into the engine, then removes
        the tarball (the engine holds the image now)."""
        folder = (self.config.state_dir / "images").resolve()
        path = (folder / file_name).resolve()
        if path.parent != folder or not path.is_file():
            raise NotFound(f"image tarball {file_name} was not uploaded to {folder}", code="ImageTarballNotFound")
        if not self.driver.has_image(ref):
            try:
                self.driver.load_image(str(path), ref)
            except DriverError as exc:
                raise Conflict(str(exc), code="ImageLoadFailed") from exc
        path.unlink(missing_ok=True)
        return {"ref": ref, "present": True}

    def get_function(self, name: str) -> FunctionRecord:
        record = self.store.get_function(name)
        if record is None:
            raise NotFound(f"function {name} does not exist on host {self.config.host_name}")
        return record

    def list_functions(self) -> list[FunctionRecord]:
        return self.store.list_functions()

    def delete_function(self, name: str) -> None:
        if not self.store.delete_function(name):
            raise NotFound(f"function {name} does not exist on host {self.config.host_name}")
        for gone in [name] + [v.as_function().pool_key for v in self.versions.drop_function(name)]:
            self.close_pool(gone)
        self.triggers.delete(name)  # a function's triggers go with it
        self.provision.delete(name)
        self.collect_code()

    def close_pool(self, key: str) -> None:
        with self._pools_lock:
            pool = self._pools.pop(key, None)
        if pool:
            pool.shutdown()

    def instances(self, name: str | None = None) -> list[dict[str, Any]]:
        return [
            {"instance_id": i.id, "function_name": i.function, "qualifier": p.record.qualifier,
             "state": i.state.value, "in_flight": i.in_flight,
             "container_id": i.container.id if i.container else None, "resumes": i.resumes,
             "seconds": i.billing_seconds(), "gpus": self.cards.leased(i.id)}
            for p in self._all_pools() if name is None or p.function == name for i in p.instances
        ]

    def _all_pools(self) -> list[FunctionPool]:
        with self._pools_lock:
            return list(self._pools.values())

    def _pools_snapshot(self) -> list[dict[str, Any]]:
        """Per function, all its versions' pools together (metrics are labelled by function)."""
        snapshot: dict[str, dict[str, Any]] = {}
        for pool in self._all_pools():
            entry = snapshot.setdefault(pool.function, {"function": pool.function, "states": {}, "waiting": 0,
                                                        "seconds": {"active": 0.0, "hibernated": 0.0}})
            entry["waiting"] += pool.waiting
            for inst in pool.instances:
                entry["states"][inst.state.value] = entry["states"].get(inst.state.value, 0) + 1
                for key, value in inst.billing_seconds().items():
                    entry["seconds"][key] += value
        return list(snapshot.values())

    def open_pool(self, record: FunctionRecord) -> FunctionPool:
        generation = specs.generation_of(record.spec, record.code_checksum)
        with self._pools_lock:
            old = self._pools.get(record.pool_key)
            if old is not None and old.generation == generation:
                old.record = record  # same instances; the record's times, tags or description moved on
                return old
            pool = FunctionPool(
                record=record,
                generation=generation,
                concurrency=specs.concurrency(record.spec),
                max_instances=int(record.spec.get("max_instances") or 10),
                queue_timeout=float(record.spec.get("queue_timeout") or 10),
                new_instance=lambda iid: self._new_instance(pool, record, iid),
                start_instance=lambda inst, reserve: self._start_instance(inst, record, reserve),
                host=self.room,
            )
            self._pools[record.pool_key] = pool
        if old is not None:
            old.shutdown()
        return pool

    # instances ------------------------------------------------------------------------------------------------
    def _new_instance(self, pool: FunctionPool, record: FunctionRecord, instance_id: str) -> Instance:
        return Instance(
            instance_id=instance_id,
            function=record.name,
            generation=pool.generation,
            concurrency=pool.concurrency,
            port=specs.port(record.spec),
            driver=self.driver,
            on_state=lambda inst: self._persist_state(inst, pool.key),
            hooks=specs.hooks(record.spec),
        )

    def _persist_state(self, inst: Instance, pool_key: str) -> None:
        """Writes what a restarted agent needs. READY and BUSY are one durable state: the warm path never touches
        SQLite (a write per invocation costs a WAL checkpoint's fsync now and then: tens of ms at p99)."""
        durable = InstanceState.READY if inst.state is InstanceState.BUSY else inst.state
        if durable is inst.persisted_state:
            return
        inst.persisted_state = durable
        if durable is InstanceState.STOPPED:
            self.store.delete_instance(inst.id)
            if inst.container is not None:
                self.cells.retired(inst.container.id)  # a stem cell's mounts go with its container
        elif durable in (InstanceState.READY, InstanceState.DRAINING, InstanceState.FROZEN) and inst.container:
            self.store.put_instance(InstanceRecord(
                inst.id, pool_key, inst.generation, inst.container.id, inst.container.address,
                durable.value, time.time(),
            ))

    def _container_spec(self, inst: Instance, record: FunctionRecord) -> ContainerSpec:
        spec = record.spec
        if specs.is_container(spec):
            image, code_dir, opt_dir = specs.server_config(spec)["image"], None, None
        else:
            image = self.config.runtime_images.get(spec["runtime"])
            if not image:
                raise InstanceStartError(f"no image is configured for runtime {spec['runtime']}")
            code_dir = self.code.unpacked(record.code_checksum)
            opt_dir = self.layers.opt_dir(spec.get("layer_checksums") or [])
        network = "bridge"
        if spec.get("internet_access") is False:
            network = NO_INTERNET_NETWORK
            if network not in self._networks:
                try:
                    self.driver.ensure_network(network, internal=True)
                except DriverError as exc:
                    raise InstanceStartError(str(exc)) from exc
                self._networks.add(network)
        return self.cards.container_spec(  # a GPU instance's leased cards, by UUID
            specs.container_spec(record.name, spec, instance_id=inst.id, host_name=self.config.host_name,
                                 image=image, code_dir=code_dir, network=network, qualifier=record.qualifier,
                                 opt_dir=opt_dir), inst.id)

    def _start_instance(self, inst: Instance, record: FunctionRecord, reserve: bool) -> None:
        spec = self._container_spec(inst, record)
        cell = self.cells.take(record.spec, inst.id)
        if cell is not None:  # the container runs already: no start slot
            return inst.start(spec, self.config.start_timeout_seconds, reserve=reserve,
                              launch=lambda s: self.cells.launch(cell, s, boost=bool(inst.hooks.initializer),
                                                                 fallback=self.driver.start))
        with self._start_slots:
            inst.start(spec, self.config.start_timeout_seconds, reserve=reserve)

    # invocation -----------------------------------------------------------------------------------------------
    def pool_of(self, name: str) -> FunctionPool:
        """LATEST's pool of a function."""
        pool = self._pools.get(name)
        if pool is None:
            raise NotFound(f"function {name} does not exist on host {self.config.host_name}")
        return pool

