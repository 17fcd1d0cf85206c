"""The ``ProvisionConfig`` resource: FC's provisioned instances of one function (Terraform
``alicloud_fcv3_provision_config``'s names), kept started on the function's hosts, with scheduled actions and
target tracking (the rules and the scaler's choices: fc_common/provision.py and runtime_agent/events/provision.py).

The config goes to every host of the function with the hosts' names in order, that host's rank, the hosts'
addresses and a peer key (generated once, a secret output): the lowest-ranked host that answers decides the
fleet-wide target from every host's samples, the others follow it (runtime_agent/events/provision_fleet.py); each
host keeps its rank's share of the target (5 on 3 hosts: 2, 2, 1).

The qualifier follows FC: LATEST or an alias (PutProvisionConfig takes "the function alias or LATEST"; FC binds
scaling to aliases, never to a version directly). An alias's instances run in the pool of the version it points at
and follow it when it moves. Configs of one function coexist, one per qualifier."""

from __future__ import annotations

import dataclasses
import re
import secrets
from typing import Any, Optional, Sequence

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

from fc_common import provision as rules

from ._errors import FcProviderError, brief_errors
from ._inputs import InputArgs, to_input
from ._model import function_state as fs
from ._model.validation import has_unknown
from ._remote import fleetops as ops
from ._remote.ssh import HostSpec
from .fleet import Fleet
from .function import Function

ALIAS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")  # FC's alias rule (runtime_agent/state/versions.py)
CONFIG_KEYS = ("target", "always_allocate_cpu", "always_allocate_gpu", "scheduled_actions",
               "target_tracking_policies")


@dataclasses.dataclass(kw_only=True)
class ScheduledActionArgs(InputArgs):
    """FC's ``ScheduledAction``: from each firing of ``schedule_expression`` inside [start_time, end_time] the
    target is ``target`` until another action fires or the window ends.

    :param name: Unique within the config. Required.
    :param schedule_expression: FC's cron with six fields, seconds first: "cron(0 0 20 * * *)". Required.
    :param target: Provisioned instances while in effect, 0-10000. Required.
    :param start_time: ISO 8601 ("2026-12-01T00:00:00Z") or epoch milliseconds. Default: always.
    :param end_time: As start_time. Default: never ends.
    :param time_zone: IANA zone of the schedule and of times without offset, e.g. "Asia/Shanghai". Default UTC.
    """

    name: pulumi.Input[str]
    schedule_expression: pulumi.Input[str]
    target: pulumi.Input[int]
    start_time: Optional[pulumi.Input[str]] = None
    end_time: Optional[pulumi.Input[str]] = None
    time_zone: Optional[pulumi.Input[str]] = None


@dataclasses.dataclass(kw_only=True)
class TargetTrackingPolicyArgs(InputArgs):
    """FC's ``TargetTrackingPolicy``: inside its window the target follows the metric, ceil(current x metric /
    metric_target), clamped; averaged over 60 s, scale-out cooldown 60 s, scale-in (below 0.9 x target) 300 s.

    :param name: Unique within the config. Required.
    :param metric_type: "ProvisionedConcurrencyUtilization", "CPUUtilization" or "GPUMemUtilization" (real cards
           only: simulated ones report no GPU memory). Required.
    :param metric_target: The utilization to hold, in (0, 1], e.g. 0.6. Required.
    :param max_capacity: The most instances, 1-10000. Required.
    :param min_capacity: The fewest instances, 0-10000. Default 0.
    :param start_time: As in ScheduledActionArgs. Default: always.
    :param end_time: As in ScheduledActionArgs. Default: never ends.
    :param time_zone: As in ScheduledActionArgs. Default UTC.
    """

    name: pulumi.Input[str]
    metric_type: pulumi.Input[str]
    metric_target: pulumi.Input[float]
    max_capacity: pulumi.Input[int]
    min_capacity: pulumi.Input[int] = 0
    start_time: Optional[pulumi.Input[str]] = None
    end_time: Optional[pulumi.Input[str]] = None
    time_zone: Optional[pulumi.Input[str]] = None


