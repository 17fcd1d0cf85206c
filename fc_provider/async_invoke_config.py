"""The ``AsyncInvokeConfig`` resource: how a function's asynchronous invocations are retried, how old an event may
grow, whether task mode is on, and where outcomes go (Terraform's ``alicloud_fcv3_async_invoke_config``)."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

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

from fc_common.asyncrules import function_arn

from ._errors import FcProviderError, brief_errors
from ._inputs import DestinationConfigArgs, nested
from ._model import async_config as ac
from ._model.validation import check, has_unknown
from ._remote import fleetops as ops
from ._remote.ssh import HostSpec
from .function import Function

REPLACE_ON = ("function_name", "qualifier")


class AsyncInvokeConfigArgs:
    def __init__(
        self,
        *,
        qualifier: pulumi.Input[str] = "LATEST",
        max_async_retry_attempts: Optional[pulumi.Input[int]] = None,
        max_async_event_age_in_seconds: Optional[pulumi.Input[int]] = None,
        async_task: Optional[pulumi.Input[bool]] = None,
        destination_config: Optional[Union[DestinationConfigArgs, Mapping[str, Any]]] = None,
    ) -> None:
        """
        :param qualifier: The version or alias the config applies to, or ``LATEST``. Changing it replaces the
               config. Default "LATEST".
        :param max_async_retry_attempts: How many times a function error is retried, 0-8. Default 3. Throttling
               and system errors are retried with backoff until the event's maximum age, whatever this says.
        :param max_async_event_age_in_seconds: How long an event may wait, retries included, 1-604800 (7 days);
               older events are dropped (in task mode: status Expired). Default 86400.
        :param async_task: Task mode: events get task ids (``x-fc-async-task-id``, deduplicated), their states
               and events are kept for 7 days, and tasks can be listed, queried and stopped. Default False.
        :param destination_config: Where the destination event of each finished invocation goes (on_success,
               on_failure): a function of this fleet by ARN, or an http(s) webhook. Default none.
        """
        self.qualifier = qualifier
        self.max_async_retry_attempts = max_async_retry_attempts
        self.max_async_event_age_in_seconds = max_async_event_age_in_seconds
        self.async_task = async_task
        self.destination_config = nested("destination_config", destination_config, DestinationConfigArgs)


def _hosts(props: Mapping[str, Any]) -> tuple[ops.FleetConnection, list[HostSpec]]:
    conn = ops.FleetConnection.from_dict(props["connection"])
    return conn, [conn.host(n) for n in props.get("hosts") or []]


class AsyncInvokeConfigProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, [CheckFailure(p, r) for p, r in check(ac.AsyncInvokeConfigModel, news)])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ac.CONFIG_KEYS if has_unknown(news.get(k)) or
                   ac.agent_config(olds).get(k) != ac.agent_config(news).get(k)]
        changed += [k for k in (*REPLACE_ON, "hosts") if has_unknown(news.get(k)) or
                    (olds.get(k) or (None if k == "hosts" else "LATEST")) != (news.get(k) or
                                                                              (None if k == "hosts" else "LATEST"))]
        replaces = [k for k in REPLACE_ON if k in changed]
        return DiffResult(changes=bool(changed), replaces=replaces, stables=[], delete_before_replace=bool(replaces))

    def _put(self, props: dict[str, Any]) -> dict[str, Any]:
        conn, hosts = _hosts(props)
        name, qualifier = props["function_name"], props.get("qualifier") or "LATEST"
        if not hosts:
            raise FcProviderError(f"function {name} is placed on no host: there is nowhere to keep its async "
                                  f"invoke config")
        config = ac.agent_config(props)

        def put(host: HostSpec) -> dict[str, Any]:
            with ops.agent_session(conn, host) as (_ssh, agent):
                return agent.put_async_config(name, config, qualifier)

        records = ops.on_hosts(f"async invoke config of function {name}", hosts, put)
        first = records[min(records)]
        return {**props, "qualifier": qualifier, "function_arn": function_arn(name),
                "created_time": first["createdTime"], "last_modified_time": first["lastModifiedTime"]}

    def _remove(self, props: dict[str, Any], host_names: list[str]) -> None:
        conn = ops.FleetConnection.from_dict(props["connection"])
        name, qualifier = props["function_name"], props.get("qualifier") or "LATEST"
        # A host that does not answer: the function (and its agent) left it, nothing is kept there any more.
        ops.ask_agents(conn, [conn.host(n) for n in host_names if n in {h.name for h in conn.hosts}],
                       f"removal of the async invoke config of {name}",
                       lambda agent: agent.delete_async_config(name, qualifier), False)

    @brief_errors
    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._put(props)
        return CreateResult(id_=f"{props['function_name']}:{outs['qualifier']}", outs=outs)

    @brief_errors
    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        outs = self._put(news)
        gone = sorted(set(olds.get("hosts") or []) - set(news.get("hosts") or []))
        if gone:
            self._remove(olds, gone)
        return UpdateResult(outs=outs)

    @brief_errors
    def delete(self, _id: str, props: dict[str, Any]) -> None:
        self._remove(props, list(props.get("hosts") or []))

    @brief_errors
    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        conn, hosts = _hosts(props)
        name, qualifier = props["function_name"], props.get("qualifier") or "LATEST"
        found = {h: r for h, r in ops.ask_agents(conn, hosts, f"read of async config of {name}",
                                                 lambda agent: agent.get_async_config(name, qualifier)).items() if r}
        if not found:
            return ReadResult(None, {})
        record = found[min(found)]
        seen = {"max_async_retry_attempts": record["maxAsyncRetryAttempts"],
                "max_async_event_age_in_seconds": record["maxAsyncEventAgeInSeconds"],
                "async_task": record["asyncTask"],
                "destination_config": {{"onSuccess": "on_success", "onFailure": "on_failure"}[k]: v
                                       for k, v in (record.get("destinationConfig") or {}).items()} or None}
        outs = {**props, **seen, "hosts": sorted(found)}
        return ReadResult(id_, outs, outs)


class AsyncInvokeConfig(pulumi.dynamic.Resource):
    """A function's asynchronous-invocation settings on every host that runs it (per qualifier). Without one,
    FC's defaults apply: 3 retries of function errors, events kept for a day, no task mode, no destinations.

    Outputs: ``function_arn``, ``created_time``, ``last_modified_time`` and the inputs with defaults applied.
    """

    function_name: pulumi.Output[str]
    function_arn: pulumi.Output[str]
    qualifier: pulumi.Output[str]
    hosts: pulumi.Output[list]
    created_time: pulumi.Output[str]
    last_modified_time: pulumi.Output[str]

    def __init__(self, resource_name: str, args: AsyncInvokeConfigArgs, *, function: Function,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        """
        :param resource_name: The Pulumi resource name.
        :param args: The settings.
        :param function: The function they apply to; the config follows it to the hosts it is placed on.
        :param opts: Pulumi resource options.
        """
        props: dict[str, Any] = {
            "connection": function.fleet.connection,
            "function_name": function.function_name,
            "hosts": function.hosts,
            "qualifier": args.qualifier,
            "max_async_retry_attempts": args.max_async_retry_attempts,
            "max_async_event_age_in_seconds": args.max_async_event_age_in_seconds,
            "async_task": args.async_task,
            "destination_config": args.destination_config,
            "function_arn": None, "created_time": None, "last_modified_time": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["connection"], depends_on=[function]))
        super().__init__(AsyncInvokeConfigProvider(), resource_name, props, opts)
