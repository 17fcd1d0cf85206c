"""The triggers of this host's functions: validation when one is stored, the HTTP routing table, and the
subscribers (the timer) told when the set changes.

Reads of the routing table are lock-free (a dict replaced whole on each change): the HTTP trigger's warm path
does one dict lookup per request."""

from __future__ import annotations

import threading
from typing import Any, Callable

from fc_common import cors, cron
from fc_common import triggers as rules

from ..errors import BadRequest, Conflict, NotFound
from ..state.triggers import TriggerRecord, TriggerStore
from .http_auth import AuthConfigError, JwtAuth
from .oss import SourceUnreachable, check_source

SPEC_KEYS = ("trigger_type", "qualifier", "description", "trigger_config", "url_label", "peers", "peer_key", "source")


def validate(function: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as stored; BadRequest names the field and the rule. The provider checked it at preview already;
    this is for callers of the control API that are not the provider."""
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise BadRequest(f"unknown trigger keys {unknown}")
    if not rules.TRIGGER_NAME.match(name):
        raise BadRequest(f"trigger_name {name!r} must be 1-128 letters, digits, '_' or '-', starting with a letter "
                         "or '_'")
    kind = spec.get("trigger_type")
    if kind not in rules.TYPES:
        raise BadRequest(f"trigger_type must be one of {', '.join(rules.TYPES)}; got {kind!r}")
    qualifier = spec.get("qualifier") or "LATEST"
    if not rules.QUALIFIER.match(str(qualifier)):
        raise BadRequest(f"qualifier {qualifier!r} must be LATEST, a version or an alias name")
    config = spec.get("trigger_config") or {}
    if not isinstance(config, dict):
        raise BadRequest("trigger_config must be an object")
    if kind == "http":
        methods = config.get("methods") or []
        bad = [m for m in methods if m not in rules.HTTP_METHODS]
        if bad or not methods:
            raise BadRequest(f"trigger_config.methods must list some of {', '.join(rules.HTTP_METHODS)}; got "
                             f"{methods!r}")
        if config.get("authType", "function") not in rules.AUTH_TYPES:
            raise BadRequest(f"trigger_config.authType must be one of {', '.join(rules.AUTH_TYPES)}")
        if config.get("authType") == "jwt":
            try:
                JwtAuth.from_config(config.get("authConfig"))
            except AuthConfigError as exc:
                raise BadRequest(f"trigger_config.{exc}") from exc
        if config.get("corsConfig") is not None and (wrong := cors.problems(config["corsConfig"])):
            raise BadRequest("; ".join(f"trigger_config.{field}: {rule}" for field, rule in wrong))
        spec["url_label"] = rules.url_label(function, name)
    elif kind == "timer":
        try:
            cron.parse(config.get("cronExpression", ""))
        except cron.CronError as exc:
            raise BadRequest(f"trigger_config.cronExpression: {exc}") from exc
        if len(str(config.get("payload") or "").encode()) > rules.MAX_TIMER_PAYLOAD:
            raise BadRequest("trigger_config.payload exceeds 128 KB")
    elif kind == "oss":
        _validate_oss(config, spec.get("source"))
    return {**spec, "qualifier": qualifier}


def _validate_oss(config: dict[str, Any], source: Any) -> None:
    events = config.get("events") or []
    bad = [e for e in events if e not in rules.OSS_EVENTS]
    if bad or not events:
        raise BadRequest(f"trigger_config.events must list FC event names such as oss:ObjectCreated:*; unknown: "
                         f"{bad or events}")
    key_filter = (config.get("filter") or {}).get("key") or {}
    for part in ("prefix", "suffix"):
        if any(c in str(key_filter.get(part) or "") for c in "*?"):
            raise BadRequest(f"trigger_config.filter.key.{part} takes no wildcards (* or ?)")
    if not isinstance(source, dict) or not source.get("endpoint") or not source.get("bucket"):
        raise BadRequest("source with endpoint and bucket is required for an oss trigger")
    try:
        check_source(source)
    except SourceUnreachable as exc:
        raise Conflict(str(exc), code="SourceUnreachable") from exc


class Triggers:
    def __init__(self, store: TriggerStore, function_exists: Callable[[str], bool], host_name: str) -> None:
        self.store = store
        self._function_exists = function_exists
        self._host = host_name
        self._lock = threading.Lock()
        self.by_label: dict[str, TriggerRecord] = {}
        self._subscribers: list[Callable[[list[TriggerRecord]], None]] = []
        self._refresh()

    def subscribe(self, callback: Callable[[list[TriggerRecord]], None]) -> None:
        """``callback(all_triggers)`` now and after every change."""
        self._subscribers.append(callback)
        callback(self.store.list())

    def _refresh(self) -> None:
        records = self.store.list()
        self.by_label = {r.spec["url_label"]: r for r in records if r.type == "http" and r.spec.get("url_label")}
        for callback in self._subscribers:
            callback(records)

    def put(self, function: str, name: str, spec: dict[str, Any]) -> TriggerRecord:
        if not self._function_exists(function):
            raise NotFound(f"function {function} does not exist on host {self._host}; a trigger needs its function")
        spec = validate(function, name, dict(spec))
        with self._lock:
            existing = {r.name: r for r in self.store.list(function)}
            if name not in existing and len(existing) >= rules.MAX_PER_FUNCTION:
                raise Conflict(f"function {function} has {len(existing)} triggers, the most FC allows "
                               f"({rules.MAX_PER_FUNCTION})", code="TriggerLimitExceeded")
            old = existing.get(name)
            if old is not None and old.type != spec["trigger_type"]:
                raise Conflict(f"trigger {name} of function {function} is a {old.type} trigger; delete it to "
                               f"make a {spec['trigger_type']} trigger", code="TriggerAlreadyExists")
            record = self.store.put(function, name, spec)
            self._refresh()
        return record

    def get(self, function: str, name: str) -> TriggerRecord:
        record = self.store.get(function, name)
        if record is None:
            raise NotFound(f"trigger {name} of function {function} does not exist on host {self._host}",
                           code="TriggerNotFound")
        return record

    def list(self, function: str | None = None) -> list[TriggerRecord]:
        return self.store.list(function)

    def delete(self, function: str, name: str | None = None) -> None:
        with self._lock:
            count = self.store.delete(function, name)
            self._refresh()
        if name is not None and not count:
            raise NotFound(f"trigger {name} of function {function} does not exist on host {self._host}",
                           code="TriggerNotFound")
