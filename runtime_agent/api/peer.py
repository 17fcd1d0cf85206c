"""Requests on the invoke port that come from the fleet's own machinery rather than from callers, each
authenticated by its own token instead of an access key's signature:

    POST /_fc/timer-claims          a peer agent claims a timer tick (events/timer.py)
    POST /_fc/s3-events/{token}     an S3 server's webhook posts event records (events/oss.py)
    POST /_fc/oss-claims            a peer agent claims the delivery of an object event (events/oss_claims.py)
    POST /_fc/provision-samples     a peer agent posts its provision samples to the decider (events/provision_fleet.py)
"""

from __future__ import annotations

import json
from typing import Any, Callable
from urllib.parse import unquote

from ..errors import BadRequest, NotFound, Unauthorized
from ..events.oss_claims import CLAIM_PATH as OSS_CLAIM_PATH
from ..events.provision_fleet import SAMPLES_PATH
from ..events.timer import CLAIM_PATH
from ..invocation import InvokeResult

S3_EVENTS_PATH = "/_fc/s3-events/"  # + token: an S3 server's webhook (events/oss.py)
_JSON = {"content-type": "application/json"}


def is_peer_path(path: str) -> bool:
    return path in (CLAIM_PATH, OSS_CLAIM_PATH, SAMPLES_PATH) or path.startswith(S3_EVENTS_PATH)


def serve(agent: Any, path: str, body: bytes, request_id: str) -> InvokeResult:
    if path in (CLAIM_PATH, OSS_CLAIM_PATH):
        answer: dict[str, Any] = {"holder": _exchange(agent, path, body)}
    elif path == SAMPLES_PATH:
        answer = _exchange(agent, path, body)
    else:
        answer = {"delivered": _s3_events(agent, path[len(S3_EVENTS_PATH):], body)}
    return InvokeResult(200, {**_JSON, "x-fc-request-id": request_id}, json.dumps(answer).encode())


# The peer exchanges (events/peerclaim.py posts them): what a malformed body is called, how this host answers one
# (None: it holds no such thing; PermissionError: a bad MAC or a stranger), and the 404 for None.
_EXCHANGES: dict[str, tuple[str, Callable[[Any, Any], Any], str, str]] = {
    CLAIM_PATH: ("timer claim", lambda agent, request: agent.timers.grant(request),
                 "this host holds no such timer trigger", "TriggerNotFound"),
    OSS_CLAIM_PATH: ("OSS event claim",
                     lambda agent, request: agent.oss.claims.grant(request, agent.oss.get(str(request["trigger_id"]))),
                     "this host holds no such OSS trigger", "TriggerNotFound"),
    SAMPLES_PATH: ("provision samples", lambda agent, request: agent.provision.fleet.receive(request),
                   "this host holds no such provision config", "ProvisionConfigNotFound"),
}


def _exchange(agent: Any, path: str, body: bytes) -> Any:
    what, answer, missing, code = _EXCHANGES[path]
    try:
        found = answer(agent, json.loads(body))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # not JSON, or not the exchange's shape
        raise BadRequest(f"malformed {what}: {exc}") from exc
    except PermissionError as exc:
        raise Unauthorized(str(exc)) from exc
    if found is None:
        raise NotFound(missing, code=code)
    return found


def _s3_events(agent: Any, token: str, body: bytes) -> int:
    """S3 event records posted by an S3 server's webhook; the token is an OSS trigger's peer key."""
    try:
        payload = json.loads(body or b"{}")
    except ValueError as exc:
        raise BadRequest(f"S3 event payload is not JSON: {exc}") from exc
    records = payload.get("Records") if isinstance(payload, dict) else None
    if not records:  # a server's start-up test event has none and is always welcome
        return 0
    if not agent.oss.accepts(unquote(token)):
        raise Unauthorized("unknown S3 webhook token")
    return agent.oss.on_records([r for r in records if isinstance(r, dict)])
