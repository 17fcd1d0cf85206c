"""The Trigger resource's properties: validation of ``trigger_config`` per type (pydantic, at preview), the one
normal form that is diffed, stored and sent to the agents, and the outputs. Pure functions; no host is contacted.

``trigger_config`` is accepted as FC writes it (camelCase keys, ``authConfig`` as a JSON string, Terraform's whole
config as a JSON string) or in Python's snake_case (the typed ``...Args`` classes); both normalize to FC's names,
which is also what error messages use (``trigger_config.cronExpression``)."""

from __future__ import annotations

import json
from typing import Any, Literal, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fc_common import cors, cron
from fc_common import triggers as rules
from fc_common.jwks import AuthConfigError, get_key, parse_keys

from .validation import FUNCTION_NAME, UNKNOWN, has_unknown

REPLACE_ON = ("function_name", "trigger_name", "trigger_type", "qualifier", "source")
UPDATE_ON = ("trigger_config", "description", "hosts")
OUTPUT_KEYS = ("trigger_id", "http_trigger", "create_time", "last_modified_time", "status", "target_arn", "hosts",
               "oss_webhook_url")
HTTP_DOMAIN = "fc.local"  # the agent routes on the first label only: any domain with a wildcard record works
_CAMEL = {"auth_type": "authType", "auth_config": "authConfig", "disable_url_internet": "disableURLInternet",
          "cron_expression": "cronExpression", "token_lookup": "tokenLookup", "claim_pass_by": "claimPassBy",
          "cors_config": "corsConfig"}
_CORS_CAMEL = {"allow_origins": "allowOrigins", "allow_methods": "allowMethods", "allow_headers": "allowHeaders",
               "expose_headers": "exposeHeaders", "allow_credentials": "allowCredentials", "max_age": "maxAge"}
