"""The control API's provision configs: ``GET|PUT|DELETE /v1/functions/{name}/provision-config?qualifier=``
(FC's Get/Put/DeleteProvisionConfig for this host; the qualifier is LATEST, the default, or an alias)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import BadRequest, NotFound
from ..service import Agent
from ..state.provisionstore import LATEST


def qualifier_of(url: str) -> str:
    return (parse_qs(urlsplit(url).query).get("qualifier") or [LATEST])[0] or LATEST


def put_provision(agent: Agent, name: str, qualifier: str, body: Any) -> dict[str, Any]:
    """PUT {config, rank, hosts, peers, peer_key}: ``peers`` ([{name, address, port}], the hosts) and ``peer_key``
    let one host decide for the fleet."""
    agent.get_function(name)  # 404 for an unknown function
    agent.qualifiers.check_provisioned(name, qualifier)
    if not isinstance(body, dict) or not isinstance(body.get("config"), dict):
        raise BadRequest("body must be {\"config\": {...}, \"rank\": n, \"hosts\": [...]}")
    hosts = body.get("hosts") or [agent.config.host_name]
    rank = body.get("rank", 0)
    if not isinstance(rank, int) or not 0 <= rank < len(hosts):
        raise BadRequest(f"rank must be an integer from 0 to {len(hosts) - 1}")
    fleet = _provision_fleet(body, [str(h) for h in hosts])
    try:
        agent.provision.put(name, body["config"], rank, [str(h) for h in hosts], fleet, qualifier)
    except ValueError as exc:  # fc_common.provision's rule errors name the property
        raise BadRequest(str(exc)) from None
    return provision_status(agent, name, qualifier)


def delete_provision(agent: Agent, name: str, qualifier: str) -> None:
    if not agent.provision.delete(name, qualifier):
        raise NotFound(f"function {name} has no provision config for {qualifier} here",
                       code="ProvisionConfigNotFound")


def _provision_fleet(body: dict[str, Any], hosts: list[str]) -> dict[str, Any]:
    peers, key = body.get("peers") or [], body.get("peer_key") or ""
    if not peers:
        return {}
    if not isinstance(peers, list) or not all(
            isinstance(p, dict) and p.get("name") in hosts and isinstance(p.get("address"), str)
            and isinstance(p.get("port", 9000), int) for p in peers):
        raise BadRequest("peers must be a list of {name (one of hosts), address, port}")
    if not isinstance(key, str) or len(key) < 32:
        raise BadRequest("peer_key must be a string of at least 32 characters when peers are given")
    return {"peers": [{"name": p["name"], "address": p["address"], "port": int(p.get("port", 9000))}
                      for p in peers], "peer_key": key}


def provision_status(agent: Agent, name: str, qualifier: str = LATEST) -> dict[str, Any]:
    """FC's GetProvisionConfig answer for this host: target, current (provisioned instances started here: live ones
    of the version the qualifier resolves to, up to this host's share), current_error, and that ``version_id``."""
    scaler = agent.provision.get(name, qualifier)
    if scaler is None:
        raise NotFound(f"function {name} has no provision config for {qualifier} here",
                       code="ProvisionConfigNotFound")
    version = scaler.version
    live = 0
    if version is not None:
        live = sum(1 for i in agent.instances(name) if i["state"] in ("ready", "busy", "frozen")
                   and (i["qualifier"] or LATEST) == version)
        # Configs on one version share its pool: the live instances count for them in qualifier order, each up to
        # its share; elastic instances beside the provisioned ones are not counted (FC's current).
        for other in agent.provision.of_version(name, version):
            if other is scaler:
                break
            live -= min(live, other.host_target)
    return {"function_name": name, "qualifier": qualifier, "version_id": version, **scaler.record.config,
            "fleet_target": scaler.fleet_target, "host_target": scaler.host_target,
            "current": min(live, scaler.host_target) if version else 0, "current_error": scaler.error,
            "rank": scaler.record.rank, "hosts": scaler.record.hosts, "decider": scaler.decider,
            "decision_seq": scaler.seq}
