"""The ``Alias`` resource: a name for one published version of a function, optionally sending a share of the
invocations to one additional version (a canary)."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from ._errors import AgentAPIError, brief_errors
from ._model.releases import AliasModel, alias_spec, version_text
from ._model.validation import check, has_unknown
from ._remote import fleetops as ops
from ._remote.ssh import HostSpec
from .function import Function

_REPLACE_ON = ("function_name", "alias_name")
_IN_PLACE = ("version_id", "additional_version_weight", "description")


class AliasArgs:
    def __init__(self, *, version_id: pulumi.Input[str] = None, alias_name: Optional[str] = None,
                 additional_version_weight: Optional[Mapping[str, pulumi.Input[float]]] = None,
                 description: str = "") -> None:
        """
        :param version_id: The published version the alias points at, e.g. ``v1.version_id`` or "1" (never
               LATEST). Updated in place on every host. Required (default none fails at preview).
        :param alias_name: 1-128 letters, digits, '_' or '-', not starting with a digit or '-', not LATEST.
               Changing it replaces the alias. Default: the resource name.
        :param additional_version_weight: At most one other published version and the share of invocations it
               serves, 0-1: {"2": 0.1} sends 10 % to version 2 and the rest to ``version_id``. Updated in place.
               Default none: every invocation runs ``version_id``.
        :param description: Up to 256 characters. Default "".
        """
        self.version_id, self.alias_name, self.description = version_id, alias_name, description
        self.additional_version_weight = _weights_input(additional_version_weight)


def _weights_input(weights: Any) -> Any:
    """The weight map as one input. Its keys may be outputs (``{v2.version_id: 0.1}``), which a plain dict cannot
    carry to the engine, so such a map becomes one output of a dict."""
    if weights is None or isinstance(weights, pulumi.Output):
        return weights if weights is not None else {}
    items = list(dict(weights).items())
    if not any(isinstance(k, pulumi.Output) or isinstance(w, pulumi.Output) for k, w in items):
        return dict(items)
    keys = pulumi.Output.all(*[pulumi.Output.from_input(k) for k, _ in items])
    values = pulumi.Output.all(*[pulumi.Output.from_input(w) for _, w in items])
    return pulumi.Output.all(keys, values).apply(lambda kv: dict(zip(kv[0], kv[1])))


def _normalized(props: Mapping[str, Any], key: str) -> Any:
    value = props.get(key)
    if key == "version_id":
        return version_text(value)
    if key == "additional_version_weight":
        return {str(k): float(w) for k, w in (value or {}).items()} if not has_unknown(value) else value
    return value or ""


class AliasProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = check(AliasModel, {**news, "version_id": version_text(news.get("version_id"))})
        return CheckResult(news, [CheckFailure(p, r) for p, r in failures])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in _REPLACE_ON + _IN_PLACE if _normalized(olds, k) != _normalized(news, k)
                   or has_unknown(news.get(k))]
        if sorted(olds.get("hosts") or []) != sorted(news.get("hosts") or []) and not has_unknown(news.get("hosts")):
            changed.append("hosts")  # the function moved: the alias follows it
        replaces = [k for k in _REPLACE_ON if k in changed]
        return DiffResult(changes=bool(changed), replaces=replaces, stables=[], delete_before_replace=True)

    def _put(self, props: dict[str, Any]) -> dict[str, Any]:
        """The alias on every host of the function, in one operation: an `up` that moves a canary's weight moves
        it everywhere (a host that fails is named, and the next `up` puts it in line)."""
        conn = ops.FleetConnection.from_dict(props["connection"])
        hosts = [conn.host(n) for n in props.get("hosts") or []]
        name, alias = props["function_name"], props["alias_name"]
        spec = alias_spec(props)

        def put(host: HostSpec) -> dict[str, Any]:
            with ops.agent_session(conn, host) as (_ssh, agent):
                return agent.put_alias(name, alias, spec)

        with ops.fleet_lock(conn, hosts, f"alias {alias} of function {name}"):
            records = ops.on_hosts(f"alias {alias} of function {name}", hosts, put)
        first = records[sorted(records)[0]] if records else {}
        return {**props, **spec, "created_time": first.get("created_time"),
                "last_modified_time": first.get("last_modified_time")}

    @brief_errors
    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._put(props)
        return CreateResult(id_=f"{props['function_name']}:{props['alias_name']}", outs=outs)

    @brief_errors
    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._put(news))

    @brief_errors
    def delete(self, _id: str, props: dict[str, Any]) -> None:
        conn = ops.FleetConnection.from_dict(props["connection"])
        hosts = [conn.host(n) for n in props.get("hosts") or []]
        name, alias = props["function_name"], props["alias_name"]

        def remove(host: HostSpec) -> bool:
            try:
                with ops.agent_session(conn, host) as (_ssh, agent):
                    return agent.delete_alias(name, alias)
            except AgentAPIError as exc:
                if exc.code == "FunctionNotFound":
                    return False
                raise

        with ops.fleet_lock(conn, hosts, f"deletion of alias {alias} of function {name}"):
            ops.on_hosts(f"deletion of alias {alias} of function {name}", hosts, remove)

    @brief_errors
    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh: the alias as the hosts hold it; a host that disagrees makes the outputs differ, and the next
        `up` puts it back."""
        conn = ops.FleetConnection.from_dict(props["connection"])
        hosts = [conn.host(n) for n in props.get("hosts") or []]
        name, alias = props["function_name"], props["alias_name"]
        records = ops.ask_agents(conn, hosts, f"read of alias {alias} of function {name}",
                                 lambda agent: agent.get_alias(name, alias))
        present = {h: r for h, r in records.items() if r is not None}
        if not present:
            return ReadResult(None, {})
        outs = dict(props)
        for key in _IN_PLACE:
            drifted = [r.get(key) for _, r in sorted(present.items()) if _normalized(r, key) != _normalized(props, key)]
            if drifted:
                outs[key] = drifted[0]
        outs["hosts"] = sorted(present)
        return ReadResult(id_, outs)


class Alias(pulumi.dynamic.Resource):
    """FC's alias: invocations with ``?qualifier=<alias_name>`` run ``version_id``, or with the probability
    given in ``additional_version_weight`` the additional version. The response header
    ``x-fc-invocation-service-version`` names the version that ran. Changing the version or the weight updates the
    alias in place on every host in the same `up`.

    Outputs: ``alias_name``, ``version_id``, ``additional_version_weight``, ``created_time``,
    ``last_modified_time``.
    """

    alias_name: pulumi.Output[str]
    version_id: pulumi.Output[str]
    additional_version_weight: pulumi.Output[dict]
    created_time: pulumi.Output[str]
    last_modified_time: pulumi.Output[str]

    def __init__(self, resource_name: str, args: AliasArgs, *, function: Function,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        """
        :param resource_name: The Pulumi resource name; also the alias_name when args leave it unset.
        :param args: The alias's version and weights.
        :param function: The function the alias belongs to.
        :param opts: Pulumi resource options.
        """
        props = {
            "connection": function.connection,  # type: ignore[attr-defined] - every input is an output too
            "function_name": function.function_name,
            "hosts": function.hosts,
            "alias_name": args.alias_name or resource_name,
            "version_id": args.version_id,
            "additional_version_weight": args.additional_version_weight,
            "description": args.description,
            "created_time": None, "last_modified_time": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["connection"], depends_on=[function]))
        super().__init__(AliasProvider(), resource_name, props, opts)
