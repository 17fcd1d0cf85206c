"""The invoke API, shaped like Function Compute's: ``POST /2023-03-30/functions/{name}/invocations``.

A thread per connection, as before, but on the lean wire (``wire``): the head is parsed with ``bytes.split``, the
answer leaves in one write, and the connection stays open for the next request. Every platform error leaves in FC's
shape (``Code``, ``Message``, ``RequestId``) through ``errors.error_body``."""

from __future__ import annotations

import logging
import socket
import socketserver
from urllib.parse import parse_qs, unquote

from ..errors import AgentError, BadRequest, NotFound, error_body
from ..service import Agent, InvokeResult, new_request_id
from ..wire import BodyTooLarge, PeerClosed, Wire, WireError, response_head
from . import tasks

log = logging.getLogger("fc-agent")

PREFIX, SUFFIX = "/2023-03-30/functions/", "/invocations"  # POST {PREFIX}{name}{SUFFIX}[?qualifier=...]
MAX_SYNC_PAYLOAD = 32 * 1024 * 1024
_JSON = {"content-type": "application/json"}


class _Connection(socketserver.BaseRequestHandler):
    agent: Agent
    # The task routes' authorization hook (see api/tasks.py); the request verifier replaces it.
    authorize: tasks.Authorize = staticmethod(tasks.allow_all)

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wire = Wire(sock)
        try:
            while self._serve_one(wire):
                pass
        except OSError:
            pass  # the client went away
        finally:
            wire.close()

    def _serve_one(self, wire: Wire) -> bool:
        """Answers one request; False when the connection should close."""
        try:
            request = wire.read_request(MAX_SYNC_PAYLOAD)
        except PeerClosed:
            return False
        except BodyTooLarge as exc:
            request_id = exc.headers.get("x-fc-request-id") or new_request_id()
            self._reply(wire, BadRequest(f"payload of {exc.size} bytes exceeds the 32 MB limit of a sync "
                                         f"invocation"), request_id, close=True)
            return False
        except WireError as exc:
            self._reply(wire, BadRequest(f"malformed request: {exc}"), new_request_id(), close=True)
            return False
        headers = request.headers
        request_id = headers.get("x-fc-request-id") or new_request_id()
        close = not request.keep_alive
        method, target = request.start[0], request.start[1]
        path = target.partition("?")[0]
        try:
            if tasks.matches(path):
                status, body = tasks.serve(self.agent.async_invoker, method, target, headers, request.body,
                                           self.authorize)
                result = InvokeResult(status, {**_JSON, "x-fc-request-id": request_id}, body)
            elif method != "POST" or not (path.startswith(PREFIX) and path.endswith(SUFFIX)) or "/" in (
                    name := path[len(PREFIX):-len(SUFFIX)]) or not name:
                raise NotFound(f"no route {method} {path}", code="NotFound")
            elif headers.get("x-fc-invocation-type", "").lower() == "async":
                result = self._enqueue(unquote(name), target, request.body, headers, request_id)
            else:
                result = self.agent.invoke(
                    unquote(name), request.body, request_id=request_id,
                    log_tail=headers.get("x-fc-log-type") == "Tail",
                )
        except AgentError as exc:
            self._reply(wire, exc, request_id, close=close)
            return not close
        except Exception:  # noqa: BLE001 - the funnel: nothing unexpected reaches the client as a traceback
            log.exception("unexpected error in %s %s", method, target)
            self._reply(wire, AgentError("internal error in the agent; see its log"), request_id, close=close)
            return not close
        headers = {"content-type": "application/octet-stream", **result.headers}
        wire.send(response_head(result.status, headers, len(result.body), close=close) + result.body)
        return not close

    def _enqueue(self, name: str, target: str, body: bytes, headers: dict[str, str], request_id: str
                 ) -> InvokeResult:
        """x-fc-invocation-type: Async: 202 once the event is durable (FC's errors at once otherwise)."""
        qualifier = (parse_qs(target.partition("?")[2]).get("qualifier") or ["LATEST"])[-1]
        _, task_id = self.agent.enqueue_async(name, body, request_id=request_id, qualifier=qualifier,
                                              task_id=headers.get("x-fc-async-task-id") or None)
        return InvokeResult(202, {"x-fc-request-id": request_id, "x-fc-async-task-id": task_id}, b"")

    @staticmethod
    def _reply(wire: Wire, exc: AgentError, request_id: str, *, close: bool) -> None:
        body = error_body(exc, request_id)
        wire.send(response_head(exc.status, {**_JSON, "x-fc-request-id": request_id}, len(body), close=close) + body)


class InvokeServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512
    block_on_close = False

    def __init__(self, address: tuple[str, int], agent: Agent) -> None:
        handler = type("BoundInvokeConnection", (_Connection,), {"agent": agent})
        super().__init__(address, handler)
