"""The parts of ``NatsQueue`` (natsqueue.py) that touch neither claims nor leases: the destination outbox, the
AsyncInvokeConfig store, and the list and metrics queries.

Outbox: a task's end writes its destination event into its record (one compare-and-set with the end), then
publishes it to ``FC_DELIVERIES`` (``Nats-Msg-Id`` = the task's key + ``.delivery``: a republish after a crash is
deduplicated) and marks it published; a message redelivered for an ended task whose delivery is unpublished
publishes it then. Every host's ``Outbox`` thread pulls from the one shared consumer ``outbox``: a delivery is
acked once it succeeded or was given up (the task's ``destinationStatus``), nak'd with the backoff delay when it
is to be tried again, and comes back after the consumer's ack wait if its host died meanwhile: at least once.

Configs: one bucket for the fleet, key ``<function>.<qualifier>``; the provider writes the same config through
every host of the function, so any host that claims a task reads the config its function was given."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any, Callable

import nats

from . import natsrecords as nr
from .natsbus import DELIVERIES_STREAM, RECORDS_BUCKET, TASKS_STREAM, NatsBus, QueueUnavailable, get_entry, quietly
from .taskrows import Delivery, Task

SCAN_RECOUNT_S = 1.0  # a list still waiting for counted keys after this long checks they still exist


class OutboxOnNats:
    bus: NatsBus
    _deliveries: dict[int, Any]
    _next_delivery: int
    _clock_ms: Callable[[], int]

    async def _mutate(self, key: str, change: Callable[[dict], Any]) -> tuple[dict | None, Any]:
        raise NotImplementedError

    def _call(self, make: Callable[[], Any]) -> Any:
        raise NotImplementedError

    # the outbox --------------------------------------------------------------------------------------------------
    async def _publish_delivery(self, key: str, record: dict) -> None:
        d = record["delivery"]
        body = json.dumps({"task": key, "destination": d["destination"], "body": d["body"]}).encode()
        await self.bus.js.publish(f"fcdeliveries.{record['function']}", body, stream=DELIVERIES_STREAM,
                                  headers={"Nats-Msg-Id": f"{key}.delivery"})

        def published(r: dict) -> bool:
            if not r["delivery"] or r["delivery"]["published"]:
                return False
            r["delivery"]["published"] = True
            return True
        await self._mutate(key, published)

    def due_deliveries(self, now_ms: int, limit: int = 50) -> list[Delivery]:
        """Waits up to a second for deliveries (a long poll of the shared ``outbox`` consumer)."""
        async def fetch() -> list[Delivery]:
            try:
                msgs = await self.bus.outbox_sub.fetch(min(limit, 10), timeout=1)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                return []
            out = []
            for msg in msgs:
                item = json.loads(msg.data)
                self._next_delivery += 1
                self._deliveries[self._next_delivery] = msg
                out.append(Delivery(self._next_delivery, item["task"], item["destination"],  # type: ignore[arg-type]
                                    base64.b64decode(item["body"]), msg.metadata.num_delivered - 1))
            return out
        return self._call(fetch)

    def next_delivery_ms(self) -> int | None:
        return self._clock_ms()  # due_deliveries itself waits for the next one

    def delivery_done(self, delivery: Delivery, status: str, *, error: str | None = None,
                      next_ms: int | None = None) -> None:
        async def go() -> None:
            msg = self._deliveries.pop(delivery.id, None)
            if status == "Pending":
                delay = max(0.0, ((next_ms or 0) - self._clock_ms()) / 1000)
                return await quietly(msg.nak(delay=delay)) if msg else None

            def final(r: dict) -> bool:
                r["destination_status"] = status
                return True
            await self._mutate(str(delivery.task), final)
            if msg:
                await quietly(msg.ack())
        self._call(go)



class ConfigsOnNats:
    bus: NatsBus

    def _call(self, make: Callable[[], Any]) -> Any:
        raise NotImplementedError

    def put_config(self, function: str, qualifier: str, config: dict, now_ms: int) -> tuple[int, int]:
        key = f"{function}.{qualifier}"

        async def put() -> tuple[int, int]:
            entry = await get_entry(self.bus.configs, key)
            created = json.loads(entry.value)["created_ms"] if entry else now_ms
            await self.bus.configs.put(key, json.dumps({"config": config, "created_ms": created,
                                                        "modified_ms": now_ms}).encode())
            return created, now_ms
        return self._call(put)

    def get_config(self, function: str, qualifier: str) -> tuple[dict, int, int] | None:
        entry = self._call(lambda: get_entry(self.bus.configs, f"{function}.{qualifier}"))
        if entry is None:
            return None
        value = json.loads(entry.value)
        return value["config"], value["created_ms"], value["modified_ms"]

    def delete_config(self, function: str, qualifier: str) -> bool:
        async def delete() -> bool:
            key = f"{function}.{qualifier}"
            if await get_entry(self.bus.configs, key) is None:
                return False
            await self.bus.configs.delete(key)
            return True
        return self._call(delete)


class QueriesOnNats:
    bus: NatsBus
    _held: dict[str, Any]

    def _call(self, make: Callable[[], Any]) -> Any:
        raise NotImplementedError

    def list(self, function: str, *, prefix: str | None, status: str | None, begin_ms: int | None,
             end_ms: int | None, descending: bool, limit: int, after: tuple[int, Any] | None,
             qualifier: str | None = None) -> list[Task]:
        """Reads every record of the function (one watch of ``<function>.>``), then filters and pages in
        (enqueued_ms, key) order, as TaskStore pages by (enqueued_ms, id)."""
        records = self._call(lambda: self._scan(function))
        picked = [r for r in records if nr.matches(r, prefix=prefix, status=status, begin_ms=begin_ms,
                                                   end_ms=end_ms, qualifier=qualifier)]
        order = sorted(((r["enqueued_ms"], nr.key_of(function, r["task_id"])), r) for r in picked)
        if descending:
            order.reverse()
        if after is not None:
            mark = (int(after[0]), str(after[1]))
            order = [(k, r) for k, r in order if (k < mark if descending else k > mark)]
        return [nr.to_task(r) for _, r in order[:limit]]

    async def _scan(self, function: str) -> list[dict]:
        """Every record of ``function`` as it is now. The keys are counted first (the bucket's subjects), then one
        watch delivers the last value of each; the watch ends when every counted key has arrived. Not at the first
        entry whose ``delta`` (the server's pending count) is 0: under concurrent writes to the bucket that count
        can reach 0 and rise again, and the scan then missed records (nats-py #995; a CI run listed 5 of 8
        tasks)."""
        prefix = f"$KV.{RECORDS_BUCKET}."
        waiting = await self._record_keys(prefix, function)
        if not waiting:
            return []
        latest: dict[str, dict | None] = {}
        watcher = await self.bus.records.watch(f"{function}.>")
        loop = asyncio.get_running_loop()
        recount_at = loop.time() + SCAN_RECOUNT_S
        try:
            while waiting:
                try:
                    entry = await watcher.updates(timeout=max(0.01, recount_at - loop.time()))
                except nats.errors.TimeoutError:
                    entry = None
                if entry is not None:  # None: nats-py's "initial values done" marker, not trusted (see above)
                    waiting.discard(entry.key)
                    latest[entry.key] = None if entry.operation in ("DEL", "PURGE") else nr.decode(entry.value)
                if waiting and loop.time() >= recount_at:
                    # a key counted may have expired since (7 days after its last write): not waited for
                    waiting &= await self._record_keys(prefix, function)
                    recount_at = loop.time() + SCAN_RECOUNT_S
        finally:
            await quietly(watcher.stop())
        return [r for r in latest.values() if r is not None]

    async def _record_keys(self, prefix: str, function: str) -> set[str]:
        info = await self.bus.js.stream_info(f"KV_{RECORDS_BUCKET}", subjects_filter=f"{prefix}{function}.>")
        return {subject[len(prefix):] for subject in (info.state.subjects or {})}

    def stats(self, now_ms: int) -> dict[str, dict[str, float]]:
        """Per function: messages not yet acked (waiting anywhere, or in hand on some host), in hand here, and the
        age of the oldest message. Empty while the cluster cannot be reached (metrics must not fail)."""
        async def gather() -> dict[str, dict[str, float]]:
            info = await self.bus.js.stream_info(TASKS_STREAM, subjects_filter="fctasks.>")
            out: dict[str, dict[str, float]] = {}
            for subject, count in (info.state.subjects or {}).items():
                function = subject.split(".", 1)[1]
                first = await self.bus.js.get_msg(TASKS_STREAM, seq=1, subject=subject, next=True)
                age = (now_ms / 1000 - first.time.timestamp()) if first.time else 0.0
                in_hand = sum(1 for h in self._held.values() if h.function == function and h.claimed)
                out[function] = {"waiting": count - in_hand, "in_hand": in_hand, "oldest_age_s": max(0.0, age)}
            return out
        try:
            return self.bus.call(gather, timeout=2)
        except QueueUnavailable:
            return {}
