"""The agent's error tree. Every platform error maps to FC's error shape: an HTTP status and a JSON body with
``Code``, ``Message`` and ``RequestId``.

    AgentError
    ├── BadRequest            400 InvalidArgument
    ├── Unauthorized          401 Unauthorized
    ├── Forbidden             403 AccessDenied (SignatureNotMatch, InvalidAccessKeyID, RequestTimeTooSkewed, ...)
    ├── NotFound              404 FunctionNotFound (or another *NotFound code)
    ├── Conflict              409 (e.g. CodeNotFound: the package was not uploaded first)
    ├── Throttled             429 ResourceThrottled
    └── InstanceStartError    503 InstanceStartFailed (the container could not be started)
"""

from __future__ import annotations

import json


class AgentError(Exception):
    status = 500
    code = "InternalServerError"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class BadRequest(AgentError):
    status = 400
    code = "InvalidArgument"


class Unauthorized(AgentError):
    status = 401
    code = "Unauthorized"


class Forbidden(AgentError):
    status = 403
    code = "AccessDenied"


class NotFound(AgentError):
    status = 404
    code = "FunctionNotFound"


class Conflict(AgentError):
    status = 409
    code = "Conflict"


class Throttled(AgentError):
    status = 429
    code = "ResourceThrottled"


class InstanceStartError(AgentError):
    status = 503
    code = "InstanceStartFailed"


def error_body(exc: AgentError, request_id: str) -> bytes:
    """FC's platform error shape: the keys the official SDK reads."""
    return json.dumps({"Code": exc.code, "Message": exc.message, "RequestId": request_id}).encode()
