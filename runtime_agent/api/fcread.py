"""FC's read API for the SDK's GetFunction and ListFunctions: a function as FC names its fields (camelCase,
``functionArn``, ``tags`` as ``[{Key, Value}]``), and the listing with ``prefix``, ``limit`` and ``nextToken``."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fc_common.naming import function_arn, function_id

from ..errors import BadRequest
from ..state.store import FunctionRecord

DEFAULT_LIMIT, MAX_LIMIT = 20, 100
_USER_KEYS = {"environment_variables"}  # values are the user's own: their keys are kept as they are
_RENAMED = {"custom_dns": "customDNS", "function_name": "functionName"}


def _camel(name: str) -> str:
    if name in _RENAMED:
        return _RENAMED[name]
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _fc_shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {_camel(k): (v if k in _USER_KEYS else _fc_shape(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_fc_shape(v) for v in value]
    return value


def function_json(record: FunctionRecord) -> dict[str, Any]:
    spec = {k: v for k, v in record.spec.items() if k not in ("tags", "placement")}
    shaped = _fc_shape({**spec, "function_name": record.name, "code_checksum": record.code_checksum,
                        "created_time": record.to_json()["created_time"],
                        "last_modified_time": record.to_json()["last_modified_time"]})
    shaped.update({
        "functionArn": function_arn(record.name), "functionId": function_id(record.name),
        "state": "Active", "lastUpdateStatus": "Successful",
        "tags": [{"Key": k, "Value": v} for k, v in sorted((record.spec.get("tags") or {}).items())],
    })
    return shaped


def list_page(records: list[FunctionRecord], query: dict[str, str]) -> tuple[list[FunctionRecord], str | None]:
    """The page the query asks for, by name order, and the token of the next page (None on the last)."""
    prefix = query.get("prefix") or ""
    raw_limit = query.get("limit") or str(DEFAULT_LIMIT)
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise BadRequest(f"limit {raw_limit[:20]!r} must be an integer from 1 to {MAX_LIMIT}", code="InvalidArgument")
    after = ""
    if query.get("nextToken"):
        try:
            after = base64.urlsafe_b64decode(query["nextToken"].encode()).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise BadRequest(f"nextToken {query['nextToken'][:40]!r} is not a token a previous ListFunctions "
                             "returned", code="InvalidArgument") from None
    names = sorted((r for r in records if r.name.startswith(prefix) and r.name > after), key=lambda r: r.name)
    limit = int(raw_limit)
    page = names[:limit]
    more = len(names) > limit
    return page, base64.urlsafe_b64encode(page[-1].name.encode()).decode() if more else None
