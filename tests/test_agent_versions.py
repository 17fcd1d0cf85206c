"""Versions and aliases on a real agent (lab host, dockerd, SQLite): each version runs its own snapshot in its own
pool, the response names the version that ran, an alias's canary weight holds over many invocations, and an agent
restart keeps all of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from _agent import deploy, install, instances, post, wait_for
from test_versions import ALPHA, chi_square_p

from fc_lab import Lab
from fc_provider import AgentAPIError
from fc_provider._remote import commands as cmd
from fc_provider._remote import fleetops as ops
from fc_provider._remote.ssh import SSHSession

SOURCE = ("import os\n\ndef handler(event, context):\n"
          "    return '{code}:' + context.function.qualifier + ':' + event.decode()\n")
ROUTING_SEED = 20261201  # the agent's draws are seeded: the measured split below is the same on every run


@pytest.fixture(scope="module")
def conn(lab: Lab, lab_fleet: dict) -> Iterator[ops.FleetConnection]:
    connection = install(lab_fleet, routing_seed=ROUTING_SEED)
    yield connection
    ops.uninstall_agent(connection, connection.hosts[0])


@pytest.fixture(scope="module")
def published(conn: ops.FleetConnection, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Function `canary` with v1 and v2 published, and LATEST holding v3's code (unpublished)."""
    folder = tmp_path_factory.mktemp("canary")
    for code in ("one", "two", "three"):
        url = deploy(conn, folder, "canary", SOURCE.format(code=code))
        if code != "three":
            with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
                agent.publish_version("canary", f"code {code}")
    return url


def _agent(conn: ops.FleetConnection):
    return ops.agent_session(conn, conn.hosts[0])


def test_each_qualifier_runs_its_own_code_and_the_response_names_the_version(conn: ops.FleetConnection,
                                                                               published: str) -> None:
    seen = {}
    for qualifier, code, version in ((None, "three", "LATEST"), ("LATEST", "three", "LATEST"), ("1", "one", "1"),
                                     ("2", "two", "2")):
        status, headers, body = post(published, b"hi", qualifier=qualifier)
        assert status == 200 and body == f"{code}:{version}:hi".encode(), body
        assert headers["x-fc-invocation-service-version"] == version
        seen.setdefault(version, set()).add(headers["x-fc-instance-id"])
    # One pool per version: no instance served two versions.
    assert len(set.union(*seen.values())) == sum(len(s) for s in seen.values()) == 3
    by_qualifier = {i["instance_id"]: i["qualifier"] for i in instances(conn, "canary")}
    assert {by_qualifier[next(iter(ids))] for ids in seen.values()} == {"LATEST", "1", "2"}


def test_unknown_qualifiers_answer_fc_not_found_errors(published: str) -> None:
    for qualifier, code in (("7", "VersionNotFound"), ("nightly", "AliasNotFound")):
        status, headers, body = post(published, qualifier=qualifier)
        error = json.loads(body)
        assert status == 404 and error["Code"] == code and qualifier in error["Message"]
        assert error["RequestId"] == headers["x-fc-request-id"]


def test_alias_canary_split_passes_a_chi_square_test(conn: ops.FleetConnection, published: str) -> None:
    with _agent(conn) as (_ssh, agent):
        agent.put_alias("canary", "prod", {"version_id": "1", "description": "stable"})
    status, headers, body = post(published, b"x", qualifier="prod")
    assert body == b"one:1:x" and headers["x-fc-invocation-service-version"] == "1"  # the resolved version
    with _agent(conn) as (_ssh, agent):
        alias = agent.put_alias("canary", "prod", {"version_id": "1", "additional_version_weight": {"2": 0.1}})
    assert alias["additional_version_weight"] == {"2": 0.1}
    n = 1000
    served = [post(published, b"x", qualifier="prod")[1]["x-fc-invocation-service-version"] for _ in range(n)]
    observed = [served.count("1"), served.count("2")]
    assert sum(observed) == n  # nothing else served
    assert chi_square_p(observed, [0.9, 0.1]) > ALPHA, observed
    with _agent(conn) as (_ssh, agent):  # promote v2
        agent.put_alias("canary", "prod", {"version_id": "2"})
    assert {post(published, qualifier="prod")[1]["x-fc-invocation-service-version"] for _ in range(20)} == {"2"}


def test_alias_rules_and_a_version_in_use_are_refused_by_name(conn: ops.FleetConnection, published: str) -> None:
    with _agent(conn) as (_ssh, agent):
        agent.put_alias("canary", "guarded", {"version_id": "1"})
        with pytest.raises(AgentAPIError) as info:
            agent.delete_version("canary", "1")
        assert info.value.status == 409 and "alias guarded" in info.value.message
        for body, words in (({"version_id": "1", "additional_version_weight": {"2": 2}}, "from 0 to 1"),
                            ({"version_id": "1", "additional_version_weight": {"2": 0.1, "3": 0.1}}, "at most one"),
                            ({"version_id": "9"}, "version 9")):
            with pytest.raises(AgentAPIError, match=words):
                agent.put_alias("canary", "guarded", body)
        agent.delete_alias("canary", "guarded")


def test_versions_pools_and_aliases_survive_an_agent_restart(conn: ops.FleetConnection, lab: Lab,
                                                             published: str) -> None:
    _, before, _ = post(published, b"r", qualifier="1")
    host = conn.hosts[0].name
    lab.run(host, ["sh", "-c", "kill -9 $(cat /var/lib/fc-agent/agent.pid)"], check=True)
    with SSHSession(conn.hosts[0], conn.private_key) as ssh:
        ssh.run(cmd.start_agent())
    with _agent(conn) as (_ssh, agent):
        agent.wait_healthy()
        assert [v["version_id"] for v in agent.list_versions("canary")] == ["1", "2"]
        assert agent.next_version_id("canary") == 3
    status, after, body = post(published, b"r", qualifier="1")
    assert body == b"one:1:r" and after["x-fc-instance-id"] == before["x-fc-instance-id"]  # re-adopted
    assert post(published, b"r", qualifier="prod")[2] == b"two:2:r"


def test_a_version_keeps_min_instances_in_its_own_pool(conn: ops.FleetConnection, tmp_path: Path) -> None:
    deploy(conn, tmp_path, "kept-versions", SOURCE.format(code="k"), min_instances=1)
    with _agent(conn) as (_ssh, agent):
        agent.publish_version("kept-versions", "")
    ready = wait_for(lambda: {i["qualifier"] for i in instances(conn, "kept-versions") if i["state"] == "ready"}
                     == {"LATEST", "1"}, "a kept instance in LATEST's pool and in version 1's")
    assert ready


def test_deleting_a_function_removes_its_versions(conn: ops.FleetConnection, tmp_path: Path) -> None:
    url = deploy(conn, tmp_path, "short-lived", SOURCE.format(code="s"))
    with _agent(conn) as (_ssh, agent):
        agent.publish_version("short-lived", "")
        post(url, qualifier="1")
        assert agent.delete_function("short-lived")
    assert wait_for(lambda: not instances(conn, "short-lived"), "the version's instances to stop")
    url = deploy(conn, tmp_path, "short-lived", SOURCE.format(code="t"))
    with _agent(conn) as (_ssh, agent):
        assert agent.list_versions("short-lived") == []
        assert agent.publish_version("short-lived", "")["version_id"] == "2"  # ids are never reused
