"""The ``Trigger`` resource (Terraform ``alicloud_fcv3_trigger``, ``pulumi_alicloud.fc.V3Trigger``): an HTTP or
timer trigger of a function, stored by the agent of every host the function is placed on."""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any, Mapping, Optional, Sequence, Union

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

from ._errors import AgentAPIError, FcProviderError, HostUnreachable, brief_errors
from ._inputs import InputArgs, nested
from ._model import trigger_state as ts
from ._model.validation import check
from ._remote import fleetops as ops
from ._remote.ssh import HostSpec
from .fleet import Fleet
from .function import Function


@dataclasses.dataclass(kw_only=True)
class JwtAuthConfigArgs(InputArgs):
    """FC's JWT ``authConfig`` of an HTTP trigger.

    :param jwks: The JSON Web Key set whose keys verify tokens: {"keys": [{"kty": "RSA", "alg": "RS256", "kid":
           ..., "n": ..., "e": ...}]} (RSA RS256/384/512, or "oct" keys for HS256/384/512), or its JSON text.
           Required.
    :param token_lookup: Where the token is looked for, FC's "position:name[:prefix]" entries comma-joined, position
           one of header, cookie, query, form (the prefix applies to headers). Default "header:Authorization:Bearer".
    :param claim_pass_by: Claims copied into the request, "position:claim:name" entries comma-joined, position
           one of header, query, cookie. Default "" (none).
    :param whitelist: Paths that need no token (exact, or a prefix ending in "*"). Default none.
    :param blacklist: The only paths that need a token; exclusive with whitelist. Default none (every path).
    :param audience: When set, a token's "aud" must contain it (our addition; FC's config has none). Default None.
    """

    jwks: Any
    token_lookup: Optional[str] = None
    claim_pass_by: Optional[str] = None
    whitelist: Optional[Sequence[str]] = None
    blacklist: Optional[Sequence[str]] = None
    audience: Optional[str] = None


@dataclasses.dataclass(kw_only=True)
class CorsConfigArgs(InputArgs):
    """FC's ``corsConfig`` of an HTTP trigger: the agent answers browsers' preflight requests itself and adds the
    CORS headers to every answer to an allowed origin (replacing the function's own). Without it, CORS is the
    function's business (a preflight reaches it when methods lists OPTIONS).

    :param allow_origins: Origins allowed ("https://app.example.com", scheme, host and optional port), or ["*"]
           for any. Required.
    :param allow_methods: Methods a preflight allows, from FC's list or "*". Default: the trigger's methods.
    :param allow_headers: Request headers a preflight allows, or ["*"] for whatever the browser asks. Default
           none (only the headers browsers always allow).
    :param expose_headers: Response headers scripts may read. Default none.
    :param allow_credentials: Let browsers send cookies and read the answer; not with allow_origins ["*"].
           Default False.
    :param max_age: Seconds a browser may cache a preflight answer, 0-86400. Default None (the browser's own).
    """

    allow_origins: Sequence[str]
    allow_methods: Optional[Sequence[str]] = None
    allow_headers: Optional[Sequence[str]] = None
    expose_headers: Optional[Sequence[str]] = None
    allow_credentials: bool = False
    max_age: Optional[int] = None


@dataclasses.dataclass(kw_only=True)
class HttpTriggerConfigArgs(InputArgs):
    """FC's ``HTTPTriggerConfig``.

    :param auth_type: "anonymous" (public), "function" (FC's signed requests, as the invoke API checks them) or
           "jwt" (tokens verified against auth_config.jwks). Default "function", as FC.
    :param methods: The HTTP methods that reach the function, from GET, POST, PUT, DELETE, HEAD, OPTIONS, PATCH;
           others are refused with 405. Default ["GET", "POST"].
    :param disable_url_internet: Close the host-name URL (url_internet answers 403); the path URL stays. Default
           False.
    :param auth_config: For auth_type "jwt" (required there). Default none.
    :param cors_config: FC's CORS configuration, answered by the agent. Default none (the function's business).
    """

    auth_type: str = "function"
    methods: Sequence[str] = dataclasses.field(default_factory=lambda: ["GET", "POST"])
    disable_url_internet: bool = False
    auth_config: Optional[JwtAuthConfigArgs] = None
    cors_config: Optional[CorsConfigArgs] = None


