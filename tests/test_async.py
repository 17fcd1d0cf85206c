"""Asynchronous invocation on a real agent: 202 once durable, the later run through the same pools, FC's errors at
once, retries, expiry, destinations, task mode (dedupe, states, stop) and the queue's metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from _agent import async_config, deploy, install, post, post_async, wait_task

from fc_lab import Lab
from fc_provider._remote import fleetops as ops

ECHO = "def handler(event, context):\n    return b'done:' + event\n"


@pytest.fixture(scope="module")
def conn(lab: Lab, lab_fleet: dict) -> Iterator[ops.FleetConnection]:
    conn = install(lab_fleet, 1)
    yield conn
    ops.uninstall_agent(conn, conn.hosts[0])


def test_async_answers_202_with_a_request_id_and_runs_the_event_later(conn: ops.FleetConnection,
                                                                     tmp_path: Path) -> None:
    url = deploy(conn, tmp_path, "async-echo", ECHO)
    status, headers, body = post_async(url, b"hello")
    assert status == 202 and body == b""
    request_id = headers["x-fc-request-id"]
    done = wait_task(conn, "async-echo", request_id, "Succeeded")
    assert done["returnPayload"] == "done:hello" and done["requestId"] == request_id
    assert [e["status"] for e in done["events"]] == ["Enqueued", "Dequeued", "Running", "Succeeded"]
    assert done["functionArn"] == "acs:fc:local:fleet:functions/async-echo"
    assert all(isinstance(e["timestamp"], int) for e in done["events"])


def test_unknown_function_and_oversized_payload_are_refused_at_once(conn: ops.FleetConnection,
                                                                    tmp_path: Path) -> None:
    status, headers, body = post_async(f"http://{conn.hosts[0].address}:9000/2023-03-30/functions/nope/invocations")
    assert status == 404 and json.loads(body)["Code"] == "FunctionNotFound"
    url = deploy(conn, tmp_path, "async-big", ECHO)
    status, _, body = post_async(url, b"x" * (128 * 1024 + 1))
    assert status == 400 and "128 KB" in json.loads(body)["Message"]
    assert post_async(url, b"x" * (128 * 1024))[0] == 202  # the limit itself is accepted


def test_function_errors_are_retried_up_to_the_attempt_count(conn: ops.FleetConnection, tmp_path: Path) -> None:
    flaky = ("calls = {}\n\ndef handler(event, context):\n    calls[event] = calls.get(event, 0) + 1\n"
             "    if calls[event] <= int(event.split(b':')[0]):\n        raise RuntimeError('not yet')\n"
             "    return str(calls[event])\n")
    url = deploy(conn, tmp_path, "async-flaky", flaky, max_instances=1)
    async_config(conn, "async-flaky", max_async_retry_attempts=2)
    _, ok, _ = post_async(url, b"2:a")  # fails twice, then succeeds on the last allowed attempt
    _, failed, _ = post_async(url, b"3:b")  # fails three times: retries exhausted
    done = wait_task(conn, "async-flaky", ok["x-fc-request-id"], "Succeeded", "Failed")
    assert done["status"] == "Succeeded" and done["returnPayload"] == "3" and done["alreadyRetriedTimes"] == 2
    retrying = [e for e in done["events"] if e["status"] == "Retrying"]
    assert len(retrying) == 2 and json.loads(retrying[0]["eventDetail"])["Error"] == "UnhandledInvocationError"
    gave_up = wait_task(conn, "async-flaky", failed["x-fc-request-id"], "Succeeded", "Failed")
    assert gave_up["status"] == "Failed" and gave_up["alreadyRetriedTimes"] == 2
    assert gave_up["taskErrorMessage"] == "UnhandledInvocationError"


def test_an_event_older_than_its_maximum_age_expires_without_running(conn: ops.FleetConnection,
                                                                     tmp_path: Path) -> None:
    slow = "import time\n\ndef handler(event, context):\n    time.sleep(float(event))\n    return event\n"
    url = deploy(conn, tmp_path, "async-slow", slow, max_instances=1, timeout=10)
    async_config(conn, "async-slow", max_async_event_age_in_seconds=1)
    _, first, _ = post_async(url, b"2.5")  # holds the function's one slot past the second event's age
    _, second, _ = post_async(url, b"0")
    expired = wait_task(conn, "async-slow", second["x-fc-request-id"], "Expired", "Succeeded")
    assert expired["status"] == "Expired"
    assert "Running" not in [e["status"] for e in expired["events"]]
    assert wait_task(conn, "async-slow", first["x-fc-request-id"], "Succeeded")["returnPayload"] == "2.5"


def test_async_tasks_never_take_a_functions_last_slot_from_sync_requests(conn: ops.FleetConnection,
                                                                          tmp_path: Path) -> None:
    slow = "import time\n\ndef handler(event, context):\n    time.sleep(float(event or 0))\n    return 'ok'\n"
    url = deploy(conn, tmp_path, "async-share", slow, max_instances=2, timeout=10)
    for _ in range(6):
        assert post_async(url, b"1")[0] == 202
    # Two slots: the queue uses at most one of them, so a sync request is served while six tasks are queued.
    status, _, body = post(url, b"0", {"x-fc-log-type": "None"})
    assert status == 200 and body == b"ok"
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        metrics = agent.metrics()
    depth = [line for line in metrics.splitlines() if line.startswith('fc_async_queue_depth{function="async-share"}')]
    assert depth and float(depth[0].split()[-1]) >= 1  # still queued: the sync request did not wait for them


def test_async_metrics_count_accepted_retried_and_expired(conn: ops.FleetConnection) -> None:
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        text = agent.metrics()
    for name in ("fc_async_accepted_total", "fc_async_retries_total", "fc_async_ended_total",
                 "fc_async_queue_depth", "fc_async_oldest_event_age_seconds"):
        assert name in text, name
    assert 'fc_async_ended_total{function="async-slow",status="Expired"} 1.0' in text
    assert 'fc_async_retries_total{function="async-flaky",kind="function_error"} 4.0' in text


def test_task_lookup_of_an_unknown_task_is_fc_shaped(conn: ops.FleetConnection) -> None:
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        status, data = agent.raw("GET", "/2023-03-30/functions/async-echo/async-tasks/nope")
    assert status == 404 and data["Code"] == "AsyncTaskNotFound"
