"""Provision configs per function and qualifier on a real agent (lab host, dockerd, SQLite): a config on an alias
keeps started instances of the version the alias points at (containers labelled with that version) while LATEST
keeps none, and they follow the alias when it moves; configs of one function on LATEST and an alias coexist;
a version id, an unknown alias or a malformed qualifier is refused naming ``qualifier`` (FC's rule: LATEST or an
alias). The fleet-wide decision per qualifier: test_provision_fleet_rules.py; the rules: test_provision_rules.py."""

from __future__ import annotations

from typing import Iterator

import pytest
from _agent import deploy, install, wait_for

from fc_lab import Lab
from fc_provider import AgentAPIError
from fc_provider._remote import fleetops as ops

SOURCE = "def handler(event, context):\n    return '{code}:' + context.function.qualifier\n"
FUNCTION = "warm-alias"


@pytest.fixture(scope="module")
def conn(lab: Lab, lab_fleet: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ops.FleetConnection]:
    """Function ``warm-alias`` with versions 1 and 2 published (idle instances go after 2 s) and alias prod -> 1."""
    connection = install(lab_fleet)
    folder = tmp_path_factory.mktemp("warm-alias")
    for code in ("one", "two", "three"):
        deploy(connection, folder, FUNCTION, SOURCE.format(code=code), idle_timeout_seconds=2)
        if code != "three":
            with ops.agent_session(connection, connection.hosts[0]) as (_ssh, agent):
                agent.publish_version(FUNCTION, code)
    with ops.agent_session(connection, connection.hosts[0]) as (_ssh, agent):
        agent.put_alias(FUNCTION, "prod", {"version_id": "1"})
    yield connection
    with ops.agent_session(connection, connection.hosts[0]) as (_ssh, agent):
        agent.delete_function(FUNCTION)  # its configs go with it: nothing holds room for later tests


def running(lab: Lab, conn: ops.FleetConnection) -> dict[str, int]:
    """The function's containers running on the host's engine, by the version the agent runs in them (a container
    born from a stem cell carries no fc.version label: the agent's state says which instance it is)."""
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        version_of = {i["container_id"]: i["qualifier"] for i in agent.instances() if i["function_name"] == FUNCTION}
    client = lab.docker_client(conn.hosts[0].name)
    try:
        counts: dict[str, int] = {}
        for c in client.containers.list(sparse=True):  # not inspected one by one: the reaper may remove one meanwhile
            if c.id in version_of:
                counts[version_of[c.id]] = counts.get(version_of[c.id], 0) + 1
        return counts
    finally:
        client.close()


def test_an_alias_config_keeps_its_versions_instances_and_follows_the_alias(lab: Lab,
                                                                            conn: ops.FleetConnection) -> None:
    host = conn.hosts[0].name
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        body = agent.put_provision_config(FUNCTION, {"target": 1}, 0, [host], qualifier="prod")
        assert (body["qualifier"], body["version_id"], body["host_target"]) == ("prod", "1", 1)
        wait_for(lambda: running(lab, conn).get("1") == 1, "version 1's provisioned container", 60)
        assert "LATEST" not in running(lab, conn)  # nothing provisions LATEST: it keeps no instance
        wait_for(lambda: agent.get_provision_config(FUNCTION, "prod")["current"] == 1, "current 1 on prod")
        assert agent.get_provision_config(FUNCTION) is None  # LATEST has no config of its own

        agent.put_alias(FUNCTION, "prod", {"version_id": "2"})  # promote: the instance moves with the alias
        wait_for(lambda: running(lab, conn) == {"2": 1}, "version 2 provisioned and version 1's instance reaped", 60)
        status = wait_for(lambda: (s := agent.get_provision_config(FUNCTION, "prod"))["current"] == 1 and s,
                          "current 1 on prod after the move")
        assert status["version_id"] == "2" and status["current_error"] is None

        agent.delete_alias(FUNCTION, "prod")  # the config stays and says why it provisions nothing
        status = wait_for(lambda: (s := agent.get_provision_config(FUNCTION, "prod"))["current_error"] and s,
                          "the config to report its alias gone")
        assert status["current"] == 0 and status["version_id"] is None
        assert status["current_error"].startswith(f"qualifier: alias prod of function {FUNCTION} does not exist")
        wait_for(lambda: running(lab, conn) == {}, "the instance no alias provisions to be reaped", 60)
        agent.delete_provision_config(FUNCTION, "prod")
        assert agent.get_provision_config(FUNCTION, "prod") is None


def test_configs_on_latest_and_an_alias_coexist(lab: Lab, conn: ops.FleetConnection) -> None:
    host = conn.hosts[0].name
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        agent.put_alias(FUNCTION, "stable", {"version_id": "1"})
        agent.put_provision_config(FUNCTION, {"target": 1}, 0, [host])
        agent.put_provision_config(FUNCTION, {"target": 2}, 0, [host], qualifier="stable")
        wait_for(lambda: running(lab, conn) == {"LATEST": 1, "1": 2}, "LATEST's one and version 1's two", 60)
        latest, stable = agent.get_provision_config(FUNCTION), agent.get_provision_config(FUNCTION, "stable")
        assert (latest["version_id"], latest["target"], stable["version_id"], stable["target"]) == ("LATEST", 1, "1", 2)
        wait_for(lambda: [agent.get_provision_config(FUNCTION, q)["current"] for q in ("LATEST", "stable")] == [1, 2],
                 "each config's current")

        agent.delete_provision_config(FUNCTION)  # LATEST's only: the alias's config and instances stay
        assert agent.get_provision_config(FUNCTION) is None
        wait_for(lambda: running(lab, conn) == {"1": 2}, "LATEST's instance reaped, version 1's two kept", 60)
        assert agent.get_provision_config(FUNCTION, "stable")["current"] == 2
        agent.delete_provision_config(FUNCTION, "stable")
        agent.delete_alias(FUNCTION, "stable")


@pytest.mark.parametrize(("qualifier", "status", "words"), [
    ("1", 400, "qualifier: 1 is a version id; FC provisions LATEST or an alias, not a version directly"),
    ("nightly", 404, f"qualifier: alias nightly of function {FUNCTION} does not exist"),
    ("-x", 400, "qualifier: '-x' is neither LATEST nor an alias name"),
])
def test_bad_qualifiers_are_refused_naming_the_field(conn: ops.FleetConnection, qualifier: str, status: int,
                                                     words: str) -> None:
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        with pytest.raises(AgentAPIError) as info:
            agent.put_provision_config(FUNCTION, {"target": 1}, 0, [conn.hosts[0].name], qualifier=qualifier)
        assert info.value.status == status and words in info.value.message, info.value.message
        assert agent.get_provision_config(FUNCTION, qualifier) is None  # nothing was stored