@dataclasses.dataclass(kw_only=True)
class TimerTriggerConfigArgs(InputArgs):
    """FC's ``TimerTriggerConfig``. The function gets {"triggerTime", "triggerName", "payload"} once per tick
    across the fleet (see docs/triggers.md for the exact guarantee).

    :param cron_expression: Six fields, seconds first, in UTC ("0 */5 * * * *"), with an optional
           "CRON_TZ=Area/City " prefix; or "@every 5m" (h, m, s); or @hourly, @daily, @weekly, @monthly, @yearly.
           Required.
    :param enable: False keeps the trigger and stops its ticks. Default True.
    :param payload: The string delivered as "payload", at most 128 KB. Default "".
    """

    cron_expression: str
    enable: bool = True
    payload: str = ""


@dataclasses.dataclass(kw_only=True)
class OssKeyFilterArgs(InputArgs):
    """FC's ``filter.key`` of an OSS trigger: one prefix and one suffix, no wildcards.

    :param prefix: Object keys must start with it. Default "" (any).
    :param suffix: Object keys must end with it. Default "" (any).
    """

    prefix: str = ""
    suffix: str = ""


@dataclasses.dataclass(kw_only=True)
class OssTriggerConfigArgs(InputArgs):
    """FC's ``OSSTriggerConfig``: which object events of the source bucket invoke the function, with FC's OSS
    event {"events": [{"eventName": "ObjectCreated:PutObject", "eventSource": "acs:oss", "oss": {...}}]}.

    :param events: FC's event names: "oss:ObjectCreated:*", "oss:ObjectCreated:PutObject", ...,
           "oss:ObjectRemoved:DeleteObject", ... Required.
    :param filter: {"key": {"prefix", "suffix"}}. Default: every key.
    """

    events: Sequence[str]
    filter: Optional[Mapping[str, Any]] = None

    @staticmethod
    def key_filter(prefix: str = "", suffix: str = "") -> dict[str, Any]:
        return {"key": OssKeyFilterArgs(prefix=prefix, suffix=suffix).to_input()}


@dataclasses.dataclass(kw_only=True)
class OssSourceArgs(InputArgs):
    """The S3-compatible server and bucket an OSS trigger watches (FC's sourceArn names an OSS bucket). Changing it
    replaces the trigger; the whole source is stored as a secret.

    :param endpoint: The server's URL as the hosts reach it, e.g. "http://10.0.0.5:7070". Required.
    :param bucket: The bucket. Required.
    :param access_key_id: The S3 access key. Required.
    :param secret_access_key: Its secret. Required.
    :param region: The region the server expects in signatures. Default "us-east-1".
    :param reconcile_seconds: How often the bucket is listed to catch events the webhook missed, 0.5-3600.
           Default 10.
    """

    endpoint: pulumi.Input[str]
    bucket: pulumi.Input[str]
    access_key_id: pulumi.Input[str]
    secret_access_key: pulumi.Input[str]
    region: str = "us-east-1"
    reconcile_seconds: float = 10


TriggerConfig = Union[HttpTriggerConfigArgs, TimerTriggerConfigArgs, OssTriggerConfigArgs, Mapping[str, Any], str]
_CONFIG_CLASSES = {"http": HttpTriggerConfigArgs, "timer": TimerTriggerConfigArgs, "oss": OssTriggerConfigArgs}


class TriggerArgs:
    def __init__(self, *, function: Union[Function, str, pulumi.Input[str]], trigger_type: str,
                 trigger_config: Optional[TriggerConfig] = None, trigger_name: Optional[str] = None,
                 qualifier: str = "LATEST", description: str = "",
                 source: Optional[Union[OssSourceArgs, Mapping[str, Any]]] = None) -> None:
        """
        :param function: The Function resource (its hosts carry the trigger), or a function's name (then
               ``Trigger(fleet=...)`` is needed, and the hosts that run the function carry it). Changing it
               replaces the trigger. Required.
        :param trigger_type: "http", "timer" or "oss". Changing it replaces the trigger. Required.
        :param trigger_config: The type's configuration: HttpTriggerConfigArgs / TimerTriggerConfigArgs, or a dict
               with FC's keys (authType, methods, cronExpression, ...) or snake_case ones, or its JSON text (as
               Terraform writes it). Validated at preview; updated in place. Default: the type's defaults (a timer
               needs cron_expression).
        :param trigger_name: 1-128 letters, digits, '_' or '-', starting with a letter or '_'. Changing it replaces
               the trigger. Default: the resource name.
        :param qualifier: The function version or alias the trigger invokes, stored and passed with each invocation.
               Changing it replaces the trigger. Default "LATEST".
        :param description: Free text, up to 256 characters; updated in place. Default "".
        :param source: For "oss" (required there): the S3-compatible server and bucket, an OssSourceArgs or a
               dict. Changing it replaces the trigger. Default none.
        """
        self.function = function
        self.trigger_type = trigger_type
        expected = _CONFIG_CLASSES.get(trigger_type, HttpTriggerConfigArgs)
        self.trigger_config = trigger_config if isinstance(trigger_config, str) else nested(
            "trigger_config", trigger_config, expected, empty_is_unset=False)
        self.trigger_name = trigger_name
        self.qualifier = qualifier
        self.description = description
        self.source = nested("source", source, OssSourceArgs)


