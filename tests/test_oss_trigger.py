"""OSS triggers against a real S3 server (versitygw): webhook push and the ListObjectsV2 reconciliation, each
object event delivered once, events missed while the agent was down delivered after it returns. Real agent, real
containers, boto3 as the client."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest
from _s3 import S3Server

from fc_lab import Lab
from fc_provider._errors import AgentAPIError
from fc_provider._remote import fleetops as ops
from tests._agent import async_config, deploy, install, post, wait_for, wait_task

HANDLER = '''
import json, time
def handler(event, context):
    started = time.time()
    for e in json.loads(event)["events"]:
        print("FIRED " + json.dumps({**e, "started": started}))
        if "boom" in e["oss"]["object"]["key"]:
            raise RuntimeError("boom: " + e["oss"]["object"]["key"])
    return "ok"
'''
HOST = 1  # lab-2
KEY = secrets.token_hex(16)


@pytest.fixture(scope="module")
def setup(lab: Lab, lab_fleet: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    conn = install(lab_fleet, HOST)
    tmp = tmp_path_factory.mktemp("oss")
    deploy(conn, tmp / "code", "objects", HANDLER, min_instances=1, timeout=10)
    server = S3Server(f"{lab.subnet}.1", tmp / "s3")
    address = conn.hosts[0].address
    server.start(webhook=f"http://{address}:{conn.invoke_port}/_fc/s3-events/{KEY}")
    s3 = server.client()
    s3.create_bucket(Bucket="uploads")
    state = {"conn": conn, "server": server, "s3": s3}
    put_trigger(state, "watch", {"events": ["oss:ObjectCreated:*", "oss:ObjectRemoved:DeleteObject"],
                                 "filter": {"key": {"prefix": "in/", "suffix": ".txt"}}})
    try:
        yield state
    finally:
        server.stop()
        with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):  # min_instances would keep holding room
            agent.delete_function("objects")


def put_trigger(state: dict, name: str, config: dict, **source: object) -> dict:
    conn = state["conn"]
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        return agent.put_trigger("objects", name, {
            "trigger_type": "oss", "trigger_config": config, "peer_key": KEY,
            "peers": [{"name": conn.hosts[0].name, "address": conn.hosts[0].address, "port": conn.invoke_port}],
            "source": state["server"].source("uploads", reconcile_seconds=1, **source)})


def events(state: dict) -> list[dict]:
    conn = state["conn"]
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        logs = agent.logs(function="objects")
    return [json.loads(line[len("FIRED "):]) for entry in logs for line in entry["log"].splitlines()
            if line.startswith("FIRED ")]


def of_key(state: dict, key: str) -> list[dict]:
    return [e for e in events(state) if e["oss"]["object"]["key"] == key]


def test_a_matching_put_invokes_once_with_fc_event(setup: dict) -> None:
    put = time.time()
    reply = setup["s3"].put_object(Bucket="uploads", Key="in/report 1.txt", Body=b"hello world")
    found = wait_for(lambda: of_key(setup, "in/report 1.txt"), "the put to invoke", 20)
    time.sleep(2.5)  # two listings later: still once (the listing saw the key the webhook delivered)
    (event,) = of_key(setup, "in/report 1.txt")
    assert found[0] == event
    assert event["eventName"] == "ObjectCreated:PutObject" and event["eventSource"] == "acs:oss"
    assert event["oss"]["bucket"]["name"] == "uploads" and event["oss"]["bucket"]["arn"].endswith(":uploads")
    assert event["oss"]["object"]["size"] == 11
    assert event["oss"]["object"]["eTag"] == reply["ETag"].strip('"').upper()
    assert event["oss"]["ruleId"] == "objects:watch" and event["eventVersion"] == "1.0"
    assert event["started"] - put < 2.0  # pushed: well before the next listing could matter


def test_puts_outside_prefix_or_suffix_invoke_nothing(setup: dict) -> None:
    for key in ("in/photo.png", "out/report.txt", "in.txt"):
        setup["s3"].put_object(Bucket="uploads", Key=key, Body=b"x")
    setup["s3"].put_object(Bucket="uploads", Key="in/marker.txt", Body=b"x")
    wait_for(lambda: of_key(setup, "in/marker.txt"), "the marker", 20)
    time.sleep(2)
    keys = {e["oss"]["object"]["key"] for e in events(setup)}
    assert not keys & {"in/photo.png", "out/report.txt", "in.txt"}, keys


def test_a_delete_invokes_with_the_remove_event(setup: dict) -> None:
    setup["s3"].put_object(Bucket="uploads", Key="in/gone.txt", Body=b"bye")
    wait_for(lambda: of_key(setup, "in/gone.txt"), "the put", 20)
    setup["s3"].delete_object(Bucket="uploads", Key="in/gone.txt")
    wait_for(lambda: len(of_key(setup, "in/gone.txt")) == 2, "the delete", 20)
    time.sleep(2)
    names = [e["eventName"] for e in of_key(setup, "in/gone.txt")]
    assert sorted(names) == ["ObjectCreated:PutObject", "ObjectRemoved:DeleteObject"], names


def test_events_are_async_tasks_retried_and_failures_logged(setup: dict, lab: Lab) -> None:
    """FC invokes OSS triggers asynchronously: each event is a task of the async queue (a task record, FC's retry
    policy); nobody else sees its answer, so each failed attempt is named in the agent's log at warning."""
    conn = setup["conn"]
    async_config(conn, "objects", max_async_retry_attempts=1)
    setup["s3"].put_object(Bucket="uploads", Key="in/boom.txt", Body=b"x")
    name = conn.hosts[0].name

    def logged() -> list[str]:
        text = lab.run(name, ["cat", "/var/lib/fc-agent/agent.log"], capture_output=True, text=True).stdout
        lines = [line for line in text.splitlines() if "RuntimeError: boom: in/boom.txt" in line]
        return lines if len(lines) == 2 else []

    lines = wait_for(logged, "both attempts' failures in the agent's log", 30)
    assert all("WARNING" in line and "oss trigger objects:watch" in line for line in lines), lines
    request_id = lines[0].split("invocation ")[1].split()[0]
    failed = wait_task(conn, "objects", request_id, "Failed")
    assert failed["alreadyRetriedTimes"] == 1 and json.loads(failed["taskPayload"])["events"][0]["oss"]["object"][
        "key"] == "in/boom.txt"
    async_config(conn, "objects", max_async_retry_attempts=3)