class ProvisionConfigArgs:
    def __init__(self, *, target: int = 0, qualifier: pulumi.Input[str] = "LATEST", always_allocate_cpu: bool = True,
                 always_allocate_gpu: bool = True,
                 scheduled_actions: Optional[Sequence[ScheduledActionArgs | dict]] = None,
                 target_tracking_policies: Optional[Sequence[TargetTrackingPolicyArgs | dict]] = None) -> None:
        """
        :param target: Provisioned instances when no action or policy is in effect, 0-10000. Default 0.
        :param qualifier: "LATEST" or an alias name (FC's rule: a version id is refused; point an alias at it).
               The alias's version keeps the instances, and they move with the alias. Default "LATEST".
        :param always_allocate_cpu: Stored with FC's meaning; provisioned instances here always hold their CPU.
               Default True.
        :param always_allocate_gpu: Stored with FC's meaning; provisioned GPU instances always hold their cards
               (a hibernated one too). Default True.
        :param scheduled_actions: ``fc.ScheduledActionArgs`` or dicts, up to 100. Default none.
        :param target_tracking_policies: ``fc.TargetTrackingPolicyArgs`` or dicts, up to 100, windows not
               overlapping. Default none.
        """
        self.target, self.qualifier = target, qualifier
        self.always_allocate_cpu, self.always_allocate_gpu = always_allocate_cpu, always_allocate_gpu
        self.scheduled_actions = to_input(list(scheduled_actions or []))
        self.target_tracking_policies = to_input(list(target_tracking_policies or []))


def _config(props: dict[str, Any]) -> dict[str, Any]:
    return {k: props[k] for k in CONFIG_KEYS if props.get(k) is not None}


def _failure(message: str) -> CheckFailure:
    prop = re.split(r"[\s.\[:]", message, maxsplit=1)[0]
    return CheckFailure(prop if prop in CONFIG_KEYS else "target", message)


class ProvisionConfigProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        qualifier = news.get("qualifier")
        if isinstance(qualifier, str) and qualifier != "LATEST" and not has_unknown(qualifier):  # an alias's output
            if qualifier.isdigit():
                failures.append(CheckFailure("qualifier", f"qualifier: {qualifier} is a version id; FC provisions "
                                             f"LATEST or an alias, not a version directly: point an fc.Alias at "
                                             f"version {qualifier} and provision the alias"))
            elif not ALIAS_NAME.match(qualifier):
                failures.append(CheckFailure("qualifier", f"qualifier: {qualifier!r} is neither LATEST nor an alias "
                                             "name (letters, digits, '_' and '-', not starting with a digit or '-', "
                                             "1-128 characters)"))
        config = _config(news)
        if not has_unknown(config):
            try:
                rules.parse(config)
            except rules.ProvisionConfigError as exc:
                failures.append(_failure(str(exc)))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = [k for k in (*CONFIG_KEYS, "hosts") if olds.get(k) != news.get(k)]
        replaces = [k for k in ("function_name", "qualifier") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(keys or replaces), replaces=replaces, stables=[],
                          delete_before_replace=bool(replaces))

    def _apply(self, props: dict[str, Any]) -> dict[str, Any]:
        conn = ops.FleetConnection.from_dict(props["connection"])
        name, hosts = props["function_name"], sorted(props.get("hosts") or [])
        qualifier = props.get("qualifier") or "LATEST"
        if not hosts:
            raise FcProviderError(f"function {name} runs on no host: nothing to provision")
        config = _config(props)
        peer_key = props.get("peer_key") or secrets.token_hex(32)
        peers = [{"name": h, "address": conn.host(h).address, "port": conn.invoke_port} for h in hosts]

        def put(host: HostSpec) -> dict[str, Any]:
            with ops.agent_session(conn, host) as (_ssh, agent):
                return agent.put_provision_config(name, config, hosts.index(host.name), hosts, peers, peer_key,
                                                  qualifier)

        what = f"provision config of {name} ({qualifier})"
        with ops.fleet_lock(conn, [conn.host(h) for h in hosts], what):
            seen = ops.on_hosts(what, [conn.host(h) for h in hosts], put)
        return {**props, "peer_key": peer_key, **self._outputs(name, seen)}

    @staticmethod
    def _outputs(name: str, seen: dict[str, Optional[dict[str, Any]]]) -> dict[str, Any]:
        present = {h: s for h, s in seen.items() if s}
        # The hosts follow one decider, so they mostly carry the same error: each message once, with its hosts.
        by_error: dict[str, list[str]] = {}
        for h, s in sorted(present.items()):
            if s.get("current_error"):
                by_error.setdefault(s["current_error"], []).append(h)
        errors = [f"{e} (on {', '.join(hs)})" for e, hs in sorted(by_error.items())]
        # The fleet target is the latest decision any host holds (a follower may lag one tick behind).
        latest = max(present.values(), key=lambda s: (s.get("decision_seq") or 0, s["fleet_target"]), default=None)
        versions = sorted({str(s.get("version_id")) for s in present.values() if s.get("version_id")})
        return {"function_arn": fs.function_arn(name), "current": sum(s["current"] for s in present.values()),
                "version_id": versions[0] if len(versions) == 1 else None,  # None while hosts disagree
                "current_error": "; ".join(errors) or None,
                "fleet_target": latest["fleet_target"] if latest else 0,
                "host_targets": {h: s["host_target"] for h, s in sorted(present.items())}}

    @brief_errors
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"{props['function_name']}#{props.get('qualifier') or 'LATEST'}",
                            outs=self._apply(props))

    @brief_errors
    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        outs = self._apply({**news, "peer_key": olds.get("peer_key")})
        gone = sorted(set(olds.get("hosts") or []) - set(news.get("hosts") or []))
        if gone:
            self._remove(olds, gone)
        return UpdateResult(outs=outs)

    def _remove(self, props: dict[str, Any], hosts: list[str]) -> None:
        conn = ops.FleetConnection.from_dict(props["connection"])
        # A host that does not answer: the function (and its config) went with the host or the function.
        ops.ask_agents(conn, [conn.host(h) for h in hosts if h in {x.name for x in conn.hosts}],
                       f"removal of the provision config of {props['function_name']}",
                       lambda agent: agent.delete_provision_config(props["function_name"],
                                                                   props.get("qualifier") or "LATEST"))

    @brief_errors
    def delete(self, _id: str, props: dict[str, Any]) -> None:
        self._remove(props, list(props.get("hosts") or []))

    @brief_errors
    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        conn = ops.FleetConnection.from_dict(props["connection"])
        name, qualifier = props["function_name"], props.get("qualifier") or "LATEST"
        seen = ops.ask_agents(conn, [conn.host(h) for h in props.get("hosts") or []],
                              f"read of the provision config of {name}",
                              lambda agent: agent.get_provision_config(name, qualifier))
        if not any(seen.values()):
            return ReadResult(None, {})
        return ReadResult(id_, {**props, **self._outputs(name, seen)})


