"""Validation of a CustomDomain's inputs (pydantic), FC's path matching, and the choice of edge hosts. Pure: no host
is contacted here; rules that need values still unknown at preview wait for them (``validation.check``).

Path matching follows Function Compute's custom domains: a path is either exact (``/login``) or a prefix wildcard
ending in ``/*`` (``/api/*`` matches ``/api/`` and everything below it, ``/*`` matches every path). Exact routes
win, then the longest prefix."""

from __future__ import annotations

import re
from typing import Any, Literal, Mapping, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fc_common.triggers import TRIGGER_NAME

from .certs import certificate_problems
from .validation import DOMAIN, FUNCTION_NAME

# Characters a route path may hold. Narrower than RFC 3986 on purpose: the path is written into the front door's
# configuration, so quotes, '#', '\' and whitespace are refused rather than escaped.
PATH = re.compile(r"^/[A-Za-z0-9._~!$&()+,;=:@%/-]*(/\*)?$|^/\*$")
QUALIFIER = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS")
TLS_VERSIONS = ("TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
DEFAULT_SELECTOR = {"front-door": "true"}

# FC's cipher-suite names (IANA's) and the OpenSSL names HAProxy takes. TLS 1.3 suites have one name in both.
TLS12_CIPHERS = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
TLS13_CIPHERS = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=False)