def test_objects_put_while_the_agent_is_down_arrive_once_after_it_returns(setup: dict, lab: Lab,
                                                                         lab_fleet: dict) -> None:
    name = setup["conn"].hosts[0].name
    for pidfile in ("supervisor.pid", "agent.pid"):  # the supervisor first, or it starts the agent again at once
        pid = lab.run(name, ["cat", f"/var/lib/fc-agent/{pidfile}"], capture_output=True, text=True).stdout.strip()
        assert b"runtime_agent" in Path(f"/proc/{pid}/cmdline").read_bytes()
        os.kill(int(pid), 9)
    keys = [f"in/offline-{i}.txt" for i in range(3)]
    for key in keys:  # the webhook's posts fail: versitygw does not retry them
        setup["s3"].put_object(Bucket="uploads", Key=key, Body=key.encode())
    setup["s3"].delete_object(Bucket="uploads", Key="in/marker.txt")
    install(lab_fleet, HOST)  # back, its state and token kept (its request log, in memory, starts empty)
    wait_for(lambda: all(of_key(setup, k) for k in keys) and of_key(setup, "in/marker.txt"),
             "the listing to deliver what the webhook missed", 30)
    time.sleep(2.5)
    counts = Counter((e["oss"]["object"]["key"], e["eventName"]) for e in events(setup)
                     if "boom" not in e["oss"]["object"]["key"])  # a failing object's retries are meant
    assert all(counts[(k, "ObjectCreated:PutObject")] == 1 for k in keys), counts
    assert counts[("in/marker.txt", "ObjectRemoved:DeleteObject")] == 1, counts
    assert all(n == 1 for n in counts.values()), counts


