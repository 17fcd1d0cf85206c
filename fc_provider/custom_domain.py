"""The ``CustomDomain`` resource: one domain name in front of the fleet, served by HAProxy on the fleet's edge hosts,
with FC's path routing to functions, HTTPS, active health checks of every host that runs a routed function, and
failover between those hosts (see ``_model/frontdoor`` for the configuration, ``_remote/frontdoor`` for the host)."""

from __future__ import annotations

import dataclasses
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
from pydantic import TypeAdapter

from ._errors import FcProviderError, brief_errors
from ._inputs import InputArgs, nested
from ._model import frontdoor as fd
from ._model.custom_domain import CustomDomainModel, NoEdgeHost, edge_hosts
from ._model.validation import check, has_unknown
from ._remote import fleetops as ops
from ._remote import frontdoor as door
from ._remote import pool as _pool
from ._remote.ssh import HostSpec
from .fleet import Fleet
from .function import Function
from .trigger import Trigger

Nested = Optional[Mapping[str, Any]]
IN_SYNC = "in sync"
_INPUTS = ("domain_name", "protocol", "cert_config", "tls_config", "route_config", "front_door", "invoke_api",
           "functions", "triggers")
_OUTPUTS = ("urls", "edge_hosts", "edge_addresses", "front_door_state")


@dataclasses.dataclass(kw_only=True)
class CertConfigArgs(InputArgs):
    """FC's ``certConfig``: the certificate HTTPS serves for the domain.

    :param cert_name: A name for the certificate: letters, digits, '_', '.', '-', up to 128. Required.
    :param certificate: The PEM certificate, leaf first, then the intermediates. It must cover the domain name,
           match the key and be valid now. Required.
    :param private_key: The unencrypted PEM private key. Stored as a secret; on the edge hosts only in a root-only
           file. Required.
    """

    cert_name: pulumi.Input[str]
    certificate: pulumi.Input[str]
    private_key: pulumi.Input[str]


