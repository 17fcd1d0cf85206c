"""Task mode and destinations on a real agent: x-fc-async-task-id (FC's rule, 409 on a repeat), stop of a queued
and of a running task, FC's destination event delivered to a function and to a webhook (the webhook through a
restart of the agent: the outbox survives it), bad configs refused naming the field."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
from _agent import TEST_KEY, async_config, deploy, install, instances, post_async, wait_for, wait_task

from fc_lab import Lab
from fc_provider import AgentAPIError
from fc_provider._remote import commands as cmd
from fc_provider._remote import fleetops as ops
from fc_provider._remote.ssh import SSHSession

SLEEPER = "import time\n\ndef handler(event, context):\n    time.sleep(float(event or 0))\n    return 'slept'\n"
SINK = "def handler(event, context):\n    return event\n"


@pytest.fixture(scope="module")
def conn(lab: Lab, lab_fleet: dict) -> Iterator[ops.FleetConnection]:
    conn = install(lab_fleet, 0)
    yield conn
    ops.uninstall_agent(conn, conn.hosts[0])


class _Hook:
    """A webhook receiver on the lab bridge's address (the lab hosts reach it; nothing outside does)."""

    def __init__(self, address: str) -> None:
        self.bodies: list[dict] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                self.send_response(204)
                self.end_headers()

        probe = ThreadingHTTPServer((address, 0), Handler)  # a free port, closed again: refused until start()
        self.port = probe.server_address[1]
        probe.server_close()
        self.address, self.handler = address, Handler
        self.url = f"http://{address}:{self.port}/hook"

    def start(self) -> "_Hook":
        self.server = ThreadingHTTPServer((self.address, self.port), self.handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_task_id_is_used_once_and_must_follow_fcs_rule(conn: ops.FleetConnection, tmp_path: Path) -> None:
    url = deploy(conn, tmp_path, "task-ids", SINK)
    status, _, body = post_async(url, b"x", task_id="job-1")
    assert status == 400 and "task mode" in json.loads(body)["Message"]  # task mode is off
    async_config(conn, "task-ids", async_task=True)
    status, headers, _ = post_async(url, b"x", task_id="job-1")
    assert status == 202 and headers["x-fc-async-task-id"] == "job-1"
    status, _, body = post_async(url, b"x", task_id="job-1")
    assert status == 409 and json.loads(body)["Code"] == "TaskAlreadyExists"
    for bad in ("1starts-with-digit", "has space", "x" * 129, "dot.ted"):
        status, _, body = post_async(url, b"x", task_id=bad)
        assert status == 400 and "x-fc-async-task-id" in json.loads(body)["Message"], bad
    assert wait_task(conn, "task-ids", "job-1", "Succeeded")["taskPayload"] == "x"


def test_stop_ends_a_queued_task_before_it_runs_and_a_running_one_with_its_instance(
        conn: ops.FleetConnection, tmp_path: Path) -> None:
    url = deploy(conn, tmp_path, "stoppable", SLEEPER, max_instances=1, timeout=60)
    async_config(conn, "stoppable", async_task=True, max_async_retry_attempts=0)
    post_async(url, b"30", task_id="long")
    post_async(url, b"0", task_id="queued")
    running = wait_task(conn, "stoppable", "long", "Running")
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        agent.stop_task("stoppable", "queued")
        assert agent.get_task("stoppable", "queued")["status"] == "Stopped"
        agent.stop_task("stoppable", "long")
        stopped = wait_task(conn, "stoppable", "long", "Stopped", timeout=20)
        assert [e["status"] for e in stopped["events"]][-2:] == ["Stopping", "Stopped"]
        with pytest.raises(AgentAPIError) as info:  # an ended task cannot be stopped again
            agent.stop_task("stoppable", "long")
        assert info.value.status == 400 and "already ended" in info.value.message
        with pytest.raises(AgentAPIError) as info:
            agent.stop_task("stoppable", "never-submitted")
        assert info.value.status == 404
    queued = wait_task(conn, "stoppable", "queued", "Stopped")
    assert "Running" not in [e["status"] for e in queued["events"]]
    # The instance that ran the stopped task was ended, not left sleeping.
    wait_for(lambda: running["instanceId"] not in [i["instance_id"] for i in instances(conn, "stoppable")],
             "the stopped task's instance to be recycled", 20)


def test_destinations_get_fcs_event_at_a_function_and_at_a_webhook(conn: ops.FleetConnection, lab: Lab,
                                                                   tmp_path: Path) -> None:
    deploy(conn, tmp_path / "sink", "dest-sink", SINK)
    async_config(conn, "dest-sink", async_task=True)
    flaky = "def handler(event, context):\n    if event == b'bad':\n        raise ValueError('bad event')\n" \
            "    return b'good:' + event\n"
    url = deploy(conn, tmp_path / "src", "dest-source", flaky)
    hook = _Hook(f"{lab.subnet}.1")  # not listening yet: the first deliveries fail and are retried
    async_config(conn, "dest-source", max_async_retry_attempts=1, destination_config={
        "on_success": {"destination": "acs:fc:local:fleet:functions/dest-sink"},
        "on_failure": {"destination": hook.url}})
    _, ok, _ = post_async(url, b"fine")
    _, bad, _ = post_async(url, b"bad")
    wait_task(conn, "dest-source", bad["x-fc-request-id"], "Failed")
    # The agent dies with the webhook delivery still pending; the outbox delivers it after the restart.
    host = conn.hosts[0]
    lab.run(host.name, ["sh", "-c", "kill -9 $(cat /var/lib/fc-agent/agent.pid)"], check=True)
    with SSHSession(host, conn.private_key) as ssh:
        ssh.run(cmd.start_agent())
    with ops.agent_session(conn, host) as (_ssh, agent):
        agent.wait_healthy()
    hook.start()
    try:
        events = wait_for(lambda: hook.bodies, "the on_failure webhook", 60)
    finally:
        hook.close()
    event = events[0]  # at least once: a repeat would be the same event
    assert all(e == event for e in events)
    assert event["requestContext"]["requestId"] == bad["x-fc-request-id"]
    assert event["requestContext"]["functionArn"] == "acs:fc:local:fleet:functions/dest-source"
    assert event["requestContext"]["condition"] == "UnhandledInvocationError"
    assert event["requestContext"]["approximateInvokeCount"] == 2  # one retry
    assert event["requestPayload"] == "bad" and "bad event" in event["responsePayload"]
    assert event["responseContext"] == {"statusCode": 200, "functionError": "UnhandledInvocationError"}
    assert isinstance(event["timestamp"], int)
    failed = wait_task(conn, "dest-source", bad["x-fc-request-id"], "Failed")
    wait_for(lambda: wait_task(conn, "dest-source", bad["x-fc-request-id"], "Failed").get("destinationStatus")
             == "Succeeded", "destinationStatus")
    assert failed["status"] == "Failed"
    with ops.agent_session(conn, host) as (_ssh, agent):
        delivered = wait_for(lambda: agent.list_tasks("dest-sink", includePayload=True)["tasks"], "the sink's task")
    success = json.loads(delivered[0]["taskPayload"])
    assert success["requestContext"]["condition"] == "Success" and success["requestPayload"] == "fine"
    assert success["responsePayload"] == "good:fine" and success["requestContext"]["requestId"] == \
        ok["x-fc-request-id"]


def test_bad_async_configs_are_refused_naming_the_field(conn: ops.FleetConnection, tmp_path: Path) -> None:
    deploy(conn, tmp_path, "bad-config", SINK)
    cases = [({"max_async_retry_attempts": 9}, "max_async_retry_attempts"),
             ({"max_async_event_age_in_seconds": 0}, "max_async_event_age_in_seconds"),
             ({"destination_config": {"on_success": {"destination": "acs:mns:local:fleet:/queues/q"}}},
              "destination_config.on_success.destination"),
             ({"destination_config": {"on_failure": {"destination": "ftp://x"}}},
              "destination_config.on_failure.destination"),
             ({"destination_config": {"on_success": {"destination": "acs:fc:local:fleet:functions/bad-config"}}},
              "its own destination"),
             ({"destination_config": {"on_success": {"destination": "acs:fc:local:fleet:functions/not-here"}}},
              "does not exist on this host")]
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        for config, field in cases:
            with pytest.raises(AgentAPIError) as info:
                agent.put_async_config("bad-config", config)
            assert info.value.status == 400 and field in info.value.message, config


def _sdk(conn: ops.FleetConnection):
    """The official FC SDK, pointed at the host's invoke port (it signs every request; the agent serves FC's
    task API paths and shapes)."""
    from alibabacloud_fc20230330.client import Client
    from alibabacloud_tea_openapi.models import Config

    return Client(Config(access_key_id=TEST_KEY.access_key_id, access_key_secret=TEST_KEY.access_key_secret,
                         protocol="http",
                         endpoint=f"{conn.hosts[0].address}:{conn.invoke_port}", region_id="local"))


def test_the_official_sdk_submits_lists_gets_and_stops_tasks(conn: ops.FleetConnection, tmp_path: Path) -> None:
    from alibabacloud_fc20230330 import models

    deploy(conn, tmp_path, "sdk-tasks", SLEEPER, max_instances=1, timeout=60)
    async_config(conn, "sdk-tasks", async_task=True)
    client = _sdk(conn)
    for task_id, seconds in (("sdk-a", b"0"), ("sdk-b", b"30"), ("sdk-c", b"0")):
        response = client.invoke_function_with_options(
            "sdk-tasks", models.InvokeFunctionRequest(body=seconds),
            models.InvokeFunctionHeaders(x_fc_invocation_type="Async", x_fc_async_task_id=task_id),
            _runtime())
        assert response.status_code == 202 and response.headers["x-fc-request-id"]
    wait_task(conn, "sdk-tasks", "sdk-b", "Running")
    got = client.get_async_task("sdk-tasks", "sdk-a", models.GetAsyncTaskRequest()).body
    assert got.task_id == "sdk-a" and got.status == "Succeeded" and got.return_payload == "slept"
    assert got.events[0].status == "Enqueued" and isinstance(got.events[0].timestamp, int)
    page = client.list_async_tasks("sdk-tasks", models.ListAsyncTasksRequest(limit=2, include_payload=True)).body
    assert [t.task_id for t in page.tasks] == ["sdk-a", "sdk-b"] and page.next_token
    assert page.tasks[0].task_payload == "0"
    rest = client.list_async_tasks("sdk-tasks", models.ListAsyncTasksRequest(limit=2, next_token=page.next_token))
    assert [t.task_id for t in rest.body.tasks] == ["sdk-c"] and not rest.body.next_token
    running = client.list_async_tasks("sdk-tasks", models.ListAsyncTasksRequest(status="Running")).body
    assert [t.task_id for t in running.tasks] == ["sdk-b"]
    newest = client.list_async_tasks("sdk-tasks", models.ListAsyncTasksRequest(sort_order_by_time="desc")).body
    assert [t.task_id for t in newest.tasks] == ["sdk-c", "sdk-b", "sdk-a"]
    assert all(t.qualifier == "LATEST" for t in newest.tasks)
    other = client.list_async_tasks("sdk-tasks", models.ListAsyncTasksRequest(qualifier="prod")).body
    assert not other.tasks  # every event was submitted to LATEST
    client.stop_async_task("sdk-tasks", "sdk-c", models.StopAsyncTaskRequest())  # queued behind sdk-b
    client.stop_async_task("sdk-tasks", "sdk-b", models.StopAsyncTaskRequest())
    assert wait_task(conn, "sdk-tasks", "sdk-b", "Stopped", timeout=20)["status"] == "Stopped"
    assert wait_task(conn, "sdk-tasks", "sdk-c", "Stopped")["status"] == "Stopped"
    from darabonba.exceptions import DaraException

    with pytest.raises(DaraException) as info:
        client.get_async_task("sdk-tasks", "never", models.GetAsyncTaskRequest())
    assert info.value.code == "AsyncTaskNotFound"


def _runtime():
    from darabonba.runtime import RuntimeOptions

    return RuntimeOptions()