def test_bad_oss_specs_are_refused_naming_the_field(setup: dict, lab: Lab) -> None:
    cases = [({"events": ["oss:ObjectCreated:Nope"]}, {}, "trigger_config.events"),
             ({"events": ["oss:ObjectCreated:*"], "filter": {"key": {"suffix": "*.txt"}}}, {},
              "filter.key.suffix takes no wildcards"),
             ({"events": ["oss:ObjectCreated:*"]}, {"endpoint": f"http://{lab.subnet}.1:1"}, "does not answer")]
    for config, source, words in cases:
        started = time.monotonic()
        with pytest.raises(AgentAPIError) as err:
            put_trigger(setup, "bad", config, **source)
        assert words in str(err.value), err.value
        assert time.monotonic() - started < 30  # a named error, not a hang


def test_the_webhook_refuses_an_unknown_token(setup: dict) -> None:
    conn = setup["conn"]
    url = f"http://{conn.hosts[0].address}:{conn.invoke_port}/_fc/s3-events/not-the-key"
    status, _, body = post(url, json.dumps({"Records": [{"eventName": "s3:ObjectCreated:Put"}]}).encode())
    assert status == 401 and json.loads(body)["Code"] == "Unauthorized"


def test_the_object_pipeline_example_writes_derived_objects(lab: Lab, fleet_file: Path, tmp_path: Path) -> None:
    """examples/object_pipeline with the real CLI: the server starts without a webhook (the listing delivers),
    then again with the trigger's webhook URL (push delivers)."""
    from _pulumi import REPO, Stack

    server = S3Server(f"{lab.subnet}.1", tmp_path / "s3")
    server.start()
    s3 = server.client()
    s3.create_bucket(Bucket="pipeline")
    stack = Stack(tmp_path / "stack", "pipeline", program=REPO / "examples" / "object_pipeline")
    stack.config(secrets={"s3SecretKey": server.source("pipeline")["secret_access_key"]}, fleetFile=str(fleet_file),
                 s3Endpoint=server.endpoint, bucket="pipeline", s3AccessKey=server.source("pipeline")["access_key_id"],
                 reconcileSeconds="1")
    try:
        stack.up()
        s3.put_object(Bucket="pipeline", Key="incoming/listed.txt", Body=b"found by the listing")
        s3.put_object(Bucket="pipeline", Key="elsewhere/skip.txt", Body=b"not under incoming/")

        def derived(key: str) -> bytes | None:
            try:
                return s3.get_object(Bucket="pipeline", Key=key)["Body"].read()
            except s3.exceptions.NoSuchKey:
                return None

        assert wait_for(lambda: derived("derived/listed.txt.upper"), "the listed object's derivative", 60) == \
            b"FOUND BY THE LISTING"
        webhook = json.loads(stack.run("stack", "output", "--json", "--show-secrets").stdout)["webhook_url"]
        assert "/_fc/s3-events/" in webhook
        server.stop()
        server.start(webhook=webhook)
        s3 = server.client()
        s3.put_object(Bucket="pipeline", Key="incoming/pushed.txt", Body=b"pushed")
        assert wait_for(lambda: derived("derived/pushed.txt.upper"), "the pushed object's derivative", 60) == \
            b"PUSHED"
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="pipeline")["Contents"])
        assert keys == ["derived/listed.txt.upper", "derived/pushed.txt.upper", "elsewhere/skip.txt",
                        "incoming/listed.txt", "incoming/pushed.txt"], keys
        assert server.source("pipeline")["secret_access_key"] not in stack.export_state()
    finally:
        stack.destroy()
        server.stop()