_LOOKUP = r"^\s*(header|cookie|query|form):[^:,]+(:[^,]*)?(\s*,\s*(header|cookie|query|form):[^:,]+(:[^,]*)?)*\s*$"


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JwtAuthModel(_Config):
    jwks: Any
    tokenLookup: str = Field(default="header:Authorization:Bearer", pattern=_LOOKUP)
    claimPassBy: str = Field(default="", pattern=r"^$|" + _LOOKUP[1:])
    whitelist: list[str] = Field(default_factory=list)
    blacklist: list[str] = Field(default_factory=list)
    audience: Optional[str] = None

    @field_validator("jwks")
    @classmethod
    def _usable(cls, v: Any) -> Any:
        try:
            parse_keys(v)
        except AuthConfigError as exc:
            raise ValueError(str(exc).removeprefix("authConfig.jwks ").removeprefix("authConfig.")) from exc
        return json.loads(v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one_list(self) -> "JwtAuthModel":
        if self.whitelist and self.blacklist:
            raise ValueError("whitelist and blacklist are mutually exclusive")
        return self


class HttpConfigModel(_Config):
    authType: Literal["anonymous", "function", "jwt"] = "function"
    methods: list[Literal["HEAD", "DELETE", "POST", "GET", "OPTIONS", "PUT", "PATCH"]] = Field(
        default_factory=lambda: ["GET", "POST"], min_length=1)
    disableURLInternet: bool = False
    authConfig: Optional[JwtAuthModel] = None
    corsConfig: Optional[dict[str, Any]] = None

    @field_validator("corsConfig")
    @classmethod
    def _cors(cls, v: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        wrong = cors.problems(v) if v is not None else []
        if wrong:
            field, rule = wrong[0]
            raise ValueError(f"{field.removeprefix('corsConfig.')}: {rule}" if "." in field else rule)
        return v

    @model_validator(mode="after")
    def _jwt_needs_keys(self) -> "HttpConfigModel":
        if self.authType == "jwt" and self.authConfig is None:
            raise ValueError("authConfig (with jwks) is required when authType is jwt")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError("methods must not repeat")
        return self


class TimerConfigModel(_Config):
    cronExpression: str
    enable: bool = True
    payload: str = Field(default="", max_length=rules.MAX_TIMER_PAYLOAD)

    @field_validator("cronExpression")
    @classmethod
    def _parses(cls, v: str) -> str:
        try:
            cron.parse(v)
        except cron.CronError as exc:
            raise ValueError(str(exc).removeprefix("cronExpression ")) from exc
        return v


class OssKeyModel(_Config):
    prefix: str = Field(default="", max_length=1024)
    suffix: str = Field(default="", max_length=1024)

    @field_validator("prefix", "suffix")
    @classmethod
    def _literal(cls, v: str) -> str:
        if "*" in v or "?" in v:
            raise ValueError("takes no wildcards (* or ?): FC matches one literal prefix and one literal suffix")
        return v


class OssFilterModel(_Config):
    key: OssKeyModel = Field(default_factory=OssKeyModel)


class OssConfigModel(_Config):
    events: list[Literal[rules.OSS_EVENTS]] = Field(min_length=1)  # type: ignore[valid-type]
    filter: OssFilterModel = Field(default_factory=OssFilterModel)


class OssSourceModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    endpoint: str = Field(pattern=r"^https?://[^/\s]+/?$")
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    region: str = "us-east-1"
    access_key_id: str = Field(min_length=1)
    secret_access_key: str = Field(min_length=1)
    reconcile_seconds: float = Field(default=10, ge=0.5, le=3600)


CONFIG_MODELS: dict[str, type[_Config]] = {"http": HttpConfigModel, "timer": TimerConfigModel,
                                           "oss": OssConfigModel}


class TriggerModel(BaseModel):
    model_config = ConfigDict(extra="ignore")
    function_name: str = Field(pattern=FUNCTION_NAME.pattern)
    trigger_name: str = Field(pattern=rules.TRIGGER_NAME.pattern)
    trigger_type: Literal["http", "timer", "oss"]
    qualifier: str = Field(default="LATEST", pattern=rules.QUALIFIER.pattern)
    description: str = Field(default="", max_length=256)
    trigger_config: dict[str, Any] = Field(default_factory=dict, validate_default=True)  # a timer needs one
    source: Optional[OssSourceModel] = None

    @model_validator(mode="after")
    def _source_for_oss(self) -> "TriggerModel":
        if self.trigger_type == "oss" and self.source is None:
            raise ValueError("source (endpoint, bucket, access_key_id, secret_access_key) is required for an oss "
                             "trigger")
        if self.trigger_type != "oss" and self.source is not None:
            raise ValueError("source is only for oss triggers")
        return self

    @field_validator("trigger_config", mode="before")
    @classmethod
    def _per_type(cls, v: Any, info: Any) -> Any:
        kind = info.data.get("trigger_type")
        v = normalize_config(v)
        if kind in CONFIG_MODELS and isinstance(v, dict):
            try:
                return CONFIG_MODELS[kind].model_validate(v).model_dump(mode="json", exclude_none=True)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                msg = err["msg"].removeprefix("Value error, ")
                raise ValueError(f"{where}: {msg}" if where else msg) from None
        return v


def normalize_config(value: Any) -> Any:
    """FC's camelCase form of a trigger_config given in any accepted form (a JSON string too)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"is not valid JSON: {exc}") from None
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        key = _CAMEL.get(key, key)
        if key == "authConfig":
            item = _auth_config(item)
        elif key == "corsConfig" and isinstance(item, Mapping):
            item = {_CORS_CAMEL.get(k, k): v for k, v in item.items()}
        out[key] = item
    return out


def _auth_config(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"authConfig is not valid JSON: {exc}") from None
    if not isinstance(value, Mapping):
        return value
    out = {}
    for key in ("jwks", "tokenLookup", "claimPassBy", "whitelist", "blacklist", "audience"):
        snake = next((s for s, c in _CAMEL.items() if c == key), key)
        found = get_key(value, key)
        found = value.get(snake) if found is None else found
        if isinstance(found, list) and key in ("tokenLookup", "claimPassBy"):
            found = ",".join(found)
        if found is not None:
            out[key] = found
    unknown = {k for k in value} - {*out, *(k[0].upper() + k[1:] for k in out), *(k.upper() for k in out),
                                    "token_lookup", "claim_pass_by"}
    for k in unknown:
        out[k] = value[k]  # extra="forbid" names it
    return out


def normalized(props: Mapping[str, Any]) -> dict[str, Any]:
    """The diffed properties in their normal form (defaults filled in); unknown values stay UNKNOWN."""
    out: dict[str, Any] = {}
    for key in REPLACE_ON + ("description", "trigger_config"):
        value = props.get(key)
        if key == "source" and value is None:
            continue
        out[key] = UNKNOWN if has_unknown(value) else value
    if UNKNOWN in out.values():
        return out
    try:
        model = TriggerModel.model_validate({k: v for k, v in props.items() if v is not None})
    except ValidationError:
        return out
    return {**model.model_dump(mode="json"), "hosts": sorted(props.get("hosts") or [])}


def changed_keys(olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
    a, b = normalized(olds), normalized(news)
    keys = [k for k in REPLACE_ON + ("description", "trigger_config") if a.get(k) != b.get(k) or b.get(k) == UNKNOWN]
    if news.get("function_hosts") is not None and not has_unknown(news.get("function_hosts")) and \
            sorted(news["function_hosts"]) != sorted(olds.get("hosts") or []):
        keys.append("hosts")  # the function moved, or refresh found the trigger missing on a host
    return keys


def agent_spec(props: Mapping[str, Any], peers: list[dict[str, Any]], peer_key: str) -> dict[str, Any]:
    model = TriggerModel.model_validate({k: v for k, v in props.items() if v is not None})
    spec = {"trigger_type": model.trigger_type, "qualifier": model.qualifier, "description": model.description,
            "trigger_config": model.trigger_config}
    if model.trigger_type in ("timer", "oss"):
        spec.update(peers=peers, peer_key=peer_key)
    if model.source is not None:
        spec["source"] = model.source.model_dump(mode="json")
    return spec


def outputs(props: Mapping[str, Any], records: Mapping[str, Optional[dict[str, Any]]], conn: Mapping[str, Any]
            ) -> dict[str, Any]:
    """Outputs as the hosts report them; a host whose copy differs puts its copy in the outputs (drift)."""
    name, function = props["trigger_name"], props["function_name"]
    present = {h: r for h, r in records.items() if r is not None}
    wanted = normalized(props)
    outs = dict(props)
    for host, record in sorted(present.items()):
        for key in ("trigger_config", "description", "qualifier"):
            if record.get(key) != wanted.get(key):
                outs[key] = record.get(key)
    outs["hosts"] = sorted(present)
    outs["trigger_id"] = rules.trigger_id(function, name)
    outs["target_arn"] = f"acs:fc:local:fleet:functions/{function}"
    outs["status"] = "Active" if present else "Inactive"
    if present:
        outs["create_time"] = min(r.get("created_time") or "" for r in present.values())
        outs["last_modified_time"] = max(r.get("last_modified_time") or "" for r in present.values())
    outs["http_trigger"] = None
    outs["oss_webhook_url"] = None
    if wanted.get("trigger_type") == "oss" and props.get("peer_key"):
        owner = sorted(h["name"] for h in conn["hosts"] if h["name"] in (props.get("function_hosts") or present))
        if owner:
            address = {h["name"]: h["address"] for h in conn["hosts"]}[owner[0]]
            outs["oss_webhook_url"] = (f"http://{address}:{int(conn.get('invoke_port', 9000))}/_fc/s3-events/"
                                       f"{props['peer_key']}")
    if wanted.get("trigger_type") == "http" and present:
        label = rules.url_label(function, name)
        port = int(conn.get("invoke_port", 9000))
        address = {h["name"]: h["address"] for h in conn["hosts"]}[sorted(present)[0]]
        outs["http_trigger"] = {"url_internet": f"http://{label}.{HTTP_DOMAIN}:{port}/",
                                "url_intranet": f"http://{address}:{port}/_t/{label}/"}
    return outs
