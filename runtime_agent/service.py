"""The agent's core: functions, their pools, invocation, reconcile after a restart, and the idle reaper.

The HTTP layer (``http_api``) calls into ``Agent``; ``Agent`` never sees HTTP and never builds responses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .codestore import CodeStore
from .config import AgentConfig
from .driver import AGENT_LABEL, FUNCTION_LABEL, INSTANCE_LABEL, ContainerDriver, ContainerSpec
from .errors import BadRequest, InstanceStartError, NotFound, Throttled
from .health import HealthCheck, HealthMonitor
from .lifecycle import (
    InitializerFailed,
    Instance,
    InstanceBroken,
    InstanceState,
    InvocationTimeout,
    LifecycleHooks,
)
from .metrics import Metrics
from .pool import FunctionPool
from .requestlog import RequestLog
from .store import FunctionRecord, InstanceRecord, Store

log = logging.getLogger("fc-agent")

RUNTIME_PORT = 9000
BOOTSTRAP_DIR = Path(__file__).parent / "bootstrap"
BUILTIN_RUNTIMES = {"python3.10", "python3.11", "python3.12"}
CUSTOM_RUNTIMES = {"custom", "custom.debian12"}  # the user's own HTTP server, started from the code folder
REAPER_PERIOD = 0.25
DEFAULT_HIBERNATION_GRACE = 2.0
STARTUP_CPU = 1.0  # CPU boost while an instance starts; its own limit applies from its first request


@dataclass(frozen=True)
class InvokeResult:
    status: int
    headers: dict[str, str]
    body: bytes


def _runtime_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(BOOTSTRAP_DIR.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


RUNTIME_DIGEST = _runtime_digest()


def generation_of(spec: dict[str, Any], code_checksum: str) -> str:
    """Instances of another generation are replaced: a new spec, new code, or a new built-in runtime."""
    blob = json.dumps([spec, code_checksum, RUNTIME_DIGEST], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class Agent:
    def __init__(self, config: AgentConfig, driver: ContainerDriver) -> None:
        self.config = config
        self.driver = driver
        self.store = Store(config.database)
        self.code = CodeStore(config.code_dir)
        # One pool per function, holding its record: the warm path reads functions from memory, SQLite is
        # written on changes and read at start-up.
        self._pools: dict[str, FunctionPool] = {}
        self._pools_lock = threading.Lock()
        self._start_slots = threading.BoundedSemaphore(config.max_concurrent_starts)
        self._stopping = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="reaper", daemon=True)
        self.metrics = Metrics(self._pools_snapshot)
        self._health = HealthMonitor()
        self.request_log = RequestLog()

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
            pool.add_adopted(inst)
            adopted.add(rec.id)
        for rec_id in set(records) - adopted:
            self.store.delete_instance(rec_id)
        self.code.remove_unused({f.code_checksum for f in functions.values()})

    # functions ------------------------------------------------------------------------------------------------
    def put_function(self, name: str, spec: dict[str, Any]) -> FunctionRecord:
        checksum = spec.pop("code_checksum", None)
        if not isinstance(checksum, str):
            raise BadRequest("code_checksum is required")
        runtime = spec.get("runtime")
        if runtime not in BUILTIN_RUNTIMES | CUSTOM_RUNTIMES:
            raise BadRequest(f"runtime {runtime!r} is not supported by this agent")
        if runtime in CUSTOM_RUNTIMES and not (spec.get("custom_runtime_config") or {}).get("command"):
            raise BadRequest("custom_runtime_config.command is required for a custom runtime")
        self.code.unpacked(checksum)  # verifies the upload before anything changes
        record = self.store.put_function(name, spec, checksum)
        self._pool_for(record)
        return record

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
        with self._pools_lock:
            pools = [p for n, p in self._pools.items() if name is None or n == name]
        return [
            {"instance_id": i.id, "function_name": i.function, "state": i.state.value, "in_flight": i.in_flight,
             "container_id": i.container.id if i.container else None, "resumes": i.resumes,
             "seconds": i.billing_seconds()}
            for p in pools for i in p.instances
        ]

    def _pools_snapshot(self) -> list[dict[str, Any]]:
        with self._pools_lock:
            pools = list(self._pools.values())
        snapshot = []
        for pool in pools:
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
        generation = generation_of(record.spec, record.code_checksum)
        with self._pools_lock:
            old = self._pools.get(record.name)
            if old is not None and old.generation == generation:
                old.record = record  # same instances; the record's times moved on
                return old
            pool = FunctionPool(
                record=record,
                generation=generation,
                concurrency=_concurrency(record.spec),
                max_instances=int(record.spec.get("max_instances") or 10),
                queue_timeout=float(record.spec.get("queue_timeout") or 10),
                new_instance=lambda iid: self._new_instance(pool, record, iid),
                start_instance=lambda inst, reserve: self._start_instance(inst, record, reserve),
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
            port=_port(record.spec),
            driver=self.driver,
            on_state=self._persist_state,
            hooks=_hooks(record.spec),
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
        image = self.config.runtime_images.get(spec["runtime"])
        if not image:
            raise InstanceStartError(f"no image is configured for runtime {spec['runtime']}")
        env = {str(k): str(v) for k, v in (spec.get("environment_variables") or {}).items()}
        env.update({
            "FC_FUNCTION_NAME": record.name,
            "FC_FUNCTION_HANDLER": spec.get("handler", "index.handler"),
            "FC_FUNCTION_MEMORY_SIZE": str(spec.get("memory_size", 128)),
            "FC_FUNCTION_TIMEOUT": str(spec.get("timeout", 3)),
            "FC_FUNC_CODE_PATH": "/code",
            "FC_RUNTIME_PORT": str(RUNTIME_PORT),
            "FC_INSTANCE_ID": inst.id,
            "PYTHONDONTWRITEBYTECODE": "1",
        })
        custom = spec["runtime"] in CUSTOM_RUNTIMES
        if custom:
            env["FC_SERVER_PORT"] = str(_port(spec))
        memory = int(spec.get("memory_size", 128))
        cpu = float(spec.get("cpu") or max(0.05, round(memory / 1024 / 2, 4)))
        runtime_config = spec.get("custom_runtime_config") or {}
        return ContainerSpec(
            name=f"fc-{inst.id}",
            image=image,
            command=([*runtime_config["command"], *(runtime_config.get("args") or [])] if custom
                     else ["python3", "-u", "/opt/fc-runtime/runtime.py"]),
            working_dir="/code",
            environment=env,
            labels={AGENT_LABEL: self.config.host_name, FUNCTION_LABEL: record.name, INSTANCE_LABEL: inst.id},
            read_only_binds={
                str(self.code.unpacked(record.code_checksum)): "/code",
                str(BOOTSTRAP_DIR): "/opt/fc-runtime",
            },
            memory_mb=memory,
            cpu=cpu,
            startup_cpu=max(cpu, STARTUP_CPU),
            tmp_size_mb=int(spec.get("disk_size", 512)),
            # The agent reaches the runtime over the bridge network, so it stays on; internet_access=false is
            # enforced by the network the container joins, not by removing its network.
            network_enabled=True,
        )

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
        base = {"x-fc-request-id": request_id, "x-fc-code-checksum": record.code_checksum}
        started = time.perf_counter()
        self.metrics.invocations.labels(name).inc()
        try:
            result = self._invoke(pool, record, body, request_id, log_tail, timeout, base)
        except Throttled:
            self.metrics.throttled.labels(name).inc()
            raise
        self.metrics.duration.labels(name).observe(time.perf_counter() - started)
        if "x-fc-error-type" in result.headers:
            self.metrics.errors.labels(name, result.headers["x-fc-error-type"]).inc()
        return result

    def _invoke(self, pool: FunctionPool, record: FunctionRecord, body: bytes, request_id: str, log_tail: bool,
                timeout: float, base: dict[str, str]) -> InvokeResult:
        try:
            inst, kind = pool.acquire()
        except InitializerFailed as exc:  # FC reports it like a function error: 200 with the error JSON
            return InvokeResult(200, {**base, "x-fc-error-type": "UnhandledInvocationError"}, exc.body)
        self.metrics.starts.labels(record.name, kind).inc()
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
        for inst in pool.prewarm(keep):
            threading.Thread(target=self._prewarm_one, args=(pool, inst), name=f"prewarm-{inst.id}",
                             daemon=True).start()

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


def _concurrency(spec: dict[str, Any]) -> int:
    """The built-in runtime serves one request per instance, as FC's does; custom runtimes take their setting."""
    if spec.get("runtime") in CUSTOM_RUNTIMES:
        return max(1, int(spec.get("instance_concurrency") or 1))
    return 1


def _port(spec: dict[str, Any]) -> int:
    if spec.get("runtime") in CUSTOM_RUNTIMES:
        return int((spec.get("custom_runtime_config") or {}).get("port") or RUNTIME_PORT)
    return RUNTIME_PORT


def _hooks(spec: dict[str, Any]) -> LifecycleHooks:
    config = spec.get("instance_lifecycle_config") or {}
    init, stop = config.get("initializer") or {}, config.get("pre_stop") or {}
    return LifecycleHooks(
        initializer=init.get("handler") or None, initializer_timeout=float(init.get("timeout") or 3),
        pre_stop=stop.get("handler") or None, pre_stop_timeout=float(stop.get("timeout") or 3),
    )


def new_request_id() -> str:
    return str(uuid.uuid4())
