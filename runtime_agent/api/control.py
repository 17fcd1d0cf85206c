"""The agent's two HTTP faces.

- Control API (loopback only, bearer token; the provider reaches it through an SSH tunnel):
  ``GET /healthz``, ``GET /v1/info``, ``GET|PUT|DELETE /v1/functions/{name}``, ``GET /v1/functions``,
  ``GET /v1/instances``, ``GET /v1/logs?function=&request_id=``, ``GET /metrics``,
  ``GET /v1/access-keys``, ``PUT|DELETE /v1/access-keys/{id}`` (the keys the invoke API accepts).
  ``GET /v1/functions/{name}/triggers``, ``GET|PUT|DELETE /v1/functions/{name}/triggers/{trigger}``,
  ``GET /v1/images?ref=`` and ``POST /v1/images`` {ref, file} (runtime images shipped by the Fleet).
  ``GET|PUT|DELETE /v1/functions/{name}/provision-config?qualifier=`` (api/provision.py).
- Invoke API shaped like Function Compute's (``invoke_api``, on the lean wire).

Every platform error leaves through ``_send_error`` in FC's shape (``Code``, ``Message``, ``RequestId``).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from .. import __version__
from ..errors import AgentError, BadRequest, NotFound, Unauthorized, error_body
from ..invocation import new_request_id
from ..service import Agent
from . import layers as layers_api
from . import provision
from . import tasks
from . import versions as versions_api
from .invoke import InvokeServer

log = logging.getLogger("fc-agent")

FUNCTION_PATH = re.compile(r"^/v1/functions/([^/]+)$")
ACCESS_KEY_PATH = re.compile(r"^/v1/access-keys/([^/]+)$")
TRIGGERS_PATH = re.compile(r"^/v1/functions/([^/]+)/triggers$")
TRIGGER_PATH = re.compile(r"^/v1/functions/([^/]+)/triggers/([^/]+)$")
ASYNC_CONFIG_PATH = re.compile(r"^/v1/functions/([^/]+)/async-invoke-config$")
PROVISION_PATH = re.compile(r"^/v1/functions/([^/]+)/provision-config$")
GPU_POOL_PATH = re.compile(r"^/v1/gpu-pools/([^/]+)$")
MAX_CONTROL_PAYLOAD = 32 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave in separate writes; Nagle would hold the body 40 ms
    agent: Agent
    server_version = "fc-agent/" + __version__

    def log_message(self, format: str, *args: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):  # called on every response: format nothing unless asked
            log.debug("%s %s", self.client_address[0], format % args)

    def _body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_CONTROL_PAYLOAD:
            raise BadRequest(f"request body of {length} bytes exceeds the 32 MB limit")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def _send_error(self, exc: AgentError, request_id: str) -> None:
        self._send(exc.status, error_body(exc, request_id), {"x-fc-request-id": request_id})

    def _async_route(self) -> bool:
        return False

    def _dispatch(self, route: Callable[[str], None]) -> None:
        request_id = self.headers.get("x-fc-request-id") or new_request_id()
        try:
            if self._async_route():
                return
            route(request_id)
        except AgentError as exc:
            self._send_error(exc, request_id)
        except Exception:  # noqa: BLE001 - the funnel: nothing unexpected reaches the client as a traceback
            log.exception("unexpected error in %s %s", self.command, self.path)
            self._send_error(AgentError("internal error in the agent; see its log"), request_id)


class ControlHandler(_Handler):
    token: str

    def _async_route(self) -> bool:
        """The task API (as on the invoke port) and a function's async invoke config, behind the token."""
        path = urlsplit(self.path).path
        config = ASYNC_CONFIG_PATH.match(path)
        if not config and not tasks.matches(path):
            return False
        self._authorize()
        invoker = self.agent.async_invoker
        if config:
            name = config.group(1)
            qualifier = (parse_qs(urlsplit(self.path).query).get("qualifier") or ["LATEST"])[0]
            if self.command == "PUT":
                try:
                    raw = json.loads(self._body() or b"{}")
                except ValueError as exc:
                    raise BadRequest(f"body is not JSON: {exc}") from exc
                if not isinstance(raw, dict):
                    raise BadRequest("the async invoke config must be a JSON object")
                self._send_json(200, invoker.put_config(name, qualifier, raw))
            elif self.command == "DELETE":
                invoker.delete_config(name, qualifier)
                self._send(204, b"")
            else:
                self._send_json(200, invoker.get_config(name, qualifier))
            return True
        status, body = tasks.serve(invoker, self.command, self.path, dict(self.headers.items()), self._body())
        self._send(status, body)
        return True

    def _authorize(self) -> None:
        given = self.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            raise Unauthorized("a valid bearer token is required")

    def do_GET(self) -> None:
        self._dispatch(self._get)

    def do_PUT(self) -> None:
        self._dispatch(self._put)

    def do_DELETE(self) -> None:
        self._dispatch(self._delete)

    def do_POST(self) -> None:
        self._dispatch(self._post)

    def _routed(self) -> bool:
        """Answers a route of a subsystem (versions and aliases, layers); False when the path is none of theirs."""
        path = urlsplit(self.path).path
        for subsystem in (versions_api, layers_api):
            answer = subsystem.route(self.agent, self.command, path, self._json_body)
            if answer is not None:
                break
        else:
            return False
        status, payload = answer
        if payload is None:
            self._send(status, b"")
        else:
            self._send_json(status, payload)
        return True

    def _post(self, request_id: str) -> None:
        self._authorize()
        if urlsplit(self.path).path == "/v1/images":
            try:
                body = json.loads(self._body())
                ref, file_name = str(body["ref"]), str(body["file"])
            except (ValueError, KeyError, TypeError) as exc:
                raise BadRequest(f"POST /v1/images takes {{ref, file}}: {exc}") from exc
            return self._send_json(200, self.agent.load_image(ref, file_name))
        if not self._routed():
            raise NotFound(f"no route {urlsplit(self.path).path}", code="NotFound")

    def _get(self, request_id: str) -> None:
        self._authorize()
        if self._routed():
            return
        path = urlsplit(self.path).path
        if path == "/healthz":
            return self._send_json(200, {"status": "ok"})
        if path == "/v1/info":
            return self._send_json(200, {"host_name": self.agent.config.host_name, "version": __version__,
                                         "invoke_port": self.agent.config.invoke_port, **self.agent.room.usage(),
                                         "gpus": self.agent.cards.info(self.agent.room.committed_cards()),
                                         "stem_cells": self.agent.cells.info()})
        if path == "/v1/functions":
            return self._send_json(200, {"functions": [f.to_json() for f in self.agent.list_functions()]})
        if path == "/metrics":
            return self._send(200, self.agent.metrics.render(), content_type="text/plain; version=0.0.4")
        if path == "/v1/logs":
            query = parse_qs(urlsplit(self.path).query)
            return self._send_json(200, {"logs": self.agent.request_log.find(
                function=(query.get("function") or [None])[0], request_id=(query.get("request_id") or [None])[0])})
        if path == "/v1/instances":
            return self._send_json(200, {"instances": self.agent.instances()})
        if m := FUNCTION_PATH.match(path):
            return self._send_json(200, self.agent.get_function(m.group(1)).to_json())
        if path == "/v1/images":
            ref = (parse_qs(urlsplit(self.path).query).get("ref") or [""])[0]
            return self._send_json(200, {"ref": ref, "present": bool(ref) and self.agent.driver.has_image(ref)})
        if path == "/v1/access-keys":
            return self._send_json(200, {"access_keys": [k.describe() for k in self.agent.keys.list()]})
        if m := TRIGGERS_PATH.match(path):
            return self._send_json(200, {"triggers": [t.to_json() for t in self.agent.triggers.list(m.group(1))]})
        if m := TRIGGER_PATH.match(path):
            return self._send_json(200, self.agent.triggers.get(m.group(1), m.group(2)).to_json())
        if m := PROVISION_PATH.match(path):
            return self._send_json(200, provision.provision_status(self.agent, m.group(1),
                                                                   provision.qualifier_of(self.path)))
        if m := GPU_POOL_PATH.match(path):
            return self._send_json(200, gpu_pool(self.agent, m.group(1)))
        raise NotFound(f"no route {path}", code="NotFound")

    def _json_body(self) -> dict[str, Any]:
        try:
            value = json.loads(self._body() or b"{}")
        except ValueError as exc:
            raise BadRequest(f"body is not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise BadRequest("body must be a JSON object")
        return value

    def _put(self, request_id: str) -> None:
        self._authorize()
        if self._routed():
            return
        path = urlsplit(self.path).path
        if m := FUNCTION_PATH.match(path):
            return self._send_json(200, self.agent.put_function(m.group(1), self._json_body()).to_json())
        if m := ACCESS_KEY_PATH.match(path):
            try:
                return self._send_json(200, self.agent.keys.put(m.group(1), json.loads(self._body())).describe())
            except ValueError as exc:
                raise BadRequest(f"access key {m.group(1)}: {exc}") from exc
        if m := TRIGGER_PATH.match(path):
            spec = self._json_body()
            return self._send_json(200, self.agent.triggers.put(m.group(1), m.group(2), spec).to_json())
        if m := PROVISION_PATH.match(path):
            return self._send_json(200, provision.put_provision(self.agent, m.group(1),
                                                                provision.qualifier_of(self.path), self._json_body()))
        if m := GPU_POOL_PATH.match(path):
            return self._send_json(200, put_gpu_pool(self.agent, m.group(1), self._json_body()))
        raise NotFound(f"no route {path}", code="NotFound")

    def _delete(self, request_id: str) -> None:
        self._authorize()
        if self._routed():
            return
        path = urlsplit(self.path).path
        if m := FUNCTION_PATH.match(path):
            self.agent.delete_function(m.group(1))
            return self._send(204, b"")
        if m := ACCESS_KEY_PATH.match(path):
            if not self.agent.keys.delete(m.group(1)):
                raise NotFound(f"access key {m.group(1)} is not known on this host", code="AccessKeyNotFound")
            return self._send(204, b"")
        if m := TRIGGER_PATH.match(path):
            self.agent.triggers.delete(m.group(1), m.group(2))
            return self._send(204, b"")
        if m := PROVISION_PATH.match(path):
            provision.delete_provision(self.agent, m.group(1), provision.qualifier_of(self.path))
            return self._send(204, b"")
        if m := GPU_POOL_PATH.match(path):
            if not self.agent.cards.delete_pool(m.group(1)):
                raise NotFound(f"GPU pool {m.group(1)} does not exist here", code="GpuPoolNotFound")
            return self._send(204, b"")
        raise NotFound(f"no route {path}", code="NotFound")


    def _json(self) -> Any:
        try:
            return json.loads(self._body() or b"{}")
        except ValueError as exc:
            raise BadRequest(f"body is not JSON: {exc}") from exc


def put_gpu_pool(agent: Agent, name: str, body: Any) -> dict[str, Any]:
    """PUT /v1/gpu-pools/{name} {gpu_type, cards, functions, mix_mode}: reserves this host's part of a GPU pool."""
    from fc_common.gpu import GpuConfigError, card_type

    if not isinstance(body, dict):
        raise BadRequest("body must be {\"gpu_type\": ..., \"cards\": n, \"functions\": [...], \"mix_mode\": false}")
    try:
        gpu_type = card_type(str(body.get("gpu_type"))).name
    except GpuConfigError as exc:
        raise BadRequest(str(exc)) from None
    cards = body.get("cards")
    if not isinstance(cards, int) or cards < 1:
        raise BadRequest(f"cards must be an integer of 1 or more, got {cards!r}")
    functions = body.get("functions") or []
    if not isinstance(functions, list) or not all(isinstance(f, str) for f in functions):
        raise BadRequest("functions must be a list of function names")
    agent.cards.put_pool(name, gpu_type, cards, functions, bool(body.get("mix_mode")))
    return gpu_pool(agent, name)


def gpu_pool(agent: Agent, name: str) -> dict[str, Any]:
    found = agent.cards.pool_info(name)
    if found is None:
        raise NotFound(f"GPU pool {name} does not exist here", code="GpuPoolNotFound")
    return found


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512


def make_servers(agent: Agent) -> tuple[ThreadingHTTPServer, InvokeServer]:
    cfg = agent.config
    if cfg.control_address not in ("127.0.0.1", "::1", "localhost"):
        raise ValueError("the control API binds to loopback only")
    control = type("BoundControl", (ControlHandler,), {"agent": agent, "token": cfg.token})
    return (_Server((cfg.control_address, cfg.control_port), control),
            InvokeServer((cfg.invoke_address, cfg.invoke_port), agent))
