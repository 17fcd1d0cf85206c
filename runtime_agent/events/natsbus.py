"""The JetStream queue's connection (natsqueue.py): one nats-py client on a private asyncio loop in a thread of its
own, reached from the agent's threads by ``call``; the streams and buckets it needs, created (idempotently, by
whichever agent comes first) once the cluster answers; and the settings read from the agent config's
``task_queue: {"nats": {...}}``.

What lives where in the cluster (every one with ``replicas`` copies, file storage):
- stream ``FC_TASKS``, subjects ``fctasks.<function>``, work-queue retention: one message per accepted task (its
  record's key), ``Nats-Msg-Id`` = the key (a retried publish is deduplicated within ``DUPLICATE_WINDOW_S``);
  one durable pull consumer per function (``w-<function>``), shared by every host that has the function;
- stream ``FC_DELIVERIES``, subjects ``fcdeliveries.<function>``, work-queue: the destination outbox; one durable
  pull consumer ``outbox`` shared by every host;
- KV bucket ``fc-task-records`` (history 1, entries kept 7 days after their last write: FC's retention);
- KV bucket ``fc-async-configs``: AsyncInvokeConfig per function and qualifier.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import nats
from nats.js.api import ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import KeyNotFoundError

from ..errors import AgentError

log = logging.getLogger("fc-agent")

TASKS_STREAM, DELIVERIES_STREAM = "FC_TASKS", "FC_DELIVERIES"
RECORDS_BUCKET, CONFIGS_BUCKET = "fc-task-records", "fc-async-configs"
DUPLICATE_WINDOW_S = 120
RETENTION_S = 7 * 24 * 3600
CALL_TIMEOUT_S = 15.0
PING_INTERVAL_S = 2


class QueueUnavailable(AgentError):
    status = 503
    code = "ServiceUnavailable"


@dataclass(frozen=True)
class NatsSettings:
    """``task_queue: {"nats": {"servers": [...], "user": ..., "password": ..., "replicas": 3,
    "ack_wait_seconds": 30}}``: the cluster's client URLs (every member: the client fails over between them),
    its credentials, the replicas of each stream and bucket, and the lease of a claimed task (a holder that stops
    heartbeating for this long, its agent or host gone, loses the task to another host)."""

    servers: tuple[str, ...]
    user: str
    password: str
    replicas: int = 3
    ack_wait_seconds: float = 30.0

    @classmethod
    def from_config(cls, raw: Any) -> "NatsSettings":
        field = "task_queue.nats"
        if not isinstance(raw, dict):
            raise ValueError(f"{field}: must be an object with servers, user and password")
        unknown = sorted(set(raw) - {"servers", "user", "password", "replicas", "ack_wait_seconds"})
        if unknown:
            raise ValueError(f"{field}: unknown keys {unknown}")
        servers = raw.get("servers")
        if not isinstance(servers, list) or not servers or not all(
                isinstance(s, str) and re.fullmatch(r"nats://[A-Za-z0-9._-]+:\d{1,5}", s) for s in servers):
            raise ValueError(f"{field}.servers: a non-empty list of nats://host:port URLs")
        for name in ("user", "password"):
            if not isinstance(raw.get(name), str) or not raw[name]:
                raise ValueError(f"{field}.{name}: a non-empty string is required")
        replicas = raw.get("replicas", 3)
        if not isinstance(replicas, int) or not 1 <= replicas <= 5:
            raise ValueError(f"{field}.replicas: an integer from 1 to 5")
        ack_wait = raw.get("ack_wait_seconds", 30.0)
        if not isinstance(ack_wait, (int, float)) or not 3 <= ack_wait <= 600:
            raise ValueError(f"{field}.ack_wait_seconds: a number of seconds from 3 to 600")
        return cls(tuple(servers), raw["user"], raw["password"], replicas, float(ack_wait))


class NatsBus:
    def __init__(self, settings: NatsSettings, on_connected: Callable[["NatsBus"], Awaitable[None]]) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._on_connected = on_connected
        self._ready = threading.Event()
        self._closing = False
        self.nc: Any = None
        self.js: Any = None
        self.records: Any = None
        self.configs: Any = None
        self.outbox_sub: Any = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="task-nats", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._connect(), self.loop)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def call(self, make: Callable[[], Awaitable[Any]], timeout: float = CALL_TIMEOUT_S) -> Any:
        """Runs ``make()`` on the bus's loop and waits for it; QueueUnavailable when the cluster cannot be reached
        in ``timeout`` (the API answers 503, and a worker tries again later)."""
        if not self._ready.wait(timeout):
            raise QueueUnavailable("the task queue (NATS JetStream) is not reachable yet")
        future = asyncio.run_coroutine_threadsafe(make(), self.loop)
        try:
            return future.result(timeout)
        except (TimeoutError, asyncio.TimeoutError, nats.errors.Error) as exc:
            future.cancel()
            raise QueueUnavailable(f"the task queue (NATS JetStream) did not answer: {type(exc).__name__}: "
                                   f"{exc}") from exc

    def spawn(self, coro: Awaitable[Any]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    async def _connect(self) -> None:
        s = self.settings
        while not self._closing:
            try:
                self.nc = await nats.connect(servers=list(s.servers), user=s.user, password=s.password,
                                             connect_timeout=3, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                             # a member cut off is noticed in seconds, not nats-py's 4 minutes
                                             ping_interval=PING_INTERVAL_S, max_outstanding_pings=2,
                                             name="fc-agent")
                break
            except (nats.errors.Error, OSError, asyncio.TimeoutError) as exc:
                log.warning("task queue: cannot reach NATS (%s); trying again", exc)
                await asyncio.sleep(1)
        self.js = self.nc.jetstream(timeout=10)
        while not self._closing:
            try:
                await self._declare()
                break
            except (nats.errors.Error, asyncio.TimeoutError) as exc:  # no JetStream leader yet: the cluster forms
                log.info("task queue: JetStream not ready (%s); trying again", exc)
                await asyncio.sleep(1)
        await self._await_stream_leaders()
        await self._on_connected(self)
        self._ready.set()
        log.info("task queue: JetStream connected (%s)", self.nc.connected_url.netloc if self.nc.connected_url
                 else "?")

    async def _declare(self) -> None:
        r = self.settings.replicas
        for name, subjects in ((TASKS_STREAM, ["fctasks.>"]), (DELIVERIES_STREAM, ["fcdeliveries.>"])):
            await self.js.add_stream(StreamConfig(name=name, subjects=subjects, retention=RetentionPolicy.WORK_QUEUE,
                                                  storage=StorageType.FILE, num_replicas=r,
                                                  duplicate_window=DUPLICATE_WINDOW_S))
        self.records = await self.js.create_key_value(bucket=RECORDS_BUCKET, replicas=r, history=1, ttl=RETENTION_S,
                                                      storage=StorageType.FILE)
        self.configs = await self.js.create_key_value(bucket=CONFIGS_BUCKET, replicas=r, history=1,
                                                      storage=StorageType.FILE)
        self.outbox_sub = await self.js.pull_subscribe(
            "fcdeliveries.>", durable="outbox", stream=DELIVERIES_STREAM,
            config=ConsumerConfig(ack_wait=60, max_deliver=-1, max_ack_pending=1000))

    async def _await_stream_leaders(self) -> None:
        """Until every stream and bucket has elected its leader. Declaring one that another agent created first is
        answered by the meta leader while the stream's own group may still be electing (seconds on a new cluster):
        a write sent then waits for no one and times out, so the queue is not ready before that."""
        probe = self.nc.jetstream(timeout=2)
        pending = [TASKS_STREAM, DELIVERIES_STREAM, f"KV_{RECORDS_BUCKET}", f"KV_{CONFIGS_BUCKET}"]
        while pending and not self._closing:
            try:
                info = await probe.stream_info(pending[0])
                if info.cluster is None or info.cluster.leader:  # None: a server without a cluster
                    pending.pop(0)
                    continue
            except (nats.errors.Error, asyncio.TimeoutError) as exc:
                log.info("task queue: stream %s has no leader yet (%s)", pending[0], exc)
            await asyncio.sleep(0.25)

    async def task_subscription(self, function: str) -> Any:
        return await self.js.pull_subscribe(
            f"fctasks.{function}", durable=f"w-{function}", stream=TASKS_STREAM,
            config=ConsumerConfig(ack_wait=self.settings.ack_wait_seconds, max_deliver=-1, max_ack_pending=10000))

    def close(self) -> None:
        self._closing = True

        async def shut() -> None:
            if self.nc is not None and not self.nc.is_closed:
                await asyncio.wait_for(self.nc.close(), 3)
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:  # prefetchers, the tender: ended here rather than destroyed with the loop
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(shut(), self.loop).result(5)
        except Exception:  # noqa: BLE001 - closing: the cluster may be gone already
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


async def get_entry(kv: Any, key: str) -> Any:
    try:
        return await kv.get(key)
    except KeyNotFoundError:
        return None


async def quietly(awaitable: Any) -> None:
    """An ack, nak or heartbeat: if it is lost, the message comes back after the ack wait (at least once)."""
    try:
        await awaitable
    except Exception as exc:  # noqa: BLE001
        log.debug("task queue: %s", exc)
