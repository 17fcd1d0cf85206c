"""FC's async task API (2023-03-30), served on the invoke port beside InvokeFunction and on the control API (for
the ``fc tasks`` CLI, behind the bearer token):

    GET /2023-03-30/functions/{name}/async-tasks                  ListAsyncTasks
        ?prefix= &status= &qualifier= &startedTimeBegin= &startedTimeEnd= (ms) &sortOrderByTime=asc|desc
        &limit= (1-100, default 20) &nextToken= &includePayload=true|false      -> {tasks: [...], nextToken}
    GET /2023-03-30/functions/{name}/async-tasks/{taskId}         GetAsyncTask  -> AsyncTask
    PUT /2023-03-30/functions/{name}/async-tasks/{taskId}/stop    StopAsyncTask -> 200, empty body

Authorization hook: every route calls ``authorize(request_headers, method, target, body, action, resource)``
before it acts, with FC's action name (``fc:ListAsyncTasks``, ``fc:GetAsyncTask``, ``fc:StopAsyncTask``) and the
function's ARN, exactly as the invoke route does with ``fc:InvokeFunction``. The default allows everything (the
state before request signing); the signature verifier and policy check plug in there.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs, unquote

from fc_common.asyncrules import function_arn

from ..errors import BadRequest
from ..events.asyncinvoke import AsyncInvoker
from ..events.states import TaskStatus

TASKS = re.compile(r"^/2023-03-30/functions/([^/]+)/async-tasks(?:/([^/]+)(/stop)?)?$")

# (headers, method, target, body, action, resource ARN) -> None, or raises an AgentError (401/403 in FC's shape)
Authorize = Callable[[Mapping[str, str], str, str, bytes, str, str], None]


def allow_all(headers: Mapping[str, str], method: str, target: str, body: bytes, action: str, resource: str) -> None:
    return None


def matches(path: str) -> bool:
    return TASKS.match(path) is not None


def serve(invoker: AsyncInvoker, method: str, target: str, headers: Mapping[str, str], body: bytes,
          authorize: Authorize = allow_all) -> tuple[int, bytes] | None:
    """(status, JSON body) for a task route; None when ``target`` is not one."""
    path, _, query = target.partition("?")
    m = TASKS.match(path)
    if m is None:
        return None
    function, task_id, stop = unquote(m.group(1)), m.group(2) and unquote(m.group(2)), m.group(3)
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    if task_id is None and method == "GET":
        authorize(headers, method, target, body, "fc:ListAsyncTasks", function_arn(function))
        return 200, _json(invoker.list_tasks(function, **_list_args(params)))
    if task_id is not None and not stop and method == "GET":
        authorize(headers, method, target, body, "fc:GetAsyncTask", function_arn(function))
        return 200, _json(invoker.get_task(function, task_id))
    if task_id is not None and stop and method == "PUT":
        authorize(headers, method, target, body, "fc:StopAsyncTask", function_arn(function))
        invoker.stop_task(function, task_id)
        return 200, b""
    raise BadRequest(f"{method} is not allowed on {path}", code="MethodNotAllowed")


def _list_args(params: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"prefix": params.get("prefix") or None, "next_token": params.get("nextToken") or None,
                           "qualifier": params.get("qualifier") or None}
    status = params.get("status")
    if status:
        if status not in {s.value for s in TaskStatus}:
            raise BadRequest(f"status {status!r} is not a task status; one of "
                             f"{', '.join(s.value for s in TaskStatus)}")
        out["status"] = status
    out["limit"] = _int(params, "limit", 20, 1, 100)
    out["begin_ms"] = _int(params, "startedTimeBegin", None, 0, None)
    out["end_ms"] = _int(params, "startedTimeEnd", None, 0, None)
    order = params.get("sortOrderByTime", "asc") or "asc"
    if order not in ("asc", "desc"):
        raise BadRequest(f"sortOrderByTime {order!r} must be asc or desc")
    out["descending"] = order == "desc"
    payload = (params.get("includePayload") or "false").lower()
    if payload not in ("true", "false"):
        raise BadRequest(f"includePayload {payload!r} must be true or false")
    out["include_payload"] = payload == "true"
    return out


def _int(params: dict[str, str], name: str, default: int | None, low: int, high: int | None) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} {raw!r} must be a whole number") from None
    if value < low or (high is not None and value > high):
        raise BadRequest(f"{name} must be between {low} and {high}" if high is not None else
                         f"{name} must be at least {low}")
    return value


def _json(payload: Any) -> bytes:
    return json.dumps(payload).encode()
