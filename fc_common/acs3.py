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

try:  # CPython's own SHA-256 (_sha2 from 3.12, _sha256 before): see KeyedSignature
    from _sha2 import sha256 as _builtin_sha256  # type: ignore[import-not-found]
except ImportError:
    try:
        from _sha256 import sha256 as _builtin_sha256  # type: ignore[import-not-found,no-redef]
    except ImportError:  # an interpreter without them: OpenSSL's
        _builtin_sha256 = hashlib.sha256

ALGORITHM = "ACS3-HMAC-SHA256"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
DATE_HEADER = "x-acs-date"
NONCE_HEADER = "x-acs-signature-nonce"
CONTENT_HASH_HEADER = "x-acs-content-sha256"
SECURITY_TOKEN_HEADER = "x-acs-security-token"
EMPTY_BODY_HASH = hashlib.sha256(b"").hexdigest()
_SIGNED_PREFIX = f"{ALGORITHM}\n".encode()  # the string to sign is this, then the canonical request's hash


def canonical_query(query: Mapping[str, str]) -> str:
    return "&".join([f"{k}={quote(query[k], safe='~')}" for k in sorted(query)])


def canonical_request(method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str],
                      signed: list[str], payload_hash: str) -> str:
    """``headers`` maps lower-case names to values; ``signed`` is the sorted list of names that are signed (a
    name missing from ``headers`` raises KeyError)."""
    lines = "".join([f"{name}:{headers[name].strip()}\n" for name in signed])
    return (f"{method}\n{path or '/'}\n{canonical_query(query) if query else ''}\n{lines}\n{';'.join(signed)}\n"
            f"{payload_hash}")


def signature(secret: bytes, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return hmac.digest(secret, f"{ALGORITHM}\n{digest}".encode(), "sha256").hex()  # the C one-shot: no HMAC object


class KeyedSignature:
    """``signature(secret, ...)`` for one secret, for a verifier that checks many requests by the same key: HMAC's
    inner and outer hash states (RFC 2104: the key padded and XORed with 0x36 and 0x5c, the inner one already fed
    the string to sign's constant start) are computed once, and each request copies them.

    The hashes are CPython's own SHA-256, not OpenSSL's: on the warm path a request hashes a few hundred bytes
    between two idle waits, and there OpenSSL 3's per-object setup (provider lookups, allocations) runs cold and
    cost 7-10 us in the agent against 3 us for the built-in (bench/signing_ab.py), though a hot loop favours
    OpenSSL slightly (``body_hash`` uses the same built-in)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, secret: bytes) -> None:
        block = 64  # SHA-256's block size
        key = _builtin_sha256(secret).digest() if len(secret) > block else secret
        key = key.ljust(block, b"\0")
        self._inner = _builtin_sha256(bytes(b ^ 0x36 for b in key) + _SIGNED_PREFIX)
        self._outer = _builtin_sha256(bytes(b ^ 0x5C for b in key))

    def __call__(self, canonical: str) -> str:
        inner = self._inner.copy()
        inner.update(_builtin_sha256(canonical.encode("utf-8")).hexdigest().encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def body_hash(body: bytes) -> str:
    """x-acs-content-sha256 of a body: what clients sign and the verifier compares."""
    return _builtin_sha256(body).hexdigest() if body else EMPTY_BODY_HASH


def authorization(key_id: str, signed: list[str], sig: str) -> str:
    return f"{ALGORITHM} Credential={key_id},SignedHeaders={';'.join(signed)},Signature={sig}"


def sign(method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes, key_id: str,
         secret: str, *, now: float | None = None, nonce: str | None = None) -> dict[str, str]:
    """The headers of a signed request: ``headers`` (every one of them signed) plus the date, nonce, body hash and
    Authorization. ``path`` is the request path exactly as it is sent."""
    out = {k.lower(): str(v) for k, v in headers.items()}
    out[DATE_HEADER] = time.strftime(DATE_FORMAT, time.gmtime(time.time() if now is None else now))
    out[NONCE_HEADER] = nonce or secrets.token_hex(16)
    out[CONTENT_HASH_HEADER] = body_hash(body)
    signed = sorted(out)
    sig = signature(secret.encode(), canonical_request(method, path, query, out, signed, out[CONTENT_HASH_HEADER]))
    out["authorization"] = authorization(key_id, signed, sig)
    return out
