"""The fleet-wide task queue on a NATS JetStream cluster: ``TaskQueue`` (taskqueue.py) for fleets that must not
lose or strand tasks when a whole host is lost. Any host accepts, any host that has the function runs, every host
answers Get/List/Stop; the states, events, retries and outbox are TaskStore's (natsrecords.py mirrors its SQL).

- Accept (``enqueue``): the task's record is created in the KV bucket (``create`` refuses a key that exists,
  whatever its age: the 409), then its message is published to ``FC_TASKS`` (``Nats-Msg-Id`` = key, so a retried
  publish is deduplicated). Both are acknowledged by a majority of the replicas, each of which has fsynced the write
  (the Fleet's nats-server config says ``sync_interval: always``), before ``enqueue`` returns and the 202 leaves.
- Claim: each function this host has gets a pull consumer shared with the other hosts; a prefetcher takes one
  message at a time while the function has room here, and the workers claim from what it took (a compare-and-set
  of the record to Dequeued). The lease is JetStream's ack wait, kept alive by ``in_progress`` while the task is
  held: a holder whose agent or host is gone (or cut off) stops heartbeating and the message is delivered to
  another host, which recovers the record by TaskStore.recover's rule (Dequeued: again Enqueued; Running: Retrying,
  not charged; Stopping: Stopped). A message whose record has ended is acked and dropped: no completed task reruns.
- Retry: ``nak(delay)``; end: the record's terminal CAS (with the destination event in it), then the delivery's
  publish to ``FC_DELIVERIES``, then the ack. A crash between them redelivers the message, whose terminal record
  still carries the unpublished delivery: it is published then (at least once).
- Stop: a CAS of the record wherever it runs; a Running task's holder sees Stopping within ``STOP_POLL_S`` and
  ends the instance through the ``end_instance`` callback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import nats
from nats.js.errors import KeyWrongLastSequenceError

from . import natsrecords as nr
from .natsbus import TASKS_STREAM, NatsBus, NatsSettings, QueueUnavailable, get_entry, quietly
from .natsoutbox import ConfigsOnNats, OutboxOnNats, QueriesOnNats
from .states import TaskStatus
from .taskrows import NewTask, Task

log = logging.getLogger("fc-agent")

__all__ = ["NatsQueue", "NatsSettings", "QueueUnavailable"]

STOP_POLL_S = 1.0  # how soon a holder sees a stop made elsewhere
PARK_S = 2.0  # a prefetched task no worker here took within this goes back to the other hosts
READY_PER_FUNCTION = 2
PUBLISH_TRIES_S = 10.0
# what JetStream answers while a stream or bucket elects a leader (a member lost or restarted): tried again
TRANSIENT = (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError,
             nats.js.errors.NoStreamResponseError)


@dataclass
class _Held:
    msg: Any
    function: str
    since: float = field(default_factory=time.monotonic)
    claimed: bool = False
    beat: float = field(default_factory=time.monotonic)
    stop_seen: bool = False


class NatsQueue(OutboxOnNats, ConfigsOnNats, QueriesOnNats):
    def __init__(self, settings: NatsSettings, boot_id: str, host: str, functions: Callable[[], Iterable[str]],
                 clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.boot_id, self.host = boot_id, host
        self.accept_commits = 0  # each accepted event is its own pair of replicated writes
        self._functions = functions
        self._clock_ms = clock_ms
        self._ready_cb: Callable[[str], None] = lambda function: None
        self._end_instance: Callable[[str, str], Any] = lambda function, instance: False
        self._held: dict[str, _Held] = {}  # touched only on the bus's loop
        self._ready: dict[str, deque[str]] = {}
        self._busy: set[str] = set()
        self._prefetchers: dict[str, asyncio.Task] = {}
        self._deliveries: dict[int, Any] = {}
        self._next_delivery = 0
        self._closing = False
        self.bus = NatsBus(settings, self._connected)

    def attach(self, *, ready: Callable[[str], None], end_instance: Callable[[str, str], Any]) -> None:
        self._ready_cb, self._end_instance = ready, end_instance

    def close(self) -> None:
        self._closing = True
        if self.bus.ready:
            async def give_back() -> None:  # what this host holds goes to the others now, not after the lease
                for held in list(self._held.values()):
                    await quietly(held.msg.nak())
                self._held.clear()
            try:
                self.bus.call(give_back, timeout=5)
            except QueueUnavailable:
                pass
        self.bus.close()

    def _call(self, make: Callable[[], Any]) -> Any:
        return self.bus.call(make)

    async def _connected(self, bus: NatsBus) -> None:
        bus.spawn(self._tend())

    # accepting ---------------------------------------------------------------------------------------------------
    def enqueue(self, task: NewTask) -> bool:
        key = nr.key_of(task.function, task.task_id)

        async def accept() -> bool:
            records = self.bus.records
            deadline = time.monotonic() + PUBLISH_TRIES_S
            while True:
                try:
                    await records.create(key, nr.encode(nr.new_record(task)))
                    break
                except KeyWrongLastSequenceError:
                    # a repeat, unless the write was ours and only its answer got lost (then it is accepted)
                    entry = await get_entry(records, key)
                    if entry is None or nr.decode(entry.value)["request_id"] != task.request_id:
                        return False
                    break
                except TRANSIENT:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
            while True:
                try:
                    await self.bus.js.publish(f"fctasks.{task.function}", key.encode(), stream=TASKS_STREAM,
                                              headers={"Nats-Msg-Id": key})
                    return True
                except TRANSIENT:
                    if time.monotonic() > deadline:
                        await quietly(records.delete(key))  # no 202 then: the caller may send it again
                        raise
                    await asyncio.sleep(0.2)

        accepted = self._call(accept)
        self.accept_commits += accepted
        return accepted

    # claiming: prefetchers and heartbeats on the bus's loop ------------------------------------------------------
    async def _tend(self) -> None:
        """Keeps a prefetcher per function of this host, heartbeats what is held, gives back parked tasks and
        notices stops of held tasks made elsewhere."""
        while not self._closing:
            try:
                functions = {f for f in self._functions() if ":" not in f}
                for function in functions - set(self._prefetchers):
                    self._prefetchers[function] = asyncio.ensure_future(self._prefetch(function))
                for function in set(self._prefetchers) - functions:
                    self._prefetchers.pop(function).cancel()
                await self._beat()
            except Exception:  # noqa: BLE001 - the tender outlives a failing round; it tries again
                log.exception("task queue: tending held tasks")
            await asyncio.sleep(STOP_POLL_S)

    async def _beat(self) -> None:
        """Heartbeats first, for every held task (a publish each, nothing awaited from the cluster), so a slow
        cluster never lets this host's leases lapse; then parked tasks given back, then stops looked for."""
        now, lease = time.monotonic(), self.bus.settings.ack_wait_seconds
        for held in list(self._held.values()):
            if now - held.beat > lease / 3:
                await quietly(held.msg.in_progress())
                held.beat = now
        for key, held in list(self._held.items()):
            if not held.claimed and now - held.since > PARK_S:
                self._drop_ready(key)
                await self._settle(key, nak=True)
            elif held.claimed and not held.stop_seen:
                try:
                    entry = await asyncio.wait_for(get_entry(self.bus.records, key), STOP_POLL_S * 2)
                except (asyncio.TimeoutError, nats.errors.Error):
                    continue  # looked for again next round
                record = nr.decode(entry.value) if entry else None
                if record and record["status"] == TaskStatus.STOPPING.value and record["instance_id"]:
                    held.stop_seen = True
                    await asyncio.to_thread(self._end_instance, held.function, record["instance_id"])

    async def _prefetch(self, function: str) -> None:
        sub = None
        while not self._closing:
            try:
                if sub is None:
                    sub = await self.bus.task_subscription(function)
                if function in self._busy or len(self._ready.get(function, ())) >= READY_PER_FUNCTION:
                    await asyncio.sleep(0.05)
                    continue
                msgs = await sub.fetch(1, timeout=2)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                continue
            except asyncio.CancelledError:
                return
            except Exception as exc:  # noqa: BLE001 - the cluster is reforming or unreachable: try again soon
                log.debug("task queue: fetching tasks of %s: %s", function, exc)
                await asyncio.sleep(1)
                continue
            for msg in msgs:
                try:
                    await self._admit(function, msg)
                except Exception:  # noqa: BLE001 - unacked, the message comes back after the ack wait
                    log.exception("task queue: admitting a task of %s", function)

    async def _admit(self, function: str, msg: Any) -> None:
        key = msg.data.decode()
        if key in self._held:  # delivered again while held here (a heartbeat came late): keep the newer handle
            self._held[key].msg = msg
            return
        entry = await get_entry(self.bus.records, key)
        if entry is None:  # forgotten (7 days) or never completed its accept
            return await quietly(msg.ack())
        record = nr.decode(entry.value)
        now = self._clock_ms()
        if record["status"] in nr.IN_HAND_VALUES:  # its holder's lease ran out
            was, owner = record["status"], record["lease_owner"]
            record, _ = await self._mutate(key, lambda r: r["status"] in nr.IN_HAND_VALUES and
                                           bool(nr.recover(r, now, "LeaseExpired")))
            log.info("task %s was %s on %s when its lease ran out: recovered", key, was,
                     (record or {}).get("host"))
            # An earlier agent of this host may still run the old call in that instance; this agent's own worker
            # let go of the task only after its call ended, and the instance may run another task by now.
            if (record and was == TaskStatus.RUNNING.value and record["host"] == self.host
                    and owner != self.boot_id and record["instance_id"]):
                await asyncio.to_thread(self._end_instance, function, record["instance_id"])
        if record is None or record["status"] in nr.TERMINAL_VALUES:
            if record and record["delivery"] and not record["delivery"]["published"]:
                await self._publish_delivery(key, record)
            return await quietly(msg.ack())
        if record["not_before_ms"] > now:
            return await quietly(msg.nak(delay=(record["not_before_ms"] - now) / 1000))
        self._held[key] = _Held(msg, function)
        self._ready.setdefault(function, deque()).append(key)
        self._ready_cb(function)

    def _drop_ready(self, key: str) -> None:
        held = self._held.get(key)
        if held is not None and key in self._ready.get(held.function, ()):
            self._ready[held.function].remove(key)

    async def _settle(self, key: str, *, nak: bool = False, delay_s: float | None = None) -> None:
        held = self._held.pop(key, None)
        if held is not None:
            await quietly(held.msg.nak(delay=delay_s) if nak else held.msg.ack())

    async def _mutate(self, key: str, change: Callable[[dict], Any]) -> tuple[dict | None, Any]:
        """Reads the record, applies ``change`` and writes it back if it says so (compare-and-set on the revision,
        read again on a conflict). Returns (the record as it now is, what ``change`` returned)."""
        while True:
            entry = await get_entry(self.bus.records, key)
            if entry is None:
                return None, None
            record = nr.decode(entry.value)
            outcome = change(record)
            if not outcome:
                return record, outcome
            try:
                await self.bus.records.update(key, nr.encode(record), last=entry.revision)
                return record, outcome
            except KeyWrongLastSequenceError:
                continue

    # working: the TaskQueue transitions --------------------------------------------------------------------------
    def next_due_ms(self, busy_functions: Iterable[str] = ()) -> int | None:
        """Now when a prefetched task of a function with room waits here, else None: the prefetchers nudge the
        workers (``attach``'s ``ready``) when one arrives."""
        busy = set(busy_functions)
        try:  # read from a worker's thread while the loop may add a function: a miss only waits for the nudge
            waiting = any(q for f, q in list(self._ready.items()) if f not in busy)
        except RuntimeError:
            waiting = True
        return self._clock_ms() if waiting else None

    def claim(self, now_ms: int, busy_functions: Iterable[str] = ()) -> Task | None:
        self._busy = set(busy_functions)

        async def take() -> Task | None:
            while True:
                key = next((q.popleft() for f, q in self._ready.items() if q and f not in self._busy), None)
                if key is None:
                    return None
                record, claimed = await self._mutate(key, lambda r: nr.claim(r, self.boot_id, self.host, now_ms))
                if claimed:
                    self._held[key].claimed = True
                    return nr.to_task(record)  # type: ignore[arg-type]
                await self._release(key, record, False)  # stopped (or gone) while it waited here

        return self._call(take)

    def mark_running(self, task: str, instance_id: str, now_ms: int) -> bool:  # type: ignore[override]
        return bool(self._holding(task, lambda: self._mutate(
            task, lambda r: nr.run(r, self.boot_id, instance_id, now_ms)))[1])

    def retry(self, task: str, *, not_before_ms: int, charged: bool, detail: dict, now_ms: int) -> bool:
        async def go() -> bool:
            record, changed = await self._mutate(task, lambda r: nr.retry(
                r, self.boot_id, not_before_ms=not_before_ms, charged=charged, detail=detail, now_ms=now_ms))
            await self._release(task, record, bool(changed),
                                nak_delay_s=max(0.0, (not_before_ms - self._clock_ms()) / 1000))
            return bool(changed)
        return self._holding(task, go)

    def finish(self, task: str, status: TaskStatus, *, now_ms: int, detail: dict | None = None,
               result: bytes | None = None, error: str | None = None,
               delivery: tuple[str, bytes] | None = None, charged: bool = False) -> bool:
        async def go() -> bool:
            record, changed = await self._mutate(task, lambda r: nr.finish(
                r, self.boot_id, status, now_ms=now_ms, detail=detail, result=result, error=error, delivery=delivery,
                charged=charged))
            if record and record["delivery"] and not record["delivery"]["published"]:
                await self._publish_delivery(task, record)  # also when an earlier try's answer was lost
            await self._release(task, record, bool(changed))
            return bool(changed)
        return self._holding(task, go)

    def _holding(self, task: str, make: Callable[[], Any]) -> Any:
        """A transition of a task held here. If the cluster cannot be reached, this host lets the task go (no
        more heartbeats): its lease runs out and whichever host gets it next recovers it, rather than the task
        staying held, heartbeated and never finished."""
        try:
            return self._call(make)
        except QueueUnavailable:
            self.bus.loop.call_soon_threadsafe(self._held.pop, task, None)
            raise

    async def _release(self, key: str, record: dict | None, changed: bool, *,
                       nak_delay_s: float | None = None) -> None:
        """After a holder's retry or end. Its own write done: nak (retry, with its delay) or ack (end). Refused:
        ack only a message whose task is gone or has ended; otherwise this host's lease ran out meanwhile and the
        task is waiting for, or held by, another host: the message is only forgotten here (an ack would take it
        from under the task; it comes back, or has already, to whoever runs the task now)."""
        if changed:
            return await self._settle(key, nak=nak_delay_s is not None, delay_s=nak_delay_s)
        if record is None or record["status"] in nr.TERMINAL_VALUES:
            return await self._settle(key)
        self._held.pop(key, None)

    def request_stop(self, function: str, task_id: str, now_ms: int) -> tuple[Task, str] | None:
        key = nr.key_of(function, task_id)
        before: list[Task] = []

        def change(record: dict) -> str | None:
            before[:] = [nr.to_task(json.loads(json.dumps(record)))]
            return nr.stop(record, now_ms)

        record, new = self._call(lambda: self._mutate(key, change))
        if record is None:
            return None
        return before[0], new or record["status"]

    def status_of(self, task: str) -> str | None:  # type: ignore[override]
        entry = self._holding(task, lambda: get_entry(self.bus.records, task))  # asked by the task's holder
        return nr.decode(entry.value)["status"] if entry else None

    def release(self, task: str) -> None:  # type: ignore[override]
        """The worker gave up on it: no more heartbeats, so the lease runs out and some host recovers it."""
        self.bus.loop.call_soon_threadsafe(self._held.pop, task, None)

    def recover(self, now_ms: int) -> list[Task]:
        """Nothing to do at start: a lease here is JetStream's ack wait, and what an earlier boot held comes back
        to some host's prefetcher once it ran out (``_admit`` recovers it then)."""
        return []

    # queries -----------------------------------------------------------------------------------------------------
    def get(self, function: str, task_id: str) -> Task | None:
        entry = self._call(lambda: get_entry(self.bus.records, nr.key_of(function, task_id)))
        return nr.to_task(nr.decode(entry.value)) if entry else None

    def events(self, task: str) -> list[dict[str, Any]]:  # type: ignore[override]
        entry = self._call(lambda: get_entry(self.bus.records, task))
        return nr.decode(entry.value)["events"] if entry else []

    def purge(self, before_ms: int) -> int:
        return 0  # the records bucket keeps each entry 7 days after its last write (its max age) and drops it

def factory(settings: NatsSettings, host: str, functions: Callable[[], Iterable[str]]
            ) -> Callable[[Path, str], NatsQueue]:
    """AsyncInvoker's ``queue(database, boot_id)``: the database path is the local queue's and is not used."""
    return lambda _database, boot_id: NatsQueue(settings, boot_id, host, functions)