class ProvisionConfig(pulumi.dynamic.Resource):
    """Provisioned instances of a function (FC's PutProvisionConfig), kept started on its hosts.

    Outputs (FC's names): ``current`` (instances started now, all hosts), ``current_error`` (why a policy cannot
    act, e.g. a metric nobody reports), ``function_arn``; also ``fleet_target``, ``host_targets`` and
    ``version_id`` (the version whose instances are provisioned: LATEST, or the alias's version).
    """

    current: pulumi.Output[int]
    current_error: pulumi.Output[Optional[str]]
    function_arn: pulumi.Output[str]
    fleet_target: pulumi.Output[int]
    host_targets: pulumi.Output[dict]
    version_id: pulumi.Output[Optional[str]]

    def __init__(self, resource_name: str, args: ProvisionConfigArgs, *, function: Function, fleet: Fleet,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        """
        :param resource_name: The Pulumi resource name.
        :param args: The config.
        :param function: The function whose instances are provisioned; the config follows its hosts.
        :param fleet: The function's fleet.
        :param opts: Pulumi resource options.
        """
        props: dict[str, Any] = {
            "connection": fleet.connection, "function_name": function.function_name, "hosts": function.hosts,
            "qualifier": args.qualifier, "target": args.target, "always_allocate_cpu": args.always_allocate_cpu,
            "always_allocate_gpu": args.always_allocate_gpu, "scheduled_actions": args.scheduled_actions,
            "target_tracking_policies": args.target_tracking_policies,
            "current": None, "current_error": None, "function_arn": None, "fleet_target": None,
            "host_targets": None, "peer_key": None, "version_id": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["connection", "peer_key"], depends_on=[function]))
        super().__init__(ProvisionConfigProvider(), resource_name, props, opts)
