"""The invoke API, shaped like Function Compute's: ``POST /2023-03-30/functions/{name}/invocations``.

A thread per connection, as before, but on the lean wire (``wire``): the head is parsed with ``bytes.split``, the
answer leaves in one write, and the connection stays open for the next request. Every platform error leaves in FC's
shape (``Code``, ``Message``, ``RequestId``) through ``errors.error_body``."""

from __future__ import annotations

import json
import logging
import socket
import socketserver
from urllib.parse import unquote

from ..errors import AgentError, BadRequest, NotFound, Unauthorized, error_body
from ..events.timer import CLAIM_PATH
from ..service import Agent, new_request_id
from ..wire import BodyTooLarge, PeerClosed, Wire, WireError, response_head
from .http_trigger import HttpTriggerRouter

log = logging.getLogger("fc-agent")

PREFIX, SUFFIX = "/2023-03-30/functions/", "/invocations"  # POST {PREFIX}{name}{SUFFIX}[?qualifier=...]
MAX_SYNC_PAYLOAD = 32 * 1024 * 1024
_JSON = {"content-type": "application/json"}
S3_EVENTS_PATH = "/_fc/s3-events/"  # + token: an S3 server's webhook (events/oss.py)


class _Connection(socketserver.BaseRequestHandler):
    agent: Agent
    triggers: HttpTriggerRouter

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
        if (matched := self.triggers.match(headers.get("host", ""), target)) is not None:
            try:
                wire.send(self.triggers.serve(request, matched, self.client_address[0], request_id, close))
            except Exception:  # noqa: BLE001 - the funnel, as below
                log.exception("unexpected error in HTTP trigger %s %s", method, target)
                self._reply(wire, AgentError("internal error in the agent; see its log"), request_id, close=True)
                return False
            return not close
        path = target.partition("?")[0]
        try:
            if path == CLAIM_PATH and method == "POST":
                return self._timer_claim(wire, request.body, request_id, close)
            if path.startswith(S3_EVENTS_PATH) and method == "POST":
                return self._s3_events(wire, path[len(S3_EVENTS_PATH):], request.body, request_id, close)
            if method != "POST" or not (path.startswith(PREFIX) and path.endswith(SUFFIX)) or "/" in (
                    name := path[len(PREFIX):-len(SUFFIX)]) or not name:
                raise NotFound(f"no route {method} {path}", code="NotFound")
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

    def _timer_claim(self, wire: Wire, body: bytes, request_id: str, close: bool) -> bool:
        """A peer agent claims a timer tick (events/timer.py): answers the tick's holder here."""
        try:
            holder = self.agent.timers.grant(json.loads(body))
        except (ValueError, KeyError, TypeError) as exc:
            raise BadRequest(f"malformed timer claim: {exc}") from exc
        except PermissionError as exc:
            raise Unauthorized(str(exc)) from exc
        if holder is None:
            raise NotFound("this host holds no such timer trigger", code="TriggerNotFound")
        answer = json.dumps({"holder": holder}).encode()
        wire.send(response_head(200, {**_JSON, "x-fc-request-id": request_id}, len(answer), close=close) + answer)
        return not close

    def _s3_events(self, wire: Wire, token: str, body: bytes, request_id: str, close: bool) -> bool:
        """S3 event records posted by an S3 server's webhook; the token is an OSS trigger's peer key."""
        try:
            payload = json.loads(body or b"{}")
        except ValueError as exc:
            raise BadRequest(f"S3 event payload is not JSON: {exc}") from exc
        records = payload.get("Records") if isinstance(payload, dict) else None
        if records:  # a server's start-up test event has none and is always welcome
            if not self.agent.oss.accepts(unquote(token)):
                raise Unauthorized("unknown S3 webhook token")
            delivered = self.agent.oss.on_records([r for r in records if isinstance(r, dict)])
        else:
            delivered = 0
        answer = json.dumps({"delivered": delivered}).encode()
        wire.send(response_head(200, {**_JSON, "x-fc-request-id": request_id}, len(answer), close=close) + answer)
        return not close

    @staticmethod
    def _reply(wire: Wire, exc: AgentError, request_id: str, *, close: bool) -> None:
        body = error_body(exc, request_id)
        wire.send(response_head(exc.status, {**_JSON, "x-fc-request-id": request_id}, len(body), close=close) + body)


class InvokeServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512
    block_on_close = False

    def __init__(self, address: tuple[str, int], agent: Agent, signature_verifier=None) -> None:
        """``signature_verifier``: checks FC's request signature for HTTP triggers of authType function (the
        invoke API's access-key verifier); without one such triggers refuse every request."""
        router = HttpTriggerRouter(agent, signature_verifier)
        handler = type("BoundInvokeConnection", (_Connection,), {"agent": agent, "triggers": router})
        super().__init__(address, handler)
