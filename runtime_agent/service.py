"""The agent's core: functions, their pools, invocation, reconcile after a restart, and the idle reaper.

The HTTP layer (``http_api``) calls into ``Agent``; ``Agent`` never sees HTTP and never builds responses.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from .config import AgentConfig
from .errors import Conflict, InstanceStartError, NotFound, Throttled
from .instances import spec as specs
from .instances.capacity import Capacity, HostRoom
from .instances.driver import INSTANCE_LABEL, ContainerDriver, ContainerSpec, DriverError
from .instances.health import HealthCheck, HealthMonitor
from .instances.lifecycle import InitializerFailed, Instance, InstanceBroken, InstanceState, InvocationTimeout
from .instances.pool import FunctionPool
from .observe.functionlog import FunctionLogs
from .observe.metrics import Metrics
from .observe.requestlog import RequestLog
from .state.codestore import CodeStore
from .state.keys import KeyStore
from .state.store import FunctionRecord, InstanceRecord, Store

log = logging.getLogger("fc-agent")

REAPER_PERIOD = 0.25
DEFAULT_HIBERNATION_GRACE = 2.0
ROOM_RETRY = 2.0  # seconds between evictions for one function's min_instances
NO_INTERNET_NETWORK = "fc-no-internet"  # internal bridge: no route out, the agent still reaches its instances


@dataclass(slots=True)
class InvokeResult:
    status: int
    headers: dict[str, str]
    body: bytes


class Agent:
    def __init__(self, config: AgentConfig, driver: ContainerDriver) -> None:
        self.config = config
        self.driver = driver
        self.store = Store(config.database)
        self.code = CodeStore(config.code_dir)
        self.keys = KeyStore(config.access_keys_dir)  # whom the invoke API serves (api/auth.py verifies)
        self.room = HostRoom(Capacity(config.capacity_cpu, config.capacity_memory_mb), self._all_pools,
                             config.host_name)
        # One pool per function, holding its record: the warm path reads functions from memory, SQLite is
        # written on changes and read at start-up.
        self._pools: dict[str, FunctionPool] = {}
        self._pools_lock = threading.Lock()
        self._start_slots = threading.BoundedSemaphore(config.max_concurrent_starts)
        self._stopping = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="reaper", daemon=True)
        self.metrics = Metrics(self._pools_snapshot, self.room.usage)
        self._health = HealthMonitor()
        self.request_log = RequestLog()
        self.function_logs = FunctionLogs(config.state_dir / "logs")
        self._networks: set[str] = set()
        self._making_room: dict[str, float] = {}  # function -> when room was last made for its min_instances

    # lifecycle of the agent ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.reconcile()
        self._reaper.start()

    def close(self) -> None:
        self._stopping.set()
        self.store.close()

    def reconcile(self) -> None:
        """Re-adopts the containers this agent owns and its state accounts for; removes every other one."""
        records = {r.id: r for r in self.store.list_instances()}
        functions = {f.name: f for f in self.store.list_functions()}
        for fn in functions.values():
            self._pool_for(fn)
        adopted: set[str] = set()
        for container in self.driver.list_owned(self.config.host_name):
            rec = records.get(container.labels.get(INSTANCE_LABEL, ""))
            fn = functions.get(rec.function) if rec else None
            pool = self._pools.get(rec.function) if rec else None
            if (
                rec is None or fn is None or pool is None or not container.running
                or rec.generation != pool.generation or rec.container_id != container.id
            ):
                log.info("reconcile: removing unaccounted container %s", container.id[:12])
                self.driver.destroy(container.id)
                continue
            inst = self._new_instance(pool, fn, rec.id)
            inst.adopt(self.driver.inspect(container.id))  # inspect: the pid locates its freezer
            self.room.capacity.force_reserve(inst.id, pool.size)
            pool.add_adopted(inst)
            adopted.add(rec.id)
        for rec_id in set(records) - adopted:
            self.store.delete_instance(rec_id)
        if records or adopted:
            log.info("reconcile: re-adopted %d instance(s), forgot %d", len(adopted), len(set(records) - adopted))
        self.code.remove_unused({f.code_checksum for f in functions.values()})

    # functions ------------------------------------------------------------------------------------------------
    def put_function(self, name: str, spec: dict[str, Any]) -> FunctionRecord:
        checksum = spec.pop("code_checksum", None)
        specs.validate(spec, checksum)
        size, total = specs.Size.of(spec), self.room.capacity.total
        if size.cpu > total.cpu + 1e-9 or size.memory_mb > total.memory_mb:
            raise Conflict(f"an instance of {name} ({size.cpu:g} vCPU, {size.memory_mb} MB) is larger than host "
                           f"{self.config.host_name}'s capacity ({total.cpu:g} vCPU, {total.memory_mb} MB)",
                           code="InsufficientCapacity")
        if specs.is_container(spec):
            image = specs.server_config(spec)["image"]
            if not self.driver.has_image(image):
                raise Conflict(f"custom_container_config.image {image!r} is not present on host "
                               f"{self.config.host_name}; build or load it there first (no registry is reached)",
                               code="ImageNotFound")
        else:
            self.code.unpacked(checksum)  # verifies the upload before anything changes
        record = self.store.put_function(name, spec, checksum)
        self._pool_for(record)
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
        with self._pools_lock:
            pool = self._pools.pop(name, None)
        if pool:
            pool.shutdown()
        self.code.remove_unused({f.code_checksum for f in self.store.list_functions()})

    def instances(self, name: str | None = None) -> list[dict[str, Any]]:
        return [
            {"instance_id": i.id, "function_name": i.function, "state": i.state.value, "in_flight": i.in_flight,
             "container_id": i.container.id if i.container else None, "resumes": i.resumes,
             "seconds": i.billing_seconds()}
            for p in self._all_pools() if name is None or p.function == name for i in p.instances
        ]

    def _all_pools(self) -> list[FunctionPool]:
        with self._pools_lock:
            return list(self._pools.values())

    def _pools_snapshot(self) -> list[dict[str, Any]]:
        snapshot = []
        for pool in self._all_pools():
            states: dict[str, int] = {}
            seconds = {"active": 0.0, "hibernated": 0.0}
            for inst in pool.instances:
                states[inst.state.value] = states.get(inst.state.value, 0) + 1
                for key, value in inst.billing_seconds().items():
                    seconds[key] += value
            snapshot.append({"function": pool.function, "states": states, "waiting": pool.waiting,
                             "seconds": seconds})
        return snapshot

    def _pool_for(self, record: FunctionRecord) -> FunctionPool:
        generation = specs.generation_of(record.spec, record.code_checksum)
        with self._pools_lock:
            old = self._pools.get(record.name)
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
            self._pools[record.name] = pool
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
            on_state=self._persist_state,
            hooks=specs.hooks(record.spec),
        )

    def _persist_state(self, inst: Instance) -> None:
        """Writes what a restarted agent needs. READY and BUSY are one durable state: the warm path never touches
        SQLite (a write per invocation costs a WAL checkpoint's fsync now and then: tens of ms at p99)."""
        durable = InstanceState.READY if inst.state is InstanceState.BUSY else inst.state
        if durable is inst.persisted_state:
            return
        inst.persisted_state = durable
        if durable is InstanceState.STOPPED:
            self.store.delete_instance(inst.id)
        elif durable in (InstanceState.READY, InstanceState.DRAINING, InstanceState.FROZEN) and inst.container:
            self.store.put_instance(InstanceRecord(
                inst.id, inst.function, inst.generation, inst.container.id, inst.container.address,
                durable.value, time.time(),
            ))

    def _container_spec(self, inst: Instance, record: FunctionRecord) -> ContainerSpec:
        spec = record.spec
        if specs.is_container(spec):
            image, code_dir = specs.server_config(spec)["image"], None
        else:
            image = self.config.runtime_images.get(spec["runtime"])
            if not image:
                raise InstanceStartError(f"no image is configured for runtime {spec['runtime']}")
            code_dir = self.code.unpacked(record.code_checksum)
        network = "bridge"
        if spec.get("internet_access") is False:
            network = NO_INTERNET_NETWORK
            if network not in self._networks:
                try:
                    self.driver.ensure_network(network, internal=True)
                except DriverError as exc:
                    raise InstanceStartError(str(exc)) from exc
                self._networks.add(network)
        return specs.container_spec(record.name, spec, instance_id=inst.id, host_name=self.config.host_name,
                                    image=image, code_dir=code_dir, network=network)

    def _start_instance(self, inst: Instance, record: FunctionRecord, reserve: bool) -> None:
        spec = self._container_spec(inst, record)
        with self._start_slots:
            inst.start(spec, self.config.start_timeout_seconds, reserve=reserve)

    # invocation -----------------------------------------------------------------------------------------------
    def invoke(self, name: str, body: bytes, *, request_id: str, log_tail: bool) -> InvokeResult:
        pool = self._pools.get(name)
        if pool is None:
            raise NotFound(f"function {name} does not exist on host {self.config.host_name}")
        record = pool.record
        timeout = float(record.spec.get("timeout", 3))
        base = {"x-fc-request-id": request_id}
        if record.code_checksum:  # a container function has no code
            base["x-fc-code-checksum"] = record.code_checksum
        started = time.perf_counter()
        counters = self.metrics.of(name)
        counters.invocations.inc()
        try:
            result = self._invoke(pool, record, body, request_id, log_tail, timeout, base)
        except Throttled:
            counters.throttled.inc()
            raise
        counters.duration.observe(time.perf_counter() - started)
        if "x-fc-error-type" in result.headers:
            self.metrics.errors.labels(name, result.headers["x-fc-error-type"]).inc()
        return result

    def _invoke(self, pool: FunctionPool, record: FunctionRecord, body: bytes, request_id: str, log_tail: bool,
                timeout: float, base: dict[str, str]) -> InvokeResult:
        try:
            inst, kind = pool.acquire()
        except InitializerFailed as exc:  # FC reports it like a function error: 200 with the error JSON
            return InvokeResult(200, {**base, "x-fc-error-type": "UnhandledInvocationError"}, exc.body)
        self.metrics.of(record.name).starts[kind].inc()
        recycle = False
        headers = {**base, "x-fc-instance-id": inst.id}
        try:
            reply = inst.call("/invoke", body, {"x-fc-request-id": request_id}, timeout)
        except InvocationTimeout:
            recycle = True
            return InvokeResult(200, {**headers, "x-fc-error-type": "UnhandledInvocationError"}, json.dumps({
                "errorMessage": f"Function timed out after {timeout:g} seconds",
                "errorType": "FunctionTimeoutError", "stackTrace": [],
            }).encode())
        except InstanceBroken as exc:
            recycle = True
            return InvokeResult(200, {**headers, "x-fc-error-type": "UnhandledInvocationError"}, json.dumps({
                "errorMessage": f"Process exited unexpectedly before completing request: {exc}",
                "errorType": "ProcessExitedError", "stackTrace": [],
            }).encode())
        finally:
            pool.release(inst, recycle=recycle)
        if "x-fc-error-type" in reply.headers:
            headers["x-fc-error-type"] = reply.headers["x-fc-error-type"]
        elif reply.status >= 500:  # a custom runtime's server reports its failure by status, as FC reads it
            headers["x-fc-error-type"] = "UnhandledInvocationError"
        self.request_log.record(request_id, record.name, inst.id, reply.headers.get("x-fc-log-result"))
        if record.spec.get("log_config"):
            self.function_logs.append(record.spec["log_config"], request_id=request_id, function=record.name,
                                      qualifier="LATEST", instance_id=inst.id,
                                      tail_b64=reply.headers.get("x-fc-log-result"))
        if log_tail and "x-fc-log-result" in reply.headers:
            headers["x-fc-log-result"] = reply.headers["x-fc-log-result"]
        return InvokeResult(200, headers, reply.body)

    # background -----------------------------------------------------------------------------------------------
    def _reap_loop(self) -> None:
        """Keeps min_instances ready, hibernates idle instances of functions that ask for it, removes idle ones."""
        while not self._stopping.wait(REAPER_PERIOD):
            with self._pools_lock:
                pools = list(self._pools.values())
            for pool in pools:
                if self._pools.get(pool.function) is not pool:
                    continue  # deleted or replaced since the snapshot: never pre-warm a retired pool
                try:
                    self._tend(pool, pool.record)
                except Exception:  # noqa: BLE001 - the reaper must survive one bad container
                    log.exception("reaper: %s", pool.function)

    def _tend(self, pool: FunctionPool, record: FunctionRecord) -> None:
        keep = int(record.spec.get("min_instances") or 0)
        if record.spec.get("hibernation"):
            pool.hibernate_idle(float(record.spec.get("hibernation_grace_seconds") or DEFAULT_HIBERNATION_GRACE))
        check = HealthCheck.from_spec(record.spec)
        if check is not None:
            self._health.tend(pool.instances, check, lambda inst: self._replace_unhealthy(pool, inst))
        idle_timeout = float(record.spec.get("idle_timeout_seconds") or self.config.idle_timeout_seconds)
        pool.reap_idle(idle_timeout, keep)
        new, short = pool.prewarm(keep)
        for inst in new:
            threading.Thread(target=self._prewarm_one, args=(pool, inst), name=f"prewarm-{inst.id}",
                             daemon=True).start()
        # min_instances are a commitment: evict for them (at most every few seconds per function).
        if short and time.monotonic() - self._making_room.get(pool.function, -ROOM_RETRY) >= ROOM_RETRY:
            self._making_room[pool.function] = time.monotonic()
            threading.Thread(target=self._room_for_min_instances, args=(pool,), name=f"room-{pool.function}",
                             daemon=True).start()

    def _room_for_min_instances(self, pool: FunctionPool) -> None:
        try:
            self.room.make_room(pool)
        except Exception:  # noqa: BLE001 - logged; the next reaper pass tries again
            log.exception("making room for %s", pool.function)
        finally:
            self._making_room[pool.function] = time.monotonic()

    @staticmethod
    def _replace_unhealthy(pool: FunctionPool, inst: Instance) -> None:
        log.warning("instance %s failed its health check; replacing it", inst.id)
        pool.retire(inst)

    @staticmethod
    def _prewarm_one(pool: FunctionPool, inst: Instance) -> None:
        try:
            pool.start_prewarmed(inst)
        except Exception as exc:  # noqa: BLE001 - logged; the next pass tries again
            log.warning("pre-warming %s failed: %s", inst.id, exc)


def new_request_id() -> str:
    """UUID-shaped, as FC's. Not secret (it is returned to the caller), so random's generator suffices: uuid4's
    os.urandom syscall cost more than any other step of a warm invocation."""
    h = f"{random.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"
