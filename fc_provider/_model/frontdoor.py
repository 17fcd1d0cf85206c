"""The front door's configuration (HAProxy), decided without a host.

Every CustomDomain served by an edge host leaves its *fragment* there (a JSON document: its routes, the hosts of
each routed function, its TLS settings), and the host's one ``haproxy.cfg`` is rendered from all fragments found on
it, so several domains (of one stack or of several) share ports 80 and 443. Rendering is deterministic: the same
fragments give the same bytes, which is how a no-change ``up`` leaves HAProxy alone and how refresh sees a
configuration edited by hand.

What passes through unchanged, whatever the route: the method, ``Host``, every ``x-acs-*`` header, the query and
the path (a route puts its trigger's ``/_fd/<label>`` before it, which the agent strips), so request signatures
still verify behind the front door, on routes and on the invoke API (``/2023-03-30/functions/NAME/...``) alike.
The client's address is appended to ``X-Forwarded-For``; ``x-fc-request-id`` is kept, or set once here so that a
request retried on another host keeps one id."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import jinja2

from fc_common.triggers import front_door_prefix, url_label

from .custom_domain import (
    TLS12_CIPHERS,
    TLS13_CIPHERS,
    CustomDomainModel,
    TlsConfigModel,
    ordered_routes,
    route_trigger,
    trigger_problem,
)

CONFIG_DIR = "/etc/fc-agent/frontdoor"  # the fleet's own folder on the host: per host in the lab too
STATE_DIR = "/var/lib/fc-agent/frontdoor"
CONFIG = f"{CONFIG_DIR}/haproxy.cfg"
DOMAINS_DIR = f"{CONFIG_DIR}/domains"
CERTS_DIR = f"{CONFIG_DIR}/certs"
INVOKE_PREFIX = "/2023-03-30/functions/"
TIMEOUT_MARGIN_S = 5  # beyond the function's timeout: the agent answers a timed-out invocation itself
FRAGMENT_VERSION = 1  # a fragment of another version is left out of the config: bump it when the shape changes

_TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).with_name("templates"))),
                                undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True)
class RouteTarget:
    """Where a route's requests go on a function's hosts: the function's HTTP trigger, as FC's custom domains do
    (the trigger's authType applies: anonymous is public, function needs a signature, jwt a token). HAProxy puts
    ``path_prefix`` before the request's path and keeps the method, the query, ``Host`` and every header, so the
    function sees the path the client sent to the domain."""

    trigger_name: str
    label: str
    path_prefix: str


def route_target(function_name: str, trigger_name: str) -> RouteTarget:
    """The one place that decides where a route goes: ``/_fd/<label>`` + the domain's path on the function's hosts
    (fc_common.triggers.FRONT_DOOR_PREFIX: the agent strips the prefix, verifies a signature against the path the
    client signed, and leaves redirects as the function wrote them)."""
    label = url_label(function_name, trigger_name)
    return RouteTarget(trigger_name, label, front_door_prefix(label))


def domain_id(domain: str) -> str:
    return "d" + hashlib.sha256(domain.encode()).hexdigest()[:10]


def pem_bundle(cert_config: Mapping[str, str]) -> bytes:
    """Certificate chain then key, the one file HAProxy's ``crt`` takes."""
    return (cert_config["certificate"].strip() + "\n" + cert_config["private_key"].strip() + "\n").encode()


def cert_path(domain: str, bundle: bytes) -> str:
    """Content-addressed: a new certificate never overwrites the one the running configuration uses."""
    return f"{CERTS_DIR}/{domain}-{hashlib.sha256(bundle).hexdigest()[:16]}.pem"


def fragment(model: CustomDomainModel, hosts: Mapping[str, Mapping[str, Any]], invoke_port: int) -> dict[str, Any]:
    """The domain's part of every edge host's configuration. ``hosts``: the fleet's hosts by name."""
    functions = {}
    for fn in sorted(model.functions, key=lambda f: f.function_name):
        servers = [{"name": h, "address": hosts[h]["address"], "port": invoke_port} for h in sorted(fn.hosts)
                   if h in hosts]
        functions[fn.function_name] = {"servers": servers, "timeout_s": int(math.ceil(fn.timeout))}
    routes = []
    for index, route in enumerate(ordered_routes(model.route_config.routes)):
        trigger = route_trigger(route, model.triggers or [])
        if trigger is None:  # the model refuses it; a fragment is only made from a checked model
            raise ValueError(trigger_problem(route, model.triggers or []))
        target = route_target(route.function_name, trigger.trigger_name)
        routes.append({"id": f"{domain_id(model.domain_name)}_r{index}", "path": route.path,
                       "match": "prefix" if route.is_prefix else "exact", "prefix": route.prefix,
                       "methods": list(route.methods), "function": route.function_name,
                       "qualifier": route.qualifier, "target": target.__dict__})
    tls = None
    if model.cert_config is not None:
        bundle = pem_bundle(model.cert_config.model_dump())
        settings = model.tls_config or TlsConfigModel()
        suites = settings.cipher_suites
        tls = {"cert_file": cert_path(model.domain_name, bundle), "cert_name": model.cert_config.cert_name,
               "min_version": settings.min_version, "max_version": settings.max_version,
               "ciphers": ":".join(dict.fromkeys(TLS12_CIPHERS[s] for s in suites if s in TLS12_CIPHERS)),
               "ciphersuites": ":".join(s for s in suites if s in TLS13_CIPHERS)}
    return {"version": FRAGMENT_VERSION, "domain": model.domain_name, "id": domain_id(model.domain_name),
            "protocol": model.protocol, "http": "HTTP" in model.protocol.split(","),
            "https": "HTTPS" in model.protocol, "http_port": model.front_door.http_port,
            "https_port": model.front_door.https_port, "invoke_api": model.invoke_api,
            "functions": functions, "routes": routes, "tls": tls}


def _merged_functions(fragments: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """One backend per function across domains: servers united, the longest timeout."""
    merged: dict[str, dict[str, Any]] = {}
    for frag in fragments:
        for name, fn in frag["functions"].items():
            entry = merged.setdefault(name, {"servers": {}, "timeout_s": 0})
            entry["timeout_s"] = max(entry["timeout_s"], fn["timeout_s"])
            for server in fn["servers"]:
                entry["servers"][server["name"]] = server
    return {name: {"servers": [e["servers"][k] for k in sorted(e["servers"])], "timeout_s": e["timeout_s"]}
            for name, e in sorted(merged.items())}


def render(fragments: Sequence[Mapping[str, Any]]) -> str:
    """The whole haproxy.cfg of an edge host from the fragments of the domains it serves."""
    fragments = sorted(fragments, key=lambda f: f["domain"])
    functions = _merged_functions(fragments)
    longest = max([fn["timeout_s"] for fn in functions.values()] or [3]) + TIMEOUT_MARGIN_S
    listeners: dict[tuple[int, bool], list[Mapping[str, Any]]] = {}
    for frag in fragments:
        if frag["http"]:
            listeners.setdefault((frag["http_port"], False), []).append(frag)
        if frag["https"]:
            listeners.setdefault((frag["https_port"], True), []).append(frag)
    frontends = [{"port": port, "tls": tls, "domains": doms,
                  "crt_list": crt_list_path(doms) if tls else None}
                 for (port, tls), doms in sorted(listeners.items())]
    return _TEMPLATES.get_template("haproxy.cfg.j2").render(
        state_dir=STATE_DIR, functions=functions, frontends=frontends, fragments=fragments,
        client_timeout_s=longest, hard_stop_after_s=longest + 30, margin_s=TIMEOUT_MARGIN_S,
        invoke_prefix=INVOKE_PREFIX)


def crt_list(domains: Sequence[Mapping[str, Any]]) -> str:
    """HAProxy's crt-list: each domain's certificate with its own TLS settings, chosen by SNI."""
    lines = []
    for frag in domains:
        tls = frag["tls"]
        options = [f"ssl-min-ver {tls['min_version']}"]
        if tls["max_version"]:
            options.append(f"ssl-max-ver {tls['max_version']}")
        if tls["ciphers"]:
            options.append(f"ciphers {tls['ciphers']}")
        if tls["ciphersuites"]:
            options.append(f"ciphersuites {tls['ciphersuites']}")
        lines.append(f"{tls['cert_file']} [{' '.join(options)}] {frag['domain']}")
    return "\n".join(lines) + "\n"


def crt_list_path(domains: Sequence[Mapping[str, Any]]) -> str:
    return f"{CONFIG_DIR}/crt-list-{hashlib.sha256(crt_list(domains).encode()).hexdigest()[:16]}.txt"


def crt_lists(fragments: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Path to content of every crt-list the rendered configuration refers to."""
    by_port: dict[int, list[Mapping[str, Any]]] = {}
    for frag in sorted(fragments, key=lambda f: f["domain"]):
        if frag["https"]:
            by_port.setdefault(frag["https_port"], []).append(frag)
    return {crt_list_path(doms): crt_list(doms) for doms in by_port.values()}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