def _peers(conn: ops.FleetConnection, host_names: list[str]) -> list[dict[str, Any]]:
    """The hosts that share a timer, in the order they take it over (docs/triggers.md)."""
    return [{"name": h.name, "address": h.address, "port": conn.invoke_port}
            for h in sorted((conn.host(n) for n in host_names), key=lambda h: h.name)]


class TriggerProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = check(ts.TriggerModel, news)
        if not failures and not ts.has_unknown(news.get("trigger_config")) and news.get("trigger_config") is not None:
            news = {**news, "trigger_config": ts.normalize_config(news["trigger_config"])}
        return CheckResult(news, [CheckFailure(p, r) for p, r in failures])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = ts.changed_keys(olds, news)
        replaces = [k for k in ts.REPLACE_ON if k in changed]
        return DiffResult(changes=bool(changed), replaces=replaces, stables=[], delete_before_replace=bool(replaces))

    def _hosts(self, conn: ops.FleetConnection, props: dict[str, Any]) -> list[str]:
        if props.get("function_hosts") is not None:
            return sorted(props["function_hosts"])
        name = props["function_name"]  # a function given by name: the hosts that run it

        def has(host: HostSpec) -> bool:
            try:
                with ops.agent_session(conn, host) as (_ssh, agent):
                    return agent.get_function(name) is not None
            except (HostUnreachable, AgentAPIError):
                return False

        found = sorted(h for h, ok in ops.on_hosts(f"lookup of function {name}", list(conn.hosts), has).items() if ok)
        if not found:
            raise FcProviderError(f"function: function {name} does not exist on any host of the fleet; create it "
                                  "first (or pass the Function resource)")
        return found

    def _apply(self, props: dict[str, Any], current: Sequence[str] = ()) -> dict[str, Any]:
        conn = ops.FleetConnection.from_dict(props["connection"])
        host_names = self._hosts(conn, props)
        peer_key = props.get("peer_key") or secrets.token_hex(32)
        spec = ts.agent_spec(props, _peers(conn, host_names), peer_key)
        fn, name = props["function_name"], props["trigger_name"]

        def put(host: HostSpec) -> dict[str, Any]:
            with ops.agent_session(conn, host) as (_ssh, agent):
                return agent.put_trigger(fn, name, spec)

        def remove(host: HostSpec) -> bool:
            with ops.agent_session(conn, host) as (_ssh, agent):
                return agent.delete_trigger(fn, name)

        gone = [conn.host(n) for n in current if n not in host_names and n in {h.name for h in conn.hosts}]
        hosts = [conn.host(n) for n in host_names]
        with ops.fleet_lock(conn, hosts + gone, f"deploy of trigger {fn}:{name}"):
            records = ops.on_hosts(f"deploy of trigger {fn}:{name}", hosts, put)
            if gone:
                ops.on_hosts(f"removal of trigger {fn}:{name}", gone, remove)
        props = {**props, "trigger_config": spec["trigger_config"], "peer_key": peer_key}
        return ts.outputs(props, records, props["connection"])

    @brief_errors
    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._apply(props)
        return CreateResult(id_=outs["trigger_id"], outs=outs)

    @brief_errors
    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._apply({**news, "peer_key": olds.get("peer_key")}, olds.get("hosts") or []))

    @brief_errors
    def delete(self, _id: str, props: dict[str, Any]) -> None:
        conn = ops.FleetConnection.from_dict(props["connection"])
        fn, name = props["function_name"], props["trigger_name"]
        known = {h.name for h in conn.hosts}

        def remove(host: HostSpec) -> bool:
            with ops.agent_session(conn, host) as (_ssh, agent):
                return agent.delete_trigger(fn, name)  # gone already (its function was deleted): done

        hosts = [conn.host(n) for n in props.get("hosts") or [] if n in known]
        with ops.fleet_lock(conn, hosts, f"removal of trigger {fn}:{name}"):
            ops.on_hosts(f"removal of trigger {fn}:{name}", hosts, remove)

    @brief_errors
    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh: the trigger as each host reports it; a host missing it or holding another config is drift."""
        if not isinstance(props.get("connection"), dict):
            raise FcProviderError("Pulumi cannot import a dynamic resource (pulumi/pulumi#16175); declare the "
                                  "Trigger instead: an existing trigger of the same name is taken over")
        conn = ops.FleetConnection.from_dict(props["connection"])
        fn, name = props["function_name"], props["trigger_name"]

        def fetch(host: HostSpec) -> Optional[dict[str, Any]]:
            try:
                with ops.agent_session(conn, host) as (_ssh, agent):
                    return agent.get_trigger(fn, name)
            except (HostUnreachable, AgentAPIError):
                return None

        recorded = [n for n in props.get("hosts") or [] if n in {h.name for h in conn.hosts}]
        records = ops.on_hosts(f"read of trigger {fn}:{name}", [conn.host(n) for n in recorded], fetch)
        if not any(records.values()):
            return ReadResult(None, {})
        outs = ts.outputs(props, records, props["connection"])
        inputs = {k: outs.get(k) for k in ("connection", "function_name", "function_hosts", "trigger_name",
                                           "trigger_type", "trigger_config", "qualifier", "description", "source")}
        return ReadResult(id_, outs, inputs)


class Trigger(pulumi.dynamic.Resource):
    """A trigger of a function. Outputs (FC's names): ``trigger_id`` ("function:trigger"), ``http_trigger``
    ({url_internet, url_intranet} for HTTP triggers), ``create_time``, ``last_modified_time``, ``status``,
    ``target_arn``, ``hosts``; ``oss_webhook_url`` (secret) for OSS triggers: the URL to give the S3 server's
    webhook (versitygw ``--event-webhook-url``). At most 50 triggers per function."""

    trigger_id: pulumi.Output[str]
    function_name: pulumi.Output[str]
    trigger_name: pulumi.Output[str]
    trigger_type: pulumi.Output[str]
    qualifier: pulumi.Output[str]
    http_trigger: pulumi.Output[Optional[dict]]
    create_time: pulumi.Output[str]
    last_modified_time: pulumi.Output[str]
    status: pulumi.Output[str]
    target_arn: pulumi.Output[str]
    hosts: pulumi.Output[list]
    oss_webhook_url: pulumi.Output[Optional[str]]

    def __init__(self, resource_name: str, args: TriggerArgs, *, fleet: Optional[Fleet] = None,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        """
        :param resource_name: The Pulumi resource name; also the trigger_name when args leave it unset.
        :param args: The trigger's configuration.
        :param fleet: Needed only when ``args.function`` is a name rather than a Function resource.
        :param opts: Pulumi resource options.
        """
        function = args.function
        depends: list[pulumi.Resource] = []
        if isinstance(function, Function):
            connection, function_name, function_hosts = function.connection, function.function_name, function.hosts
            depends.append(function)
        else:
            if fleet is None:
                raise TypeError("Trigger: a function given by name needs fleet=<the Fleet resource>")
            connection, function_name, function_hosts = fleet.connection, function, None
            depends.append(fleet)
        props: dict[str, Any] = {
            "connection": connection, "function_name": function_name, "function_hosts": function_hosts,
            "trigger_name": args.trigger_name or resource_name, "trigger_type": args.trigger_type,
            "trigger_config": args.trigger_config, "qualifier": args.qualifier, "description": args.description,
            "source": pulumi.Output.secret(args.source) if args.source is not None else None,
            "peer_key": None, **{k: None for k in ts.OUTPUT_KEYS},
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["connection", "peer_key", "source", "oss_webhook_url"], depends_on=depends))
        super().__init__(TriggerProvider(), resource_name, props, opts)