@dataclasses.dataclass(kw_only=True)
class TlsConfigArgs(InputArgs):
    """FC's ``tlsConfig``.

    :param min_version: "TLSv1.0", "TLSv1.1", "TLSv1.2" or "TLSv1.3". Default "TLSv1.2".
    :param max_version: The same values, not below min_version. Default none (the newest HAProxy offers).
    :param cipher_suites: FC's (IANA) names, e.g. "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256";
           up to 100. Default none (OpenSSL's defaults).
    """

    min_version: pulumi.Input[str] = "TLSv1.2"
    max_version: Optional[pulumi.Input[str]] = None
    cipher_suites: Sequence[pulumi.Input[str]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(kw_only=True)
class PathConfigArgs(InputArgs):
    """One route of FC's ``routeConfig``.

    :param path: "/exact/path", or a prefix wildcard "/prefix/*" ("/*": every path). Exact paths win, then the
           longest prefix. The function sees the path as the client sent it. Required.
    :param function_name: The function the path reaches; it must be one of the domain's ``functions`` and have an
           HTTP trigger in the domain's ``triggers`` (the request goes through it, its authType applies). Required.
    :param qualifier: The version or alias: the route goes through the function's HTTP trigger for this
           qualifier. Default "LATEST".
    :param methods: HTTP methods the route takes, e.g. ["GET", "POST"]. Default none (every method; the trigger's
           ``methods`` still apply).
    :param trigger_name: Which of the function's HTTP triggers, when it has several for the qualifier (our
           addition: FC picks it itself). Default none (the one for the qualifier).
    """

    path: pulumi.Input[str]
    function_name: pulumi.Input[str]
    qualifier: pulumi.Input[str] = "LATEST"
    methods: Sequence[pulumi.Input[str]] = dataclasses.field(default_factory=list)
    trigger_name: Optional[pulumi.Input[str]] = None


@dataclasses.dataclass(kw_only=True)
class RouteConfigArgs(InputArgs):
    """FC's ``routeConfig``.

    :param routes: Up to 100 routes; two routes may not have the same path. Default none.
    """

    routes: Sequence[Union[PathConfigArgs, Mapping[str, Any]]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(kw_only=True)
class FrontDoorArgs(InputArgs):
    """Which hosts of the fleet run the front door, and on which ports.

    :param selector: Labels an edge host carries. Default {"front-door": "true"} (when ``hosts`` is unset).
    :param hosts: Host names instead of a selector. Default none.
    :param http_port: The port plain HTTP listens on. Default 80.
    :param https_port: The port HTTPS listens on. Default 443.
    """

    selector: Optional[Mapping[str, str]] = None
    hosts: Optional[Sequence[str]] = None
    http_port: int = 80
    https_port: int = 443


class CustomDomainArgs:
    def __init__(self, *, domain_name: pulumi.Input[str], protocol: str = "HTTP",
                 cert_config: Union[CertConfigArgs, Nested] = None, tls_config: Union[TlsConfigArgs, Nested] = None,
                 route_config: Union[RouteConfigArgs, Nested] = None,
                 front_door: Union[FrontDoorArgs, Nested] = None, functions: Sequence[Function] = (),
                 triggers: Sequence[Trigger] = (), invoke_api: bool = False) -> None:
        """
        :param domain_name: The host name clients use, e.g. "api.example.com"; a change replaces the domain.
               Required.
        :param protocol: "HTTP", "HTTPS" or "HTTP,HTTPS". HTTPS needs ``cert_config``. Default "HTTP".
        :param cert_config: ``fc.CertConfigArgs`` or the same as a dict. Default none.
        :param tls_config: ``fc.TlsConfigArgs`` or the same as a dict. Default: TLS 1.2 and newer.
        :param route_config: ``fc.RouteConfigArgs`` or the same as a dict: {"routes": [{"path", "function_name",
               "qualifier", "methods"}]}. Default none (no path is routed).
        :param front_door: ``fc.FrontDoorArgs`` or the same as a dict. Default: the hosts labelled
               front-door=true, ports 80 and 443.
        :param functions: The Function resources the routes may name; the front door sends each route to the hosts
               that run its function and times out after the function's timeout. Default none.
        :param triggers: The functions' HTTP Trigger resources the routes go through (as in FC, a custom domain
               reaches a function only through its HTTP trigger, whose authType applies: ``anonymous`` serves
               public web traffic, ``function`` needs a signed request). A route to a function without one fails at
               preview. Default none.
        :param invoke_api: Also serve FC's invoke API on the domain for these functions
               (POST /2023-03-30/functions/NAME/invocations, passed through unchanged, signatures included), so the
               official SDK can use the domain as its endpoint. Default False.
        """
        self.domain_name, self.protocol, self.invoke_api = domain_name, protocol, invoke_api
        self.cert_config = nested("cert_config", cert_config, CertConfigArgs)
        self.tls_config = nested("tls_config", tls_config, TlsConfigArgs)
        self.route_config = nested("route_config", route_config, RouteConfigArgs)
        self.front_door = nested("front_door", front_door, FrontDoorArgs)
        self.functions = list(functions)
        self.triggers = list(triggers)


def _model(props: Mapping[str, Any]) -> CustomDomainModel:
    return CustomDomainModel.model_validate({k: props[k] for k in _INPUTS if props.get(k) is not None})


def _edge_specs(props: Mapping[str, Any]) -> tuple[ops.FleetConnection, list[HostSpec]]:
    conn = ops.FleetConnection.from_dict(props["connection"])
    names = edge_hosts(_model(props).front_door, props["connection"]["hosts"])
    return conn, [conn.host(n) for n in names]


def _fragment(props: Mapping[str, Any]) -> dict[str, Any]:
    connection = props["connection"]
    hosts = {h["name"]: h for h in connection["hosts"]}
    return fd.fragment(_model(props), hosts, int(connection.get("invoke_port", 9000)))


def _urls(props: Mapping[str, Any]) -> list[str]:
    model = _model(props)
    urls = []
    for scheme, port, default in (("http", model.front_door.http_port, 80),
                                  ("https", model.front_door.https_port, 443)):
        if scheme.upper() in model.protocol.split(","):
            urls.append(f"{scheme}://{model.domain_name}{'' if port == default else f':{port}'}/")
    return urls


class CustomDomainProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        # At a first preview the functions' hosts are not known yet; their names are, which is what routes need.
        functions, checked = news.get("functions"), news
        if isinstance(functions, list):
            checked = {**news, "functions": [{**f, "hosts": [] if has_unknown(f.get("hosts")) else f.get("hosts"),
                                           "timeout": 3 if has_unknown(f.get("timeout")) else f.get("timeout")}
                                          if isinstance(f, dict) else f for f in functions]}
        if has_unknown(news.get("triggers")):
            checked = {**checked, "triggers": None}  # the routes' triggers are checked once they are known
        failures = check(CustomDomainModel, {k: checked.get(k) for k in _INPUTS})
        connection = news.get("connection")
        if (isinstance(connection, dict) and not has_unknown(connection) and not has_unknown(news.get("front_door"))
                and not any(p == "front_door" for p, _ in failures)):
            try:
                edge_hosts(_model({"domain_name": "x.invalid", "front_door": news.get("front_door")}).front_door,
                           connection["hosts"])
            except NoEdgeHost as exc:
                failures.append(("front_door", str(exc)))
        return CheckResult(news, [CheckFailure(p, r) for p, r in failures])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in _INPUTS if _normal(olds, k) != _normal(news, k)]
        if not changed and not has_unknown(news) and isinstance(news.get("connection"), dict):
            try:  # the same inputs on a changed fleet (a host's address) still change what the front door sends to
                if _fragment(olds) != _fragment(news):
                    changed.append("connection")
            except (ValueError, KeyError):
                pass
        if any(v != IN_SYNC for v in (olds.get("front_door_state") or {}).values()):
            changed.append("front_door_state")  # refresh found the front door edited, stopped or missing
        connection = news.get("connection")
        if isinstance(connection, dict) and not has_unknown(connection) and not has_unknown(news.get("front_door")):
            try:
                if sorted(edge_hosts(_model(news).front_door, connection["hosts"])) != sorted(olds.get("edge_hosts")
                                                                                             or []):
                    changed.append("edge_hosts")
            except (NoEdgeHost, ValueError):
                changed.append("edge_hosts")
        replaces = ["domain_name"] if "domain_name" in changed else []
        return DiffResult(changes=bool(changed), replaces=replaces, stables=[], delete_before_replace=False)

    def _deploy(self, props: dict[str, Any], previous_edges: Sequence[str] = ()) -> dict[str, Any]:
        model = _model(props)
        conn, edges = _edge_specs(props)
        fragment = _fragment(props)
        bundle = fd.pem_bundle(model.cert_config.model_dump()) if model.cert_config else None
        gone = [conn.host(n) for n in previous_edges if n not in {e.name for e in edges}
                and n in {h.name for h in conn.hosts}]

        def serve(host: HostSpec) -> str:
            with _pool.session(host, conn.private_key) as ssh:
                return door.apply(ssh, model.domain_name, fragment, bundle)

        def withdraw(host: HostSpec) -> str:
            with _pool.session(host, conn.private_key) as ssh:
                return door.apply(ssh, model.domain_name, None)

        with ops.fleet_lock(conn, edges + gone, f"front door of {model.domain_name}"):
            ops.on_hosts(f"front door of {model.domain_name}", edges, serve)
            if gone:
                ops.on_hosts(f"front door removal of {model.domain_name}", gone, withdraw)
        return {**props, "urls": _urls(props), "edge_hosts": [e.name for e in edges],
                "edge_addresses": [e.address for e in edges],
                "front_door_state": {e.name: IN_SYNC for e in edges}}

    @brief_errors
    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._deploy(props)
        return CreateResult(id_=_model(props).domain_name, outs=outs)

    @brief_errors
    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._deploy(news, olds.get("edge_hosts") or []))

    @brief_errors
    def delete(self, _id: str, props: dict[str, Any]) -> None:
        conn = ops.FleetConnection.from_dict(props["connection"])
        domain = _model(props).domain_name
        hosts = [conn.host(n) for n in props.get("edge_hosts") or [] if n in {h.name for h in conn.hosts}]

        def withdraw(host: HostSpec) -> str:
            with _pool.session(host, conn.private_key) as ssh:
                return door.apply(ssh, domain, None)

        with ops.fleet_lock(conn, hosts, f"front door removal of {domain}"):
            ops.on_hosts(f"front door removal of {domain}", hosts, withdraw)

    @brief_errors
    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh: each edge host's front door against what was deployed (the domain's fragment, the rendered
        haproxy.cfg, a running HAProxy). Drift shows in ``front_door_state`` and the next `up` repairs it."""
        if not isinstance(props.get("connection"), dict):
            raise FcProviderError("Pulumi cannot import a dynamic resource (pulumi/pulumi#16175); declare the "
                                  "CustomDomain in the program instead")
        conn = ops.FleetConnection.from_dict(props["connection"])
        expected = _fragment(props)
        domain = expected["domain"]

        def probe(host: HostSpec) -> str:
            try:
                with _pool.session(host, conn.private_key) as ssh:
                    return door.observe(ssh, domain, expected)
            except FcProviderError as exc:
                return f"drift: unreachable: {getattr(exc, 'reason', exc)}"[:200]

        hosts = [conn.host(n) for n in props.get("edge_hosts") or [] if n in {h.name for h in conn.hosts}]
        state = ops.on_hosts(f"front door probe of {domain}", hosts, probe)
        outs = {**props, "front_door_state": state}
        return ReadResult(id_, outs, {k: props.get(k) for k in _INPUTS + ("connection",) if k in props})


_ADAPTERS = {k: TypeAdapter(CustomDomainModel.model_fields[k].annotation) for k in _INPUTS if k != "domain_name"}


def _normal(props: Mapping[str, Any], key: str) -> Any:
    """A property as the model holds it (defaults filled in, Pulumi's floats as ints, a typed Args and its dict
    alike), so only real changes show."""
    value = props.get(key)
    if has_unknown(value):
        return "unknown"
    if key == "domain_name":
        return str(value or "").lower()
    if value is None:
        value = CustomDomainModel.model_fields[key].get_default(call_default_factory=True)
    try:
        return _ADAPTERS[key].dump_python(_ADAPTERS[key].validate_python(value), mode="json")
    except ValueError:
        return value


class CustomDomain(pulumi.dynamic.Resource):
    """A domain name in front of the fleet (FC's CustomDomain): HAProxy on the edge hosts routes each path to the
    hosts that run its function, checks every host's agent, and fails over between them.

    Outputs: ``urls``, ``edge_hosts``, ``edge_addresses`` (point the domain's DNS at them),
    ``front_door_state`` (per edge host: "in sync", or the drift refresh found).
    """

    domain_name: pulumi.Output[str]
    urls: pulumi.Output[list]
    edge_hosts: pulumi.Output[list]
    edge_addresses: pulumi.Output[list]
    front_door_state: pulumi.Output[dict]

    def __init__(self, resource_name: str, args: CustomDomainArgs, *, fleet: Fleet,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        """
        :param resource_name: The Pulumi resource name.
        :param args: The domain's configuration.
        :param fleet: The fleet whose edge hosts serve the domain.
        :param opts: Pulumi resource options.
        """
        cert = args.cert_config
        if isinstance(cert, dict) and cert.get("private_key") is not None:
            cert = {**cert, "private_key": pulumi.Output.secret(cert["private_key"])}
        props: dict[str, Any] = {
            "connection": fleet.connection,
            "domain_name": args.domain_name, "protocol": args.protocol, "cert_config": cert,
            "tls_config": args.tls_config, "route_config": args.route_config,
            "front_door": args.front_door, "invoke_api": args.invoke_api,
            "functions": [{"function_name": f.function_name, "hosts": f.hosts, "timeout": f.timeout}
                          for f in args.functions],
            "triggers": [{"function_name": t.function_name, "trigger_name": t.trigger_name,
                          "trigger_type": t.trigger_type, "qualifier": t.qualifier} for t in args.triggers],
            **{k: None for k in _OUTPUTS},
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["connection", "cert_config"],
            depends_on=[fleet, *args.functions, *args.triggers]))
        super().__init__(CustomDomainProvider(), resource_name, props, opts)