class RouteModel(_Strict):
    path: str = Field(max_length=2048)
    function_name: str = Field(pattern=FUNCTION_NAME.pattern)
    qualifier: str = Field(default="LATEST", pattern=QUALIFIER.pattern)
    methods: list[Literal["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]] = Field(default_factory=list)
    trigger_name: Optional[str] = Field(default=None, pattern=TRIGGER_NAME.pattern)

    @field_validator("path")
    @classmethod
    def _path(cls, path: str) -> str:
        if not PATH.match(path):
            raise ValueError(f"path {path!r} must start with '/', hold only letters, digits and ._~!$&()+,;=:@%/- "
                             "and may end in '/*' (a prefix wildcard); '*' anywhere else is not allowed")
        return path

    @property
    def is_prefix(self) -> bool:
        return self.path.endswith("/*")

    @property
    def prefix(self) -> str:
        """For a wildcard route, what a matching path starts with ("/api/" for "/api/*", "/" for "/*")."""
        return self.path[:-1]


class RouteConfigModel(_Strict):
    routes: list[RouteModel] = Field(default_factory=list, max_length=100)

    @field_validator("routes")
    @classmethod
    def _unique_paths(cls, routes: list[RouteModel]) -> list[RouteModel]:
        paths = [r.path for r in routes]
        dupes = sorted({p for p in paths if paths.count(p) > 1})
        if dupes:
            raise ValueError(f"two routes have the same path: {', '.join(dupes)}; each path routes to one function")
        return routes


class CertConfigModel(_Strict):
    cert_name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")
    certificate: str = Field(min_length=1, max_length=20480)
    private_key: str = Field(min_length=1, max_length=8192)


class TlsConfigModel(_Strict):
    min_version: Literal["TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"] = "TLSv1.2"
    max_version: Optional[Literal["TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"]] = None
    cipher_suites: list[str] = Field(default_factory=list, max_length=100)

    @field_validator("cipher_suites")
    @classmethod
    def _known(cls, suites: list[str]) -> list[str]:
        unknown = [s for s in suites if s not in TLS12_CIPHERS and s not in TLS13_CIPHERS]
        if unknown:
            raise ValueError(f"unknown cipher suite(s) {', '.join(unknown)}; use FC's names, e.g. "
                             "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 or TLS_AES_128_GCM_SHA256")
        return suites

    @model_validator(mode="after")
    def _range(self) -> "TlsConfigModel":
        if self.max_version and TLS_VERSIONS.index(self.max_version) < TLS_VERSIONS.index(self.min_version):
            raise ValueError(f"tls_config: max_version {self.max_version} is below min_version {self.min_version}")
        return self


class FrontDoorModel(_Strict):
    hosts: Optional[list[str]] = None
    selector: Optional[dict[str, str]] = None
    http_port: int = Field(default=80, ge=1, le=65535)
    https_port: int = Field(default=443, ge=1, le=65535)

    @model_validator(mode="after")
    def _one_choice(self) -> "FrontDoorModel":
        if self.hosts is not None and self.selector is not None:
            raise ValueError("front_door: give hosts or selector, not both")
        if self.hosts is not None and not self.hosts:
            raise ValueError("front_door: hosts must name at least one host")
        if self.http_port == self.https_port:
            raise ValueError("front_door: http_port and https_port must differ")
        return self


class RoutedFunctionModel(_Strict):
    """What the front door needs of a routed Function: where it runs and how long it may take."""
    function_name: str
    hosts: list[str] = Field(default_factory=list)
    timeout: float = 3


class RoutedTriggerModel(_Strict):
    """What the front door needs of an fc.Trigger: which function and qualifier it invokes, and its name (the
    trigger's URL label is ``url_label(function_name, trigger_name)``)."""
    function_name: str
    trigger_name: str
    trigger_type: str = "http"
    qualifier: str = "LATEST"


class CustomDomainModel(_Strict):
    domain_name: str = Field(max_length=253)
    protocol: Literal["HTTP", "HTTPS", "HTTP,HTTPS"] = "HTTP"
    cert_config: Optional[CertConfigModel] = None
    tls_config: Optional[TlsConfigModel] = None
    route_config: RouteConfigModel = Field(default_factory=RouteConfigModel)
    front_door: FrontDoorModel = Field(default_factory=FrontDoorModel)
    invoke_api: bool = False
    functions: list[RoutedFunctionModel] = Field(default_factory=list)
    # None: not known yet (a first preview); the routes' triggers are checked once they are. The resource always
    # passes a list (empty without triggers=).
    triggers: Optional[list[RoutedTriggerModel]] = None

    @field_validator("domain_name")
    @classmethod
    def _host_name(cls, name: str) -> str:
        if not DOMAIN.match(name) or name.endswith(".") or "." not in name or name.replace(".", "").isdigit():
            raise ValueError(f"{name!r} is not a valid host name: dot-separated labels of letters, digits and '-' "
                             "(1-63 each, not starting or ending with '-'), at most 253 characters, e.g. "
                             "api.example.com")
        return name.lower()

    @model_validator(mode="after")
    def _consistent(self) -> "CustomDomainModel":
        if "HTTPS" in self.protocol and self.cert_config is None:
            raise ValueError(f"cert_config is required: protocol {self.protocol} serves HTTPS")
        if self.cert_config is not None:
            problems = certificate_problems(self.cert_config.certificate, self.cert_config.private_key,
                                            self.domain_name)
            if problems:
                raise ValueError("cert_config: " + "; ".join(problems))
        known = {f.function_name for f in self.functions}
        unknown = sorted({r.function_name for r in self.route_config.routes} - known)
        if unknown:
            raise ValueError(f"route_config: route(s) to function(s) {', '.join(unknown)} that this domain does not "
                             "know; pass the Function resources in functions= (known: "
                             f"{', '.join(sorted(known)) or 'none'})")
        if self.triggers is not None:
            problems = [p for p in (trigger_problem(r, self.triggers) for r in self.route_config.routes) if p]
            if problems:
                raise ValueError("route_config: " + "; ".join(problems))
        return self


def route_trigger(route: RouteModel, triggers: Sequence[RoutedTriggerModel]) -> Optional[RoutedTriggerModel]:
    """The HTTP trigger a route's requests go through: the one the route names, else the function's HTTP trigger
    for the route's qualifier (FC: a custom domain reaches only functions with an HTTP trigger, and the trigger's
    auth type applies). None when there is none, or several and the route names none."""
    found = [t for t in triggers if t.function_name == route.function_name and t.trigger_type == "http"
             and (t.trigger_name == route.trigger_name if route.trigger_name else t.qualifier == route.qualifier)]
    return found[0] if len(found) == 1 else None


def trigger_problem(route: RouteModel, triggers: Sequence[RoutedTriggerModel]) -> Optional[str]:
    if route_trigger(route, triggers) is not None:
        return None
    mine = [t for t in triggers if t.function_name == route.function_name and t.trigger_type == "http"]
    where = f"route {route.path} -> {route.function_name} ({route.qualifier})"
    if route.trigger_name:
        named = next((t for t in mine if t.trigger_name == route.trigger_name), None)
        if named is None:
            return (f"{where} names trigger_name {route.trigger_name}, which is not an HTTP trigger of "
                    f"{route.function_name} in triggers= (known: {', '.join(t.trigger_name for t in mine) or 'none'})")
    same = [t.trigger_name for t in mine if t.qualifier == route.qualifier]
    if len(same) > 1:
        return (f"{where}: the function has several HTTP triggers for qualifier {route.qualifier} "
                f"({', '.join(sorted(same))}); name one in the route's trigger_name")
    return (f"{where}: the function has no HTTP trigger for qualifier {route.qualifier} in triggers=; a custom "
            "domain reaches a function only through its HTTP trigger (whose authType applies): declare an "
            f"fc.Trigger(trigger_type=\"http\", qualifier=\"{route.qualifier}\") and pass it in triggers=")


def ordered_routes(routes: Sequence[RouteModel]) -> list[RouteModel]:
    """The order a request is matched in: exact paths first, then wildcards by the longest prefix."""
    exact = sorted((r for r in routes if not r.is_prefix), key=lambda r: r.path)
    prefixes = sorted((r for r in routes if r.is_prefix), key=lambda r: (-len(r.prefix), r.prefix))
    return exact + prefixes


def match(routes: Sequence[RouteModel], path: str, method: str = "POST") -> Optional[RouteModel]:
    """The route a request goes to (the front door's rules, restated for tests and the docs)."""
    for route in ordered_routes(routes):
        if route.methods and method not in route.methods:
            continue
        if (route.path == path) if not route.is_prefix else path.startswith(route.prefix):
            return route
    return None


class NoEdgeHost(ValueError):
    pass


def edge_hosts(front_door: FrontDoorModel, hosts: Sequence[Mapping[str, Any]]) -> list[str]:
    """The fleet hosts that run the front door: the named ones, else those whose labels match the selector
    (default: label front-door=true). None matching is an error naming the rule and the fleet's hosts."""
    names = [h["name"] for h in hosts]
    if front_door.hosts is not None:
        unknown = [n for n in front_door.hosts if n not in names]
        if unknown:
            raise NoEdgeHost(f"front_door: host(s) {', '.join(unknown)} are not part of the fleet ({', '.join(names)})")
        return list(front_door.hosts)
    selector = front_door.selector if front_door.selector is not None else DEFAULT_SELECTOR
    chosen = [h["name"] for h in hosts if all((h.get("labels") or {}).get(k) == v for k, v in selector.items())]
    if not chosen:
        labels = "; ".join(f"{h['name']} {h.get('labels') or {}}" for h in hosts)
        raise NoEdgeHost(f"front_door: no host of the fleet matches selector {selector} (hosts: {labels}); label an "
                         "edge host or name it in front_door.hosts")
    return chosen
