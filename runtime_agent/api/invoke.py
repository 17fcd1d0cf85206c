"""The invoke API, shaped like Function Compute's, every request signed (``auth``):

    POST /2023-03-30/functions/{name}/invocations[?qualifier=]   InvokeFunction   fc:InvokeFunction
    GET  /2023-03-30/functions/{name}                             GetFunction      fc:GetFunction
    GET  /2023-03-30/functions[?prefix=&limit=&nextToken=]        ListFunctions    fc:ListFunctions

HTTP triggers (``http_trigger``: by host name or under ``/_t/``) are matched first and follow their own auth type;
the fleet's own requests (``peer``: timer claims, S3 webhooks) carry their own tokens.

A thread per connection on the lean wire (``wire``): the head is parsed with ``bytes.split``, the answer leaves in
one write, and the connection stays open for the next request. Every platform error leaves in FC's shape
(``Code``, ``Message``, ``RequestId``) through ``errors.error_body``.

Guards (the agent config's ``head_timeout_seconds``, ``keepalive_timeout_seconds``, ``max_connections``): a new
connection must send its first head within the head timeout, a kept-alive one may idle between requests for the
keep-alive timeout, and malformed framing is answered 400 and closed (``wire``). Threads and connections are one to
one, so ``max_connections`` bounds the threads too: a connection past it is answered 503 at once, on the accepting
thread, and closed, while the open ones keep being served."""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
from urllib.parse import parse_qs, parse_qsl, unquote

from fc_common.naming import function_arn
from fc_common.policy import ALL_FUNCTIONS

from ..errors import AgentError, BadRequest, error_body
from ..invocation import InvokeResult, new_request_id
from ..service import Agent
from ..wire import BodyTooLarge, Message, PeerClosed, Wire, WireError, response_head
from . import fcread, peer, tasks
from .auth import Authenticator, FunctionAuthType
from .http_trigger import HttpTriggerRouter

log = logging.getLogger("fc-agent")

FUNCTIONS = "/2023-03-30/functions"
PREFIX, SUFFIX = FUNCTIONS + "/", "/invocations"  # POST {PREFIX}{name}{SUFFIX}[?qualifier=...]
# For load balancers in front of the fleet (the front door's active health checks): answers without a token and
# tells nothing but that this agent serves invocations.
HEALTH_PATH, HEALTH_BODY = "/healthz", b'{"status": "ok"}'
MAX_SYNC_PAYLOAD = 32 * 1024 * 1024
_JSON = {"content-type": "application/json"}


