"""The building blocks of the opt-in fleet-wide task queue (issue 12), on a real JetStream cluster of three
nats-servers (the project's v2.15.2 build) in the lab hosts' namespaces, configured by the files the Fleet would write (natsconf): a work-queue
stream with three replicas accepts on one host and delivers on another, dedupes by task id (``Nats-Msg-Id``
within the window, a KV ``create`` beyond it), keeps accepting and delivering with a whole host's server killed,
and delivers each message exactly once to acking workers. The agent's queue built on them (natsqueue.py) is tested
in test_nats_queue.py, and the Fleet that runs the cluster in test_nats_fleet.py."""

from __future__ import annotations

import asyncio
import json
import time

import nats
import pytest
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import KeyWrongLastSequenceError

from _nats import Cluster, cluster
from fc_lab import Lab
from fc_provider._model.natsconf import members

pytestmark = pytest.mark.timeout(240)
STREAM, SUBJECTS, BUCKET = "TASKS", ["tasks.>"], "task-records"


async def _connect(c: Cluster, *names: str):
    return await nats.connect(servers=c.servers(*names), user=c.user, password=c.password, connect_timeout=5,
                              max_reconnect_attempts=-1, reconnect_time_wait=0.2)


async def _retrying(what, deadline_s: float = 30):
    """JetStream answers 'unavailable' while the cluster elects a leader (at start, after a member is lost)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return await what()
        except (nats.errors.Error, asyncio.TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


async def _accept(js, kv, task_id: str) -> bool:
    """The accept step: the task's record (KV create: refused for an id already used, whatever its age), then its
    message (deduped by Nats-Msg-Id if the record's write was retried). True if accepted."""
    try:
        await _retrying(lambda: kv.create(task_id, json.dumps({"status": "Enqueued"}).encode()))
    except KeyWrongLastSequenceError:
        return False
    ack = await _retrying(lambda: js.publish("tasks.fn", task_id.encode(), headers={"Nats-Msg-Id": task_id},
                                             timeout=5))
    assert not ack.duplicate
    return True


async def _scenario(c: Cluster) -> None:
    producer, consumer = await _connect(c, "lab-1"), await _connect(c, "lab-2")
    try:
        js = producer.jetstream()
        await _retrying(lambda: js.add_stream(StreamConfig(
            name=STREAM, subjects=SUBJECTS, retention=RetentionPolicy.WORK_QUEUE, storage=StorageType.FILE,
            num_replicas=3, duplicate_window=120)))
        kv = await _retrying(lambda: js.create_key_value(bucket=BUCKET, replicas=3, history=1))
        first = [f"task-{i:03d}" for i in range(60)]
        assert all([await _accept(js, kv, t) for t in first])
        # A repeated id: refused by the record whatever its age; a retried publish is deduped by the stream.
        assert not await _accept(js, kv, first[0])
        again = await js.publish("tasks.fn", first[1].encode(), headers={"Nats-Msg-Id": first[1]})
        assert again.duplicate

        c.kill("lab-3")  # a whole host down, its nats-server with it: two of three replicas remain
        second = [f"task-{i:03d}" for i in range(60, 120)]
        assert all([await _accept(js, kv, t) for t in second])

        # Workers on another host take each task once; an acked message leaves the work queue.
        cjs = consumer.jetstream()
        ckv = await cjs.key_value(BUCKET)
        sub = await _retrying(lambda: cjs.pull_subscribe("tasks.>", durable="workers", stream=STREAM))
        seen: list[str] = []
        deadline = time.monotonic() + 60
        while len(seen) < 120 and time.monotonic() < deadline:
            try:
                batch = await sub.fetch(50, timeout=2)
            except asyncio.TimeoutError:
                continue
            for msg in batch:
                task_id = msg.data.decode()
                entry = await ckv.get(task_id)
                if json.loads(entry.value)["status"] == "Succeeded":  # redelivered after its ack was lost: the
                    await msg.ack_sync()                               # record says it ended, so it never reruns
                    continue
                await ckv.update(task_id, json.dumps({"status": "Succeeded"}).encode(), last=entry.revision)
                await msg.ack_sync()
                seen.append(task_id)
        assert sorted(seen) == sorted(first + second)  # none lost, none twice
        deadline = time.monotonic() + 30  # acks reach every replica shortly after they are confirmed
        while (await _retrying(lambda: cjs.stream_info(STREAM))).state.messages and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert (await cjs.stream_info(STREAM)).state.messages == 0
        assert json.loads((await ckv.get("task-100")).value)["status"] == "Succeeded"
    finally:
        await producer.close()
        await consumer.close()


def test_a_three_replica_work_queue_accepts_on_one_host_runs_on_another_and_survives_a_host_down(lab: Lab) -> None:
    with cluster(lab, ["lab-1", "lab-2", "lab-3"]) as c:
        asyncio.run(_scenario(c))


def test_member_configs_route_to_every_other_host_and_refuse_unsafe_values() -> None:
    configs = members([("lab-1", "10.0.0.1"), ("lab-2", "10.0.0.2"), ("lab-3", "10.0.0.3")], "p" * 24)
    text = configs[1].render()
    assert 'listen: "10.0.0.2:4222"' in text and "@10.0.0.1:6222" in text and "@10.0.0.3:6222" in text
    assert "@10.0.0.2:6222" not in text and "sync_interval" not in text
    assert "sync_interval: always" in members([("a", "10.0.0.1")], "p" * 24, sync_always=True)[0].render()
    with pytest.raises(ValueError, match="nats server_name"):
        members([('a" }', "10.0.0.1")], "p" * 24)[0].render()
    with pytest.raises(ValueError, match="nats password"):
        members([("a", "10.0.0.1")], "short")[0].render()
