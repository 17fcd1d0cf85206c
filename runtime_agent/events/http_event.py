"""FC's HTTP trigger event for functions on built-in runtimes, and the reading of their return value.

The event (``version: "v1"``): ``rawPath`` as received (URL-encoded), ``requestContext.http.path`` decoded,
repeated headers and query parameters comma-joined, a body that is not UTF-8 text base64 with
``isBase64Encoded: true``.

The return value: ``{"statusCode": int, "headers": {str: str}, "isBase64Encoded": bool, "body": str}`` becomes the
response. Any other value (FC does not document its handling) is answered 200 with the returned bytes as the body:
``application/json`` when they parse as a JSON object or array, ``text/plain; charset=utf-8`` otherwise. A
``statusCode`` outside 100-599 is a malformed answer: 502.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import parse_qsl, unquote

TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-www-form-urlencoded",
              "application/javascript")


def build_event(*, method: str, raw_path: str, query: str, header_pairs: list[tuple[str, str]], body: bytes,
                source_ip: str, request_id: str, domain: str, label: str, account: str = "fleet") -> bytes:
    headers: dict[str, str] = {}
    for name, value in header_pairs:
        key = "-".join(p.capitalize() for p in name.split("-"))  # FC's canonical form: X-Forwarded-For
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        params[name] = f"{params[name]},{value}" if name in params else value
    is_text = body == b"" or any(t in headers.get("Content-Type", "text/") for t in TEXT_TYPES)
    try:
        text = body.decode() if is_text else None
    except UnicodeDecodeError:
        text = None
    now = time.time()
    event = {
        "version": "v1",
        "rawPath": raw_path,
        "headers": headers,
        "queryParameters": params,
        "body": text if text is not None else base64.b64encode(body).decode(),
        "isBase64Encoded": text is None,
        "requestContext": {
            "accountId": account,
            "domainName": domain,
            "domainPrefix": label,
            "http": {"method": method, "path": unquote(raw_path), "protocol": "HTTP/1.1", "sourceIp": source_ip,
                     "userAgent": headers.get("User-Agent", "")},
            "requestId": request_id,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "timeEpoch": str(int(now * 1000)),
        },
    }
    return json.dumps(event).encode()


class MalformedAnswer(ValueError):
    pass


def read_answer(raw: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) from what the handler returned (the runtime sends str as is, other values as JSON)."""
    try:
        value: Any = json.loads(raw) if raw else None
    except ValueError:
        value = None
    if isinstance(value, dict) and "statusCode" in value:
        status = value["statusCode"]
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise MalformedAnswer(f"statusCode {status!r} is not an HTTP status (100-599)")
        headers = value.get("headers") or {}
        if not isinstance(headers, dict):
            raise MalformedAnswer("headers must be an object of strings")
        pairs = []
        for name, v in headers.items():
            for one in (v if isinstance(v, list) else [v]):  # a list: the header repeats (Set-Cookie)
                pairs.append((str(name), str(one)))
        body = value.get("body")
        if body is None:
            data = b""
        elif value.get("isBase64Encoded"):
            try:
                data = base64.b64decode(body)
            except (ValueError, TypeError) as exc:
                raise MalformedAnswer("isBase64Encoded is true but body is not base64") from exc
        else:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        return status, pairs, data
    kind = "application/json" if isinstance(value, (dict, list)) else "text/plain; charset=utf-8"
    return 200, [("content-type", kind)], raw
