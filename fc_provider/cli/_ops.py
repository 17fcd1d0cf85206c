"""What the `fc` commands do, as data: invoke through a host's invoke port, and read the agents' control API
through SSH (one session per host, hosts in parallel). Rendering is the caller's business."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, TypeVar
from urllib.parse import quote, urlencode

from .._errors import FcProviderError, HostUnreachable
from .._remote import fleetops as ops
from .._remote.signer import Credentials, sign
from .._remote.ssh import HostSpec
from ._errors import NotFound, UsageError

T = TypeVar("T")


@dataclass
class HostResults:
    """Per-host answers of one query; a failed host is named with its reason and the others still count."""

    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def query(conn: ops.FleetConnection, hosts: list[HostSpec], work: Callable[[Any], T]) -> HostResults:
    """Runs ``work(agent)`` on every host through its control API."""

    def one(host: HostSpec) -> tuple[bool, Any]:
        try:
            with ops.agent_session(conn, host) as (_ssh, agent):
                return True, work(agent)
        except FcProviderError as exc:
            return False, getattr(exc, "reason", str(exc))

    out = HostResults()
    for name, (ok, value) in ops.on_hosts("query", hosts, one).items():
        (out.results if ok else out.errors)[name] = value
    return out


def pick_hosts(conn: ops.FleetConnection, host: Optional[str]) -> list[HostSpec]:
    if host is None:
        return list(conn.hosts)
    try:
        return [conn.host(host)]
    except FcProviderError as exc:
        raise UsageError(str(exc)) from exc


@dataclass(frozen=True)
class Invocation:
    host: str
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def error_type(self) -> Optional[str]:
        return self.headers.get("x-fc-error-type")

    @property
    def log_tail(self) -> str:
        raw = self.headers.get("x-fc-log-result")
        return base64.b64decode(raw).decode(errors="replace") if raw else ""


def invoke(conn: ops.FleetConnection, hosts: list[HostSpec], name: str, payload: bytes,
           qualifier: Optional[str], credentials: Credentials, *, log_tail: bool = False,
           timeout: float = 900, extra_headers: Optional[dict[str, str]] = None) -> Invocation:
    """Invokes on the first host (fleet order) that has the function: FC's InvokeFunction on its invoke port,
    signed with ``credentials``."""
    query_string = f"?{urlencode({'qualifier': qualifier})}" if qualifier else ""
    headers = {"x-fc-log-type": "Tail"} if log_tail else {}
    headers.update(extra_headers or {})
    missing = []
    for host in hosts:
        url = (f"http://{host.address}:{conn.invoke_port}/2023-03-30/functions/{quote(name)}/invocations"
               f"{query_string}")
        request = urllib.request.Request(url, data=payload, method="POST",
                                         headers=sign(credentials, "POST", url, payload, headers))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return Invocation(host.name, resp.status, {k.lower(): v for k, v in resp.headers.items()},
                                  resp.read())
        except urllib.error.HTTPError as exc:
            body = exc.read()
            code, message = _fc_error(body)
            if exc.code == 404 and code == "FunctionNotFound":
                missing.append(host.name)
                continue
            raise HostUnreachable(host.name, f"invoke answered {exc.code} {code}: {message}") from exc
        except OSError as exc:
            raise HostUnreachable(host.name, f"invoke port {conn.invoke_port} not reachable: "
                                  f"{getattr(exc, 'reason', exc)}") from exc
    raise NotFound(f"function {name} is not deployed on {', '.join(missing)}")


def _fc_error(body: bytes) -> tuple[str, str]:
    try:
        data = json.loads(body)
        return str(data.get("Code", "Unknown")), str(data.get("Message", ""))
    except ValueError:
        return "Unknown", body.decode(errors="replace")[:200]


def logs(conn: ops.FleetConnection, hosts: list[HostSpec], name: str,
         request_id: Optional[str]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Log entries of the function on every host, newest first, each with its host."""
    found = query(conn, hosts, lambda agent: agent.logs(function=name, request_id=request_id))
    entries = [{**e, "host": h} for h, host_entries in found.results.items() for e in host_entries]
    return sorted(entries, key=lambda e: (e.get("time") or "", e["host"]), reverse=True), found.errors


def instances(conn: ops.FleetConnection, hosts: list[HostSpec],
              name: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    found = query(conn, hosts, lambda agent: agent.instances())
    rows = [{**i, "host": h} for h, items in sorted(found.results.items()) for i in items
            if i.get("function_name") == name]
    return rows, found.errors


def gpu_summary(gpus: Optional[dict[str, Any]]) -> str:
    """"2 fc.gpu.tesla.1 SIMULATED (1 leased)", "nvml: NVML failed ...", or "" for a host without GPUs."""
    if not gpus:
        return ""
    if gpus.get("error"):
        return f"{gpus.get('source')}: {gpus['error']}"
    label = "SIMULATED" if gpus.get("simulated") else gpus.get("source", "")
    parts = [f"{c['total']} {t} {label} ({c['leased']} leased, {c.get('reserved', 0)} in pools)"
             for t, c in sorted((gpus.get("types") or {}).items())]
    problem = (gpus.get("support") or {}).get("problem")
    return "; ".join(parts) + (f"; {problem}" if problem else "")


def hosts(conn: ops.FleetConnection) -> tuple[list[dict[str, Any]], dict[str, str]]:
    def describe(agent: Any) -> dict[str, Any]:
        status, info = agent.raw("GET", "/v1/info")
        functions = agent.list_functions()
        return {**(info if status == 200 and isinstance(info, dict) else {}),
                "functions": sorted(f["function_name"] for f in functions)}

    found = query(conn, list(conn.hosts), describe)
    rows = []
    for h in conn.hosts:
        info = found.results.get(h.name) or {}
        rows.append({"name": h.name, "address": h.address, "agent": "ok" if h.name in found.results else "DOWN",
                     "version": info.get("version"), "capacity": info.get("capacity"),
                     "committed": info.get("committed"), "functions": info.get("functions", []),
                     "gpus": info.get("gpus"),
                     "error": found.errors.get(h.name)})
    return rows, found.errors
