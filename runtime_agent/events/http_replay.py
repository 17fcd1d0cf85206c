"""An HTTP request kept for later: what an HTTP trigger of a web function queues on ``X-Fc-Invocation-Type: Async``
so that the async worker replays the client's request (method, path, query, headers, body) to an instance, as FC
does, instead of POSTing an event to ``/invoke``.

The queue carries bytes, and anyone allowed to invoke the function asynchronously chooses those bytes, so a kept
request is sealed: a prefix, an HMAC-SHA256 over the rest with a key only this fleet's agents know (their control
token), then the request exactly as it would go to the instance. A payload that does not verify is an ordinary
event. A request as the trigger builds it already carries the platform's own ``x-fc-*`` headers (request id,
function, qualifier, trigger) and none of the client's."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

MAGIC = b"fc-http-request/1\n"
_MAC_HEX = 64


@dataclass(frozen=True)
class KeptRequest:
    method: str
    target: str
    head: bytes  # the whole request head, as sent to the instance
    body: bytes


def seal(key: str, head: bytes, body: bytes) -> bytes:
    """The queue payload of a request (``head`` ends with the blank line)."""
    rest = head + body
    return MAGIC + _mac(key, rest).encode() + b"\n" + rest


def unseal(key: str, payload: bytes) -> KeptRequest | None:
    """The kept request, or None when ``payload`` is not one this fleet sealed (an ordinary event)."""
    if not payload.startswith(MAGIC) or not key:
        return None
    start = len(MAGIC)
    mac, rest = payload[start:start + _MAC_HEX], payload[start + _MAC_HEX + 1:]
    if payload[start + _MAC_HEX:start + _MAC_HEX + 1] != b"\n" or not hmac.compare_digest(
            mac, _mac(key, rest).encode()):
        return None
    end = rest.find(b"\r\n\r\n")
    if end < 0:
        return None
    head, body = rest[:end + 4], rest[end + 4:]
    method, _, remainder = head.partition(b" ")
    target = remainder.partition(b" ")[0]
    return KeptRequest(method.decode("latin-1"), target.decode("latin-1"), head, body)


def _mac(key: str, data: bytes) -> str:
    return hmac.new(key.encode(), data, hashlib.sha256).hexdigest()