class _Connection(socketserver.BaseRequestHandler):
    agent: Agent
    auth: Authenticator
    triggers: HttpTriggerRouter

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wire = Wire(sock)
        config = self.agent.config
        idle = config.head_timeout_seconds  # the first request must come as soon as a head would
        try:
            while self._serve_one(wire, idle, config.head_timeout_seconds):
                idle = config.keepalive_timeout_seconds
        except OSError:
            pass  # the client went away, or stalled inside a body past the keep-alive timeout
        finally:
            wire.close()

    def _serve_one(self, wire: Wire, idle: float, head_timeout: float) -> bool:
        """Answers one request; False when the connection should close."""
        try:
            request = wire.read_request(MAX_SYNC_PAYLOAD, idle_timeout=idle, head_timeout=head_timeout)
        except PeerClosed:
            return False
        except BodyTooLarge as exc:
            request_id = exc.headers.get("x-fc-request-id") or new_request_id()
            self._reply(wire, BadRequest(f"payload size exceeds maximum allowed size ({exc.limit} bytes): "
                                         f"{exc.size} bytes", code="EntityTooLarge"), request_id, close=True)
            return False
        except WireError as exc:
            self._reply(wire, BadRequest(f"malformed request: {exc}"), new_request_id(), close=True)
            return False
        request_id = request.headers.get("x-fc-request-id") or new_request_id()
        close = not request.keep_alive
        if (matched := self.triggers.match(request.headers.get("host", ""), request.start[1])) is not None:
            try:
                wire.send(self.triggers.serve(request, matched, self.client_address[0], request_id, close))
            except Exception:  # noqa: BLE001 - the funnel, as below
                log.exception("unexpected error in HTTP trigger %s %s", request.start[0], request.start[1][:200])
                self._reply(wire, AgentError("internal error in the agent; see its log"), request_id, close=True)
                return False
            return not close
        method, path = request.start[0], request.start[1].partition("?")[0]
        if method in ("GET", "HEAD") and path == HEALTH_PATH:
            body = HEALTH_BODY if method == "GET" else b""
            wire.send(response_head(200, _JSON, len(HEALTH_BODY), close=close) + body)
            return not close
        try:
            result = self._route(request, request_id)
        except AgentError as exc:
            self._reply(wire, exc, request_id, close=close)
            return not close
        except Exception:  # noqa: BLE001 - the funnel: nothing unexpected reaches the client as a traceback
            log.exception("unexpected error in %s %s", request.start[0], request.start[1][:200])
            self._reply(wire, AgentError("internal error in the agent; see its log"), request_id, close=close)
            return not close
        headers = {"content-type": "application/octet-stream", **result.headers}
        wire.send(response_head(result.status, headers, len(result.body), close=close) + result.body)
        return not close

    def _route(self, request: Message, request_id: str) -> InvokeResult:
        method, target = request.start[0], request.start[1]
        path, _, query_string = target.partition("?")
        if method == "POST" and peer.is_peer_path(path):
            return peer.serve(self.agent, path, request.body, request_id)
        if tasks.matches(path):
            status, body = tasks.serve(self.agent.async_invoker, method, target, request.headers, request.body,
                                       self._authorize_task)
            return InvokeResult(status, {**_JSON, "x-fc-request-id": request_id}, body)
        if path.startswith(PREFIX) and path.endswith(SUFFIX) and method == "POST":
            name = path[len(PREFIX):-len(SUFFIX)]
            if name and "/" not in name:
                key = self.auth.verify(method, target, request.headers, request.body)
                name = unquote(name)
                self.auth.authorize(key, "fc:InvokeFunction", function_arn(name))
                if request.headers.get("x-fc-invocation-type", "").lower() == "async":
                    return self._enqueue(name, query_string, request.body, request.headers, request_id)
                return self.agent.invoke(name, request.body, request_id=request_id,
                                         log_tail=request.headers.get("x-fc-log-type") == "Tail",
                                         qualifier=_qualifier(query_string))
        if method == "GET" and (path == FUNCTIONS or path.startswith(PREFIX) and "/" not in path[len(PREFIX):]):
            key = self.auth.verify(method, target, request.headers, request.body)
            if path == FUNCTIONS:
                self.auth.authorize(key, "fc:ListFunctions", ALL_FUNCTIONS)
                page, token = fcread.list_page(self.agent.list_functions(), dict(parse_qsl(query_string)))
                answer = {"functions": [fcread.function_json(r) for r in page],
                          **({"nextToken": token} if token else {})}
            else:
                name = unquote(path[len(PREFIX):])
                self.auth.authorize(key, "fc:GetFunction", function_arn(name))
                answer = fcread.function_json(self.agent.get_function(name))
            return InvokeResult(200, {**_JSON, "x-fc-request-id": request_id}, json.dumps(answer).encode())
        raise BadRequest(f"'{method} {path[:200]}' is not supported", code="PathNotSupported")

    def _authorize_task(self, headers: dict[str, str], method: str, target: str, body: bytes, action: str,
                        resource: str) -> None:
        """The task routes' check (api/tasks.py): signed like every request here, then the key's policy."""
        self.auth.authorize(self.auth.verify(method, target, headers, body), action, resource)

    def _enqueue(self, name: str, query_string: str, body: bytes, headers: dict[str, str], request_id: str
                 ) -> InvokeResult:
        """x-fc-invocation-type: Async: 202 once the event is durable (FC's errors at once otherwise)."""
        _, task_id = self.agent.enqueue_async(name, body, request_id=request_id,
                                              qualifier=_qualifier(query_string) or "LATEST",
                                              task_id=headers.get("x-fc-async-task-id") or None)
        return InvokeResult(202, {"x-fc-request-id": request_id, "x-fc-async-task-id": task_id}, b"")

    @staticmethod
    def _reply(wire: Wire, exc: AgentError, request_id: str, *, close: bool) -> None:
        body = error_body(exc, request_id)
        wire.send(response_head(exc.status, {**_JSON, "x-fc-request-id": request_id}, len(body), close=close) + body)


def _qualifier(query: str) -> str | None:
    """``?qualifier=`` (LATEST, a version id or an alias name); None when absent."""
    if not query:
        return None
    if query.startswith("qualifier=") and not any(c in query for c in "&%+"):
        return query[10:] or None  # the common form, without parse_qs's cost (a few microseconds)
    values = parse_qs(query).get("qualifier")
    return values[0] if values else None


class InvokeServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512
    block_on_close = False

    def __init__(self, address: tuple[str, int], agent: Agent) -> None:
        auth = Authenticator(agent.keys)
        # authType "function" on HTTP triggers: FC's signature, verified as this API verifies it
        triggers = HttpTriggerRouter(agent, FunctionAuthType(auth))
        handler = type("BoundInvokeConnection", (_Connection,), {"agent": agent, "auth": auth, "triggers": triggers})
        self._agent = agent
        self._open = 0
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    @property
    def open_connections(self) -> int:
        return self._open

    def process_request(self, request: socket.socket, client_address: tuple) -> None:
        limit = self._agent.config.max_connections
        with self._open_lock:
            full = self._open >= limit
            if not full:
                self._open += 1
        if not full:
            return super().process_request(request, client_address)
        body = error_body(AgentError(
            f"host {self._agent.config.host_name} has {limit} open client connections, the most it takes "
            "(max_connections); retry later or reuse a kept-alive connection", code="TooManyConnections"),
            new_request_id())
        try:
            request.settimeout(1.0)  # never let one refused client hold the accepting thread
            request.sendall(response_head(503, _JSON, len(body), close=True) + body)
        except OSError:
            pass
        self.shutdown_request(request)

    def process_request_thread(self, request: socket.socket, client_address: tuple) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open -= 1
