"""Authentication of HTTP trigger requests: FC's ``authType`` ``anonymous``, ``jwt`` and ``function``.

- ``jwt`` is verified here on the stdlib alone (hosts have only ``python3``): RS256/RS384/RS512 by RSA PKCS#1 v1.5
  (``pow`` and the DigestInfo prefix) and HS256/384/512 against ``oct`` keys; ``exp``/``nbf`` with 30 s of leeway,
  ``kid`` checked when the token has one, ``aud`` when the config names an ``audience`` (our addition: FC's config
  has no audience, so without it ``aud`` is not checked).
- ``function`` (FC's ACS3-HMAC-SHA256 signature, the one the invoke API checks) is delegated to a
  ``SignatureVerifier``: the invoke API's verifier is passed in when the agent is composed. Until one is, every
  request to a ``function`` trigger is refused with 401 (never let through).

The config keys are FC's, in either case (``JWKS``/``jwks``, ``TokenLookup``/``tokenLookup``, ...), and
``authConfig`` may be a JSON string as FC's API sends it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any, Mapping, Protocol
from urllib.parse import parse_qsl

from fc_common.jwks import AuthConfigError, Key, b64url, get_key, parse_keys

LEEWAY = 30.0
_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_ALGS = {"RS256": ("RSA", "sha256"), "RS384": ("RSA", "sha384"), "RS512": ("RSA", "sha512"),
         "HS256": ("oct", "sha256"), "HS384": ("oct", "sha384"), "HS512": ("oct", "sha512")}
DEFAULT_TOKEN_LOOKUP = "header:Authorization:Bearer"


class AuthFailed(Exception):
    """The request is refused: ``status`` 401 (no or bad credentials) or 403, ``code`` as FC names it."""

    def __init__(self, message: str, status: int = 401, code: str = "Unauthorized") -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


class SignatureVerifier(Protocol):
    def verify(self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes,
               function: str) -> None:
        """Returns when the request carries a valid FC signature whose key may invoke ``function``; raises
        AuthFailed or the agent's error otherwise."""


class NoSignatureVerifier:
    """Stands in until the invoke API's access-key verifier is composed in: refuses every request."""

    def verify(self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes,
               function: str) -> None:
        raise AuthFailed("this trigger's authType is function (a signed request) and this agent has no access "
                         "key verifier configured", 401, "SignatureNotMatch")


def _lookups(text: Any, what: str, parts: int) -> list[tuple[str, ...]]:
    out = []
    for item in str(text or "").split(","):
        item = item.strip()
        if not item:
            continue
        fields = item.split(":")
        if len(fields) < 2 or fields[0] not in ("header", "cookie", "query", "form"):
            raise AuthConfigError(f"authConfig.{what} entry {item!r} is not position:name[:...] with position one "
                                  "of header, cookie, query, form")
        out.append(tuple((fields + [""] * parts)[:parts]))
    return out


@dataclass
class JwtAuth:
    keys: list[Key]
    token_lookup: list[tuple[str, ...]]
    claim_pass_by: list[tuple[str, ...]]
    whitelist: list[str] = field(default_factory=list)
    blacklist: list[str] = field(default_factory=list)
    audience: str | None = None

    @classmethod
    def from_config(cls, auth_config: Any) -> "JwtAuth":
        if isinstance(auth_config, str):
            try:
                auth_config = json.loads(auth_config)
            except ValueError as exc:
                raise AuthConfigError(f"authConfig is not valid JSON: {exc}") from exc
        if not isinstance(auth_config, Mapping):
            raise AuthConfigError("authConfig (with jwks) is required for authType jwt")
        white, black = get_key(auth_config, "whitelist") or [], get_key(auth_config, "blacklist") or []
        if white and black:
            raise AuthConfigError("authConfig takes whitelist or blacklist, not both")
        return cls(parse_keys(get_key(auth_config, "jwks")),
                   _lookups(get_key(auth_config, "tokenLookup") or DEFAULT_TOKEN_LOOKUP, "tokenLookup", 3),
                   _lookups(get_key(auth_config, "claimPassBy"), "claimPassBy", 3), list(white), list(black),
                   get_key(auth_config, "audience"))

    def applies_to(self, path: str) -> bool:
        def match(patterns: list[str]) -> bool:
            return any(path == p or (p.endswith("*") and path.startswith(p[:-1])) for p in patterns)
        if self.whitelist:
            return not match(self.whitelist)
        if self.blacklist:
            return match(self.blacklist)
        return True

    def find_token(self, headers: Mapping[str, str], query: str, body: bytes) -> str | None:
        for pos, name, prefix in self.token_lookup:
            value = None
            if pos == "header":
                value = headers.get(name.lower())
                if value is not None and prefix:
                    value = value[len(prefix):].strip() if value.startswith(prefix) else None
            elif pos == "cookie":
                cookie = SimpleCookie(headers.get("cookie", ""))
                value = cookie[name].value if name in cookie else None
            elif pos == "query":
                value = dict(parse_qsl(query)).get(name)
            elif pos == "form" and "application/x-www-form-urlencoded" in headers.get("content-type", ""):
                value = dict(parse_qsl(body.decode("latin-1"))).get(name)
            if value:
                return value
        return None

    def verify(self, token: str | None, now: float | None = None) -> dict[str, Any]:
        """The token's claims, or AuthFailed."""
        if not token:
            raise AuthFailed("a JWT is required (looked up in " + ", ".join(":".join(t).rstrip(":")
                                                                          for t in self.token_lookup) + ")")
        try:
            head_b64, claims_b64, sig_b64 = token.split(".")
            header, claims = json.loads(b64url(head_b64)), json.loads(b64url(claims_b64))
            signature = b64url(sig_b64)
        except (ValueError, TypeError) as exc:
            raise AuthFailed("the JWT is malformed") from exc
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise AuthFailed("the JWT is malformed")
        alg = header.get("alg")
        if alg not in _ALGS:
            raise AuthFailed(f"the JWT's alg {alg!r} is not accepted")
        kty, digest = _ALGS[alg]
        signed = f"{head_b64}.{claims_b64}".encode()
        candidates = [k for k in self.keys if k.kty == kty and (k.alg in (None, alg))
                      and (header.get("kid") is None or k.kid == header.get("kid"))]
        if not any(_signature_ok(k, digest, signed, signature) for k in candidates):
            raise AuthFailed("the JWT's signature does not verify against the trigger's keys")
        now = time.time() if now is None else now
        if isinstance(claims.get("exp"), (int, float)) and now > claims["exp"] + LEEWAY:
            raise AuthFailed("the JWT has expired")
        if isinstance(claims.get("nbf"), (int, float)) and now + LEEWAY < claims["nbf"]:
            raise AuthFailed("the JWT is not valid yet (nbf)")
        if self.audience is not None:
            aud = claims.get("aud")
            if self.audience not in (aud if isinstance(aud, list) else [aud]):
                raise AuthFailed("the JWT's audience does not match", 403, "AccessDenied")
        return claims


def _signature_ok(key: Key, digest: str, signed: bytes, signature: bytes) -> bool:
    if key.kty == "oct":
        return hmac.compare_digest(hmac.new(key.secret, signed, digest).digest(), signature)
    k = (key.n.bit_length() + 7) // 8
    if len(signature) != k:
        return False
    em = pow(int.from_bytes(signature, "big"), key.e, key.n).to_bytes(k, "big")
    t = _DIGEST_INFO[digest] + hashlib.new(digest, signed).digest()
    expected = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return hmac.compare_digest(em, expected)
