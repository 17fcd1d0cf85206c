"""The agent's two HTTP faces.

- Control API (loopback only, bearer token; the provider reaches it through an SSH tunnel):
  ``GET /healthz``, ``GET /v1/info``, ``GET|PUT|DELETE /v1/functions/{name}``, ``GET /v1/functions``,
  ``GET /v1/instances``, ``GET /v1/logs?function=&request_id=``, ``GET /metrics``,
  ``GET /v1/access-keys``, ``PUT|DELETE /v1/access-keys/{id}`` (the keys the invoke API accepts),
  ``GET /v1/images?ref=`` and ``POST /v1/images`` {ref, file} (runtime images shipped by the Fleet).
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
from ..service import Agent, new_request_id
from .invoke import InvokeServer

log = logging.getLogger("fc-agent")

FUNCTION_PATH = re.compile(r"^/v1/functions/([^/]+)$")
ACCESS_KEY_PATH = re.compile(r"^/v1/access-keys/([^/]+)$")
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

    def _dispatch(self, route: Callable[[str], None]) -> None:
        request_id = self.headers.get("x-fc-request-id") or new_request_id()
        try:
            route(request_id)
        except AgentError as exc:
            self._send_error(exc, request_id)
        except Exception:  # noqa: BLE001 - the funnel: nothing unexpected reaches the client as a traceback
            log.exception("unexpected error in %s %s", self.command, self.path)
            self._send_error(AgentError("internal error in the agent; see its log"), request_id)


class ControlHandler(_Handler):
    token: str

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

    def _post(self, request_id: str) -> None:
        self._authorize()
        if urlsplit(self.path).path == "/v1/images":
            try:
                body = json.loads(self._body())
                ref, file_name = str(body["ref"]), str(body["file"])
            except (ValueError, KeyError, TypeError) as exc:
                raise BadRequest(f"POST /v1/images takes {{ref, file}}: {exc}") from exc
            return self._send_json(200, self.agent.load_image(ref, file_name))
        raise NotFound(f"no route {self.path}", code="NotFound")

    def _get(self, request_id: str) -> None:
        self._authorize()
        path = urlsplit(self.path).path
        if path == "/healthz":
            return self._send_json(200, {"status": "ok"})
        if path == "/v1/info":
            return self._send_json(200, {"host_name": self.agent.config.host_name, "version": __version__,
                                         "invoke_port": self.agent.config.invoke_port, **self.agent.room.usage()})
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
        raise NotFound(f"no route {path}", code="NotFound")

    def _put(self, request_id: str) -> None:
        self._authorize()
        path = urlsplit(self.path).path
        if m := FUNCTION_PATH.match(path):
            try:
                spec = json.loads(self._body() or b"{}")
            except ValueError as exc:
                raise BadRequest(f"body is not JSON: {exc}") from exc
            return self._send_json(200, self.agent.put_function(m.group(1), spec).to_json())
        if m := ACCESS_KEY_PATH.match(path):
            try:
                return self._send_json(200, self.agent.keys.put(m.group(1), json.loads(self._body())).describe())
            except ValueError as exc:
                raise BadRequest(f"access key {m.group(1)}: {exc}") from exc
        raise NotFound(f"no route {path}", code="NotFound")

    def _delete(self, request_id: str) -> None:
        self._authorize()
        path = urlsplit(self.path).path
        if m := FUNCTION_PATH.match(path):
            self.agent.delete_function(m.group(1))
            return self._send(204, b"")
        if m := ACCESS_KEY_PATH.match(path):
            if not self.agent.keys.delete(m.group(1)):
                raise NotFound(f"access key {m.group(1)} is not known on this host", code="AccessKeyNotFound")
            return self._send(204, b"")
        raise NotFound(f"no route {path}", code="NotFound")


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
