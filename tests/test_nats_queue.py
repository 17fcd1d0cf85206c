"""The fleet-wide task queue (runtime_agent/events/natsqueue.py) on real agents and a real 3-member JetStream
cluster (nats-server v2.15.2, ``sync_interval: always``), one per lab host: lab-1 only accepts (no async workers),
lab-2 and lab-3 run; every task API call goes through the signed invoke API of some host. Accepted on lab-1, run
on another host; a task id repeated on another host is refused (409); Get/List/Stop answered by any host; lab-2's
network taken down while tasks are queued and running: lab-3 finishes every one of them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from typing import Iterator

import pytest
from _agent import async_config, deploy, install, instances, post, post_async, wait_for
from _nats import Cluster, cluster

from fc_lab import Lab
from fc_provider._remote import fleetops as ops

pytestmark = pytest.mark.timeout(600)
HOSTS = ["lab-1", "lab-2", "lab-3"]
FN = "natsjob"
SLEEPER = ("import time\n\ndef handler(event, context):\n    time.sleep(float(event or 0))\n"
           "    return 'slept ' + (event.decode() if isinstance(event, bytes) else str(event))\n")
ACK_WAIT_S = 5  # the lease of a claimed task: a holder cut off this long loses it to another host


@pytest.fixture(scope="module")
def fleet(lab: Lab, lab_fleet: dict, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[Cluster, list[ops.FleetConnection]]]:
    with cluster(lab, HOSTS) as c:
        conns = []
        try:
            for index in range(3):
                conns.append(install(lab_fleet, index, task_queue=c.settings(ack_wait_seconds=ACK_WAIT_S),
                                     async_workers=0 if index == 0 else 4))
            for conn in conns:
                deploy(conn, tmp_path_factory.mktemp("code"), FN, SLEEPER, timeout=60, max_instances=2)
            async_config(conns[0], FN, async_task=True, max_async_retry_attempts=0)  # one bucket for the fleet
            yield c, conns
        finally:
            for conn in conns:
                ops.uninstall_agent(conn, conn.hosts[0])


def _api(conn: ops.FleetConnection, path: str = "", method: str = "GET", query: str = "") -> tuple[int, dict]:
    host = conn.hosts[0]
    url = f"http://{host.address}:{conn.invoke_port}/2023-03-30/functions/{FN}/async-tasks{path}"
    status, _headers, body = post(f"{url}?{query}" if query else url, method=method)
    return status, (json.loads(body) if body else {})


def _task(conn: ops.FleetConnection, task_id: str) -> dict:
    status, body = _api(conn, f"/{task_id}")
    assert status == 200, body
    return body


def _wait_status(conn: ops.FleetConnection, task_id: str, *statuses: str, timeout: float = 120) -> dict:
    """The task once it reaches one of ``statuses``; a 503 meanwhile (the cluster electing a new leader after a
    member was lost: FC's ServiceUnavailable, the client retries) is waited out, any other answer fails."""
    def look() -> dict | None:
        status, body = _api(conn, f"/{task_id}")
        if status == 503 and body.get("Code") == "ServiceUnavailable":
            return None
        assert status == 200, body
        return body if body["status"] in statuses else None
    return wait_for(look, f"task {task_id} to reach {'/'.join(statuses)}", timeout)


def _submit(conn: ops.FleetConnection, task_id: str, body: bytes) -> None:
    host = conn.hosts[0]
    status, headers, reply = post_async(f"http://{host.address}:{conn.invoke_port}/2023-03-30/functions/{FN}"
                                        f"/invocations", body, task_id=task_id)
    assert status == 202, reply
    assert headers.get("x-fc-request-id")


def _instances_of(conns: list[ops.FleetConnection]) -> dict[str, str]:
    """instance id -> host name, on every host."""
    return {i["instance_id"]: conn.hosts[0].name for conn in conns for i in instances(conn, FN)}


def test_accepted_on_one_host_run_on_others_and_answered_by_any(fleet) -> None:
    _c, conns = fleet
    ids = [f"spread-{uuid.uuid4().hex[:8]}-{n}" for n in range(8)]
    for task_id in ids:
        _submit(conns[0], task_id, b"0.2")  # lab-1 accepts; it has no async workers
    done = [_wait_status(conns[2], task_id, "Succeeded", "Failed") for task_id in ids]
    assert {t["status"] for t in done} == {"Succeeded"}
    ran_on = _instances_of(conns)
    assert {ran_on[t["instanceId"]] for t in done} <= {"lab-2", "lab-3"}
    first = _task(conns[1], ids[0])  # the same record from every host
    assert first == _task(conns[0], ids[0]) == done[0]
    assert [e["status"] for e in first["events"]] == ["Enqueued", "Dequeued", "Running", "Succeeded"]
    assert first["returnPayload"] == "slept 0.2"

    status, page = _api(conns[1], query="prefix=spread-&limit=5&sortOrderByTime=asc")
    assert status == 200 and len(page["tasks"]) == 5 and page["nextToken"]
    status, rest = _api(conns[2], query=f"prefix=spread-&limit=5&sortOrderByTime=asc&nextToken={page['nextToken']}")
    assert status == 200 and "nextToken" not in rest
    listed = [t["taskId"] for t in page["tasks"] + rest["tasks"]]
    assert sorted(listed) == sorted(ids) and len(listed) == len(set(listed))


def test_a_list_read_while_the_bucket_is_written_holds_every_task(fleet) -> None:
    """ListAsyncTasks reads a function's records with one KV watch. A CI run listed 5 of 8 tasks: the watch had been
    ended at the first entry whose pending count was 0, which under concurrent writes to the bucket is not the last
    one. Here a writer keeps rewriting records (the listed function's and another's, the same values at new
    revisions) while the list is read again and again. (Before the cut-off test: a member that has just rejoined
    keeps the cluster busy catching up, and a list then may wait for it past the 15 s call timeout.)"""
    from runtime_agent.events import natsrecords as nr
    from runtime_agent.events.natsbus import NatsSettings
    from runtime_agent.events.natsqueue import NatsQueue
    from runtime_agent.events.taskrows import NewTask

    c, _conns = fleet
    queue = NatsQueue(NatsSettings.from_config(c.settings()["nats"]), "scan-test", "test-runner", functions=list)
    try:
        fn, noise = f"scan-{uuid.uuid4().hex[:6]}", f"noise-{uuid.uuid4().hex[:6]}"

        def record(function: str, n: int) -> bytes:
            return nr.encode(nr.new_record(NewTask(function, f"t{n}", "LATEST", f"r{n}", False, b"", 0, n, 10**13)))

        async def fill() -> None:
            for n in range(60):
                await queue.bus.records.put(nr.key_of(fn, f"t{n}"), record(fn, n))
                await queue.bus.records.put(nr.key_of(noise, f"t{n}"), record(noise, n))
        queue.bus.call(fill, timeout=60)
        writing = True

        async def write() -> int:
            rewrites = 0
            while writing:
                n, function = rewrites % 60, (fn, noise)[rewrites % 2]  # the same values again, new revisions
                await queue.bus.records.put(nr.key_of(function, f"t{n}"), record(function, n))
                rewrites += 1
                await asyncio.sleep(0.01)  # a busy fleet's pace, not a flood: lists must finish, not time out
            return rewrites
        writer = asyncio.run_coroutine_threadsafe(write(), queue.bus.loop)
        try:
            short = []
            for _ in range(40):
                listed = queue.list(fn, prefix=None, status=None, begin_ms=None, end_ms=None, descending=False,
                                    limit=1000, after=None)
                if len(listed) != 60:
                    short.append(len(listed))
        finally:
            writing = False
        assert writer.result(10) > 40, "the writer ran alongside the lists"
        assert not short, f"lists that missed records: {short} of 40 (60 records each)"
    finally:
        queue.close()


def test_a_task_id_used_on_one_host_is_refused_on_another(fleet) -> None:
    _c, conns = fleet
    task_id = f"dedupe-{uuid.uuid4().hex[:8]}"
    _submit(conns[0], task_id, b"0")
    host = conns[2].hosts[0]
    status, _headers, body = post_async(f"http://{host.address}:{conns[2].invoke_port}/2023-03-30/functions/{FN}"
                                        f"/invocations", b"0", task_id=task_id)
    assert status == 409 and json.loads(body)["Code"] == "TaskAlreadyExists"
    _wait_status(conns[1], task_id, "Succeeded")


def test_stop_on_one_host_ends_a_task_running_on_another_and_a_queued_one_never_runs(fleet) -> None:
    _c, conns = fleet
    running = f"long-{uuid.uuid4().hex[:8]}"
    _submit(conns[0], running, b"50")
    _wait_status(conns[0], running, "Running", timeout=60)
    # async work holds at most slots - 1 of a function's slots per host (max_instances 2: one), so with one more
    # running on the other host the rest wait
    more = [f"fill-{uuid.uuid4().hex[:8]}-{n}" for n in range(3)]
    for task_id in more:
        _submit(conns[0], task_id, b"50")
    wait_for(lambda: any(_task(conns[0], t)["status"] == "Running" for t in more), "the other host to run one", 60)
    waiting = next(t for t in more if _task(conns[0], t)["status"] in ("Enqueued", "Retrying"))
    assert _api(conns[0], f"/{running}/stop", method="PUT")[0] == 200  # lab-1 never ran it
    assert _api(conns[2], f"/{waiting}/stop", method="PUT")[0] == 200
    stopped = _wait_status(conns[1], running, "Stopped", timeout=60)
    assert [e["status"] for e in stopped["events"]][-2:] == ["Stopping", "Stopped"]
    never = _wait_status(conns[1], waiting, "Stopped")
    assert "Running" not in [e["status"] for e in never["events"]]
    status, body = _api(conns[1], f"/{waiting}/stop", method="PUT")
    assert status == 400 and "already ended" in body["Message"]
    for task_id in more:
        _api(conns[0], f"/{task_id}/stop", method="PUT")
    for task_id in more:
        _wait_status(conns[0], task_id, "Stopped", timeout=60)


def test_with_one_host_cut_off_the_others_finish_every_queued_task(fleet, lab: Lab) -> None:
    _c, conns = fleet
    # 6 tasks of 4 s: one running on each runner host at the cut, the rest queued (each host runs one at a time)
    ids = [f"cut-{uuid.uuid4().hex[:8]}-{n}" for n in range(6)]
    for task_id in ids:
        _submit(conns[0], task_id, b"4")
    wait_for(lambda: any(_task(conns[0], t)["status"] == "Running" and _task(conns[0], t)["instanceId"]
                         in _instances_of(conns[1:2]) for t in ids), "lab-2 to run one of them", 60)
    veth = _veth(lab, "lab-2")
    try:
        subprocess.run(["ip", "link", "set", veth, "down"], check=True)  # lab-2's agent and nats-server cut off
        try:
            done = [_wait_status(conns[2], t, "Succeeded", "Failed", timeout=120) for t in ids]
        except AssertionError as exc:  # say where each task is, and what the agents that remain logged
            states = {t: _api(conns[2], f"/{t}")[1].get("status") for t in ids}
            logs = {h: lab.run(h, ["tail", "-n", "30", "/var/lib/fc-agent/agent.log"], capture_output=True,
                               text=True).stdout for h in ("lab-1", "lab-3")}
            raise AssertionError(f"{exc}; tasks: {states}; logs: {logs}") from exc
    finally:
        subprocess.run(["ip", "link", "set", veth, "up"], check=True)
    assert {t["status"] for t in done} == {"Succeeded"}, [t for t in done if t["status"] != "Succeeded"]
    recovered = [t for t in done if any(json.loads(e["eventDetail"] or "{}").get("Error") == "LeaseExpired"
                                        for e in t["events"])]
    assert recovered, "at least the task lab-2 was running came back to the others"
    # counts add up: every task ended once, on lab-3 for those lab-2 lost
    ran_on = _instances_of([conns[2]])
    assert all(t["instanceId"] in ran_on for t in recovered)


def _veth(lab: Lab, name: str) -> str:
    """The root namespace's end of the host's veth (the lab names it {prefix}v{index})."""
    spec = lab._spec_by_name(name)  # noqa: SLF001 - the lab's own naming, read not changed
    return spec.veth_root


def test_the_backend_is_chosen_by_the_config_and_bad_settings_name_the_field() -> None:
    from runtime_agent.events.taskqueue import backend
    from runtime_agent.events.taskstore import TaskStore

    assert backend("local", host="h", functions=list) is TaskStore
    assert backend(None, host="h", functions=list) is TaskStore
    for bad, field in (({"nats": {"servers": ["x"], "user": "u", "password": "p"}}, "task_queue.nats.servers"),
                       ({"nats": {"servers": ["nats://a:4222"], "user": "u"}}, "task_queue.nats.password"),
                       ({"nats": {"servers": ["nats://a:4222"], "user": "u", "password": "p", "replicas": 9}},
                        "task_queue.nats.replicas"),
                       ({"redis": {}}, "task_queue")):
        with pytest.raises(ValueError, match=field.replace(".", r"\.")):
            backend(bad, host="h", functions=list)
