"""ACS3-HMAC-SHA256, the request signature of Function Compute's API, as the official SDK computes it
(alibabacloud-tea-openapi ``Utils.get_authorization``): the one rule the agent verifies by and the provider's
clients sign by. Standard library only.

    canonical request = METHOD \\n PATH \\n CANONICAL_QUERY \\n CANONICAL_HEADERS \\n SIGNED_HEADERS \\n PAYLOAD_HASH
    string to sign    = "ACS3-HMAC-SHA256" \\n hex(sha256(canonical request))
    signature         = hex(hmac_sha256(secret, string to sign))
    Authorization: ACS3-HMAC-SHA256 Credential=<key id>,SignedHeaders=<a;b;c>,Signature=<hex>

PATH is the request path as sent (percent-encoded); the query is sorted by name with values encoded as RFC 3986
(``quote(v, safe="~")``); headers are lower-cased, trimmed and sorted. PAYLOAD_HASH is ``x-acs-content-sha256``
(hex sha256 of the body; the SDK always sends it), or the empty string when a client signs without it, as FC's
HTTP-trigger signing does.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Mapping
from urllib.parse import quote

ALGORITHM = "ACS3-HMAC-SHA256"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
DATE_HEADER = "x-acs-date"
NONCE_HEADER = "x-acs-signature-nonce"
CONTENT_HASH_HEADER = "x-acs-content-sha256"
SECURITY_TOKEN_HEADER = "x-acs-security-token"
EMPTY_BODY_HASH = hashlib.sha256(b"").hexdigest()


def canonical_query(query: Mapping[str, str]) -> str:
    return "&".join(f"{k}={quote(query[k], safe='~')}" for k in sorted(query))


def canonical_request(method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str],
                      signed: list[str], payload_hash: str) -> str:
    """``headers`` maps lower-case names to values; ``signed`` is the sorted list of names that are signed."""
    lines = "".join(f"{name}:{headers[name].strip()}\n" for name in signed)
    return f"{method}\n{path or '/'}\n{canonical_query(query)}\n{lines}\n{';'.join(signed)}\n{payload_hash}"


def signature(secret: bytes, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return hmac.digest(secret, f"{ALGORITHM}\n{digest}".encode(), "sha256").hex()  # the C one-shot: no HMAC object


def authorization(key_id: str, signed: list[str], sig: str) -> str:
    return f"{ALGORITHM} Credential={key_id},SignedHeaders={';'.join(signed)},Signature={sig}"


def sign(method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes, key_id: str,
         secret: str, *, now: float | None = None, nonce: str | None = None) -> dict[str, str]:
    """The headers of a signed request: ``headers`` (every one of them signed) plus the date, nonce, body hash and
    Authorization. ``path`` is the request path exactly as it is sent."""
    out = {k.lower(): str(v) for k, v in headers.items()}
    out[DATE_HEADER] = time.strftime(DATE_FORMAT, time.gmtime(time.time() if now is None else now))
    out[NONCE_HEADER] = nonce or secrets.token_hex(16)
    out[CONTENT_HASH_HEADER] = hashlib.sha256(body).hexdigest() if body else EMPTY_BODY_HASH
    signed = sorted(out)
    sig = signature(secret.encode(), canonical_request(method, path, query, out, signed, out[CONTENT_HASH_HEADER]))
    out["authorization"] = authorization(key_id, signed, sig)
    return out
