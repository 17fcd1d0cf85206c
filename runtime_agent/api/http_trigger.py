"""HTTP triggers, served on the invoke port next to FC's invoke API.

URLs. FC gives each HTTP trigger its own host name (``<prefix>-<10 chars>.<region>.fcapp.run``) so that a web app
owns the whole path space: its root-relative links, redirects and cookie paths work unchanged. We do the same:

- **by host name** (``url_internet``): ``http://<label>.<any domain>:<invoke port>/<path>``. The agent routes on the
  first DNS label of the ``Host`` header only (``label = fc_common.triggers.url_label(function, trigger)``), so any
  domain works: point a wildcard record ``*.fc.example.com`` at the hosts (or at a proxy that keeps ``Host``); on
  a machine without DNS, ``curl --resolve`` or ``-H 'Host: <label>.fc.local'`` reach it.
- **by path** (``url_intranet``): ``http://<host address>:<invoke port>/_t/<label>/<path>``, for callers with no DNS
  at all. The prefix is stripped before the function sees the request, and a ``Location`` that starts with ``/``
  gets it back, so redirects stay inside the trigger. ``disableURLInternet: true`` closes the host-name form (403)
  and leaves this one.
- **through a custom domain**: ``/_fd/<label>/<path>``, what the front door (HAProxy) sends a domain's route to
  (``fc_common.triggers.FRONT_DOOR_PREFIX``): stripped like the path form, but the client's URL is ``<path>``, so a
  signature is verified against it and a ``Location`` is not rewritten.

The request reaches the function as FC passes it: web and custom-container functions get the method, path, query,
headers (plus ``x-fc-request-id``, ``x-fc-function-name``, ``x-fc-qualifier``, ``x-fc-trigger-name``) and body as
is, and their answer returns as is (status, every header with its repeats, the body's bytes). Functions on built-in
runtimes get FC's HTTP trigger event (events/http_event.py). A method outside the trigger's ``methods`` is 405
``MethodNotAllowed``; an instance that times out or crashes is 502 with FC's error JSON and ``x-fc-error-type``.
``X-Fc-Invocation-Type: Async`` queues the request in the agent's durable async queue (``enqueue_async``) and
answers 202 at once, as FC does; the task then gets FC's retries, async config destinations and task record. An
event function's task carries FC's HTTP trigger event; a web or custom-container function's task carries the
request itself, sealed (events/http_replay.py), which the worker replays to an instance as it came.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode

from fc_common.triggers import FRONT_DOOR_PREFIX

from ..errors import AgentError, error_body
from ..events import http_event, http_replay
from ..events.http_auth import AuthFailed, JwtAuth, NoSignatureVerifier, SignatureVerifier
from ..events.http_cors import Cors
from ..instances import spec as specs
from ..instances.lifecycle import InitializerFailed, InstanceBroken, InvocationTimeout
from ..state.triggers import TriggerRecord
from ..wire import Message, response_head_pairs

PATH_PREFIX = "/_t/"
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
                        "upgrade", "content-length", "expect"})


@dataclass
class Route:
    record: TriggerRecord
    methods: frozenset[str]
    auth_type: str
    jwt: JwtAuth | None
    internet_disabled: bool
    modified: float
    cors: Cors | None

    @classmethod
    def of(cls, record: TriggerRecord) -> "Route":
        config = record.config
        auth = config.get("authType", "function")
        return cls(record, frozenset(config.get("methods") or ()), auth,
                   JwtAuth.from_config(config.get("authConfig")) if auth == "jwt" else None,
                   bool(config.get("disableURLInternet")), record.last_modified_time,
                   Cors.from_config(config.get("corsConfig")))


class HttpTriggerRouter:
    def __init__(self, agent: Any, verifier: SignatureVerifier | None = None) -> None:
        self.agent = agent
        self.verifier: SignatureVerifier = verifier or NoSignatureVerifier()
        self.enqueue_async: Callable[..., Any] = agent.enqueue_async  # (function, payload, qualifier=, ...)
        self._routes: dict[str, Route] = {}

    def match(self, host: str, target: str) -> tuple[Route, str, str, bool] | None:
        """(route, target for the function, path prefix, by host name) or None: not a trigger's request."""
        by_label = self.agent.triggers.by_label
        if not by_label:
            return None
        for form in (PATH_PREFIX, FRONT_DOOR_PREFIX):
            if target.startswith(form):
                rest = target[len(form):]
                cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
                record = by_label.get(rest[:cut])
                if record is not None:
                    forwarded = rest[cut:]
                    forwarded = forwarded if forwarded.startswith("/") else "/" + forwarded
                    # through a custom domain the client's URL is the forwarded one (fc_common.triggers)
                    prefix = form + rest[:cut] if form == PATH_PREFIX else ""
                    return self._route(record), forwarded, prefix, False
        label, dot, _ = host.partition(".")
        record = by_label.get(label.lower()) if dot else None
        return (self._route(record), target, "", True) if record is not None else None

    def _route(self, record: TriggerRecord) -> Route:
        route = self._routes.get(record.spec["url_label"])
        if route is None or route.modified != record.last_modified_time or route.record is not record:
            route = self._routes[record.spec["url_label"]] = Route.of(record)
        return route

    def serve(self, request: Message, matched: tuple[Route, str, str, bool], client_ip: str, request_id: str,
              close: bool) -> bytes:
        route, target, prefix, by_host = matched
        try:
            status, pairs, body = self._serve(request, route, target, prefix, by_host, client_ip, request_id)
        except AuthFailed as exc:
            status, pairs, body = exc.status, [("content-type", "application/json")], error_body(
                AgentError(exc.message, code=exc.code), request_id)
        except AgentError as exc:
            status, pairs, body = exc.status, [("content-type", "application/json")], error_body(exc, request_id)
        if route.cors is not None and not Cors.is_preflight(request.start[0], request.headers):
            pairs = route.cors.answer(request.headers.get("origin"), pairs)
        pairs.append(("x-fc-request-id", request_id))
        if request.start[0] == "HEAD":
            return response_head_pairs(status, pairs, None, close=close)
        return response_head_pairs(status, pairs, len(body), close=close) + body

    def _serve(self, request: Message, route: Route, target: str, prefix: str, by_host: bool, client_ip: str,
               request_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
        record = route.record
        method = request.start[0]
        if by_host and route.internet_disabled:
            raise AuthFailed(f"the host-name URL of trigger {record.name} is disabled (disableURLInternet); use "
                             "its intranet URL", 403, "AccessDenied")
        if route.cors is not None and Cors.is_preflight(method, request.headers):
            return 204, route.cors.preflight(request.headers, route.methods), b""  # before auth, as browsers ask
        if method not in route.methods:
            return 405, [("allow", ", ".join(sorted(route.methods))), ("content-type", "application/json")], \
                error_body(AgentError(f"method {method} is not allowed by trigger {record.name} (methods: "
                                      f"{', '.join(sorted(route.methods))})", code="MethodNotAllowed"), request_id)
        path, _, query = target.partition("?")
        headers = dict(request.headers)
        pairs = [p for p in request.header_pairs() if p[0].lower() not in HOP_BY_HOP]
        if route.auth_type == "function":
            self.verifier.verify(method, prefix + path, query, headers, request.body, record.function)
        elif route.jwt is not None and route.jwt.applies_to(path):
            claims = route.jwt.verify(route.jwt.find_token(headers, query, request.body))
            pairs, query = _pass_claims(route.jwt, claims, pairs, query)
            target = path + ("?" + query if query else "")
        asynchronous = headers.get("x-fc-invocation-type", "").lower() == "async"
        pool = self.agent.pool_of(record.function)
        if specs.is_web(pool.record.spec):
            head = _instance_head(record, method, target, pairs, request.body, request_id)
            if asynchronous:  # the client's request itself is kept, sealed, and replayed by the async worker
                kept = http_replay.seal(self.agent.config.token, head, request.body)
                return self._enqueue(record, kept, headers.get("x-fc-async-task-id") or None, request_id)
            return self._forward(pool, record, method, target, prefix, head, request.body)
        event = http_event.build_event(method=method, raw_path=path, query=query, header_pairs=pairs,
                                       body=request.body, source_ip=client_ip, request_id=request_id,
                                       domain=headers.get("host", ""), label=record.spec["url_label"])
        if asynchronous:
            return self._enqueue(record, event, headers.get("x-fc-async-task-id") or None, request_id)
        result = self.agent.invoke(record.function, event, request_id=request_id, log_tail=False,
                                   qualifier=record.spec.get("qualifier") or "LATEST")
        if "x-fc-error-type" in result.headers:
            return 502, [("content-type", "application/json"),
                         ("x-fc-error-type", result.headers["x-fc-error-type"])], result.body
        try:
            return http_event.read_answer(result.body)
        except http_event.MalformedAnswer as exc:
            raise AgentError(f"function {record.function} answered its HTTP trigger with a malformed response: "
                             f"{exc}", code="FunctionResponseMalformed") from exc

    def _enqueue(self, record: TriggerRecord, event: bytes, task_id: str | None, request_id: str
                 ) -> tuple[int, list[tuple[str, str]], bytes]:
        """202 once the event is durable (FC's errors otherwise: 128 KB, a bad or repeated task id). The task id
        is answered when the function is a task function (async_task), as the invoke API's 202."""
        qualifier = record.spec.get("qualifier") or "LATEST"
        _, task = self.enqueue_async(record.function, event, qualifier=qualifier, task_id=task_id,
                                     request_id=request_id)
        tasks = self.agent.async_invoker.config(record.function, qualifier).async_task
        return 202, [("x-fc-async-task-id", task)] if tasks else [], b""

    def _forward(self, pool: Any, record: TriggerRecord, method: str, target: str, prefix: str, head: bytes,
                 body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """The client's request, as is, to an instance of a web function; its answer, as is, back."""
        spec = pool.record.spec
        timeout = float(spec.get("timeout", 3))
        counters = self.agent.metrics.of(record.function)
        counters.invocations.inc()
        started = time.perf_counter()
        try:
            inst, kind = pool.acquire()
        except InitializerFailed as exc:
            return 502, [("content-type", "application/json"), ("x-fc-error-type", "UnhandledInvocationError")], \
                exc.body
        counters.starts[kind].inc()
        recycle = False
        try:
            reply = inst.call(target, body, {}, timeout, method=method, head=head)
        except (InvocationTimeout, InstanceBroken) as exc:
            recycle = True
            message = (f"Function timed out after {timeout:g} seconds" if isinstance(exc, InvocationTimeout)
                       else f"Process exited unexpectedly before completing request: {exc}")
            return 502, [("content-type", "application/json"), ("x-fc-error-type", "UnhandledInvocationError"),
                         ("x-fc-instance-id", inst.id)], json.dumps({"errorMessage": message, "stackTrace": [],
                                                                      "errorType": type(exc).__name__}).encode()
        finally:
            pool.release(inst, recycle=recycle)
        counters.duration.observe(time.perf_counter() - started)
        out = [(k, v) for k, v in _pairs(reply.lines) if k.lower() not in HOP_BY_HOP
               or (method == "HEAD" and k.lower() == "content-length")]  # HEAD: the length GET would have
        if prefix:  # keep root-relative redirects inside the path-form URL
            out = [(k, prefix + v if k.lower() == "location" and v.startswith("/") and not v.startswith("//")
                    else v) for k, v in out]
        out.append(("x-fc-instance-id", inst.id))
        return reply.status, out, reply.body


def _instance_head(record: TriggerRecord, method: str, target: str, pairs: list[tuple[str, str]], body: bytes,
                   request_id: str) -> bytes:
    """The request head a web function's instance gets: the client's headers but its x-fc-* ones, then the
    platform's own (request id, function, qualifier, trigger)."""
    fc_headers = [("x-fc-request-id", request_id), ("x-fc-function-name", record.function),
                  ("x-fc-qualifier", record.spec.get("qualifier") or "LATEST"), ("x-fc-trigger-name", record.name)]
    lines = [f"{method} {target} HTTP/1.1", f"content-length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in pairs if not k.lower().startswith("x-fc-")]
    lines += [f"{k}: {v}" for k, v in fc_headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _pairs(lines: list[str] | None) -> list[tuple[str, str]]:
    out = []
    for line in lines or ():
        name, _, value = line.partition(":")
        out.append((name.strip(), value.strip()))
    return out


def _pass_claims(jwt: JwtAuth, claims: dict[str, Any], pairs: list[tuple[str, str]], query: str
                 ) -> tuple[list[tuple[str, str]], str]:
    """FC's claimPassBy: claims copied into the request as headers, query parameters or cookies."""
    params = parse_qsl(query, keep_blank_values=True)
    query_changed = False
    for pos, claim, param in jwt.claim_pass_by:
        if claim not in claims or not param:
            continue
        value = claims[claim] if isinstance(claims[claim], str) else json.dumps(claims[claim])
        if pos == "header":
            pairs = [p for p in pairs if p[0].lower() != param.lower()] + [(param, value)]
        elif pos == "query":
            params = [p for p in params if p[0] != param] + [(param, value)]
            query_changed = True
        elif pos == "cookie":
            pairs = pairs + [("cookie", f"{param}={value}")]
    return pairs, urlencode(params) if query_changed else query
